/**
 * Where the alerter's notifications go, in this order: the notification store (PostgreSQL, for
 * listings, acknowledgements and a client's resume), which keeps each id once and gives it its
 * `seq`; then the notifications topic, one record per recipient keyed by the recipient, for the
 * gateways that push them live. Both are durable before the alerter forgets its crossings, so a
 * crash in between writes them again under the same id and seq, and readers keep one.
 */
import type { Notification, NotificationStore } from '../infra/alerts/notification-store.ts';
import type { LogProducer, LogRecord } from '../infra/log/event-log.ts';
import { notificationMetrics, type Registry } from '../infra/metrics.ts';
import { encodeNotification } from '../pipeline/notification-codec.ts';

export interface NotificationWriterDeps {
  store: NotificationStore;
  producer: LogProducer;
  /** The notifications topic. */
  topic: string;
  /** Where `tally_notifications_total` counts the notifications kept for the first time. */
  metrics: Registry;
}

/** The alerter's `notify`: keeps, then publishes. */
export function notificationWriter(
  deps: NotificationWriterDeps,
): (notifications: readonly Notification[]) => Promise<void> {
  const raised = notificationMetrics(deps.metrics).notifications;
  return async (notifications) => {
    if (notifications.length === 0) return;
    const { added, stored } = await deps.store.record(notifications);
    raised.inc(added);
    const records: LogRecord[] = [];
    for (const n of stored)
      for (const recipient of n.recipients)
        records.push({ key: recipient, value: encodeNotification(n, recipient) });
    await deps.producer.send(deps.topic, records);
  };
}
