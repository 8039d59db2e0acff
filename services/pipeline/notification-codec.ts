/**
 * Notifications on the wire: the `tally.v1.Notification` message, as the notifications topic
 * carries it (one record per recipient, keyed by the recipient) and the APIs answer it.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  type Notification as NotificationMessage,
  NotificationSchema,
} from '../gen/tally/v1/notifications_pb.js';
import type { StoredNotification } from '../infra/alerts/notification-store.ts';

/** The message of a kept notification; `recipient`: the one a topic record is for ('' elsewhere). */
export function toNotificationMessage(n: StoredNotification, recipient = ''): NotificationMessage {
  return create(NotificationSchema, {
    id: n.id,
    seq: BigInt(n.seq),
    ruleId: n.ruleId,
    kind: n.kind,
    target: n.target,
    type: n.type,
    subject: n.subject ?? '',
    value: n.value,
    threshold: n.threshold,
    windowMinutes: n.windowMinutes,
    baseline: n.baseline,
    score: n.score,
    occurredAt: timestampFromMs(n.occurredAt.getTime()),
    recipients: [...n.recipients],
    message: n.message,
    createdAt: timestampFromMs(n.createdAt.getTime()),
    recipient,
  });
}

export function encodeNotification(n: StoredNotification, recipient: string): Uint8Array {
  return toBinary(NotificationSchema, toNotificationMessage(n, recipient));
}

export function decodeNotification(bytes: Uint8Array): NotificationMessage {
  return fromBinary(NotificationSchema, bytes);
}
