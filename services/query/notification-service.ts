/**
 * tally.v1.NotificationService, served by the query role (the gRPC role with the SQL port, where
 * the notification store is): listings, read marks and the live watch (notification-watch.ts). Who may see which
 * notifications is the domain's rule (domain/notification-access.ts); scope read is checked by
 * access control from the proto's `required_scope`.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  type NotificationSelection,
  type RecipientDecision,
  readerFor,
  recipientFor,
} from '../domain/notification-access.ts';
import {
  NotificationService,
  type WatchNotificationsResponseSchema,
} from '../gen/tally/v1/notifications_pb.js';
import type { NotificationStore } from '../infra/alerts/notification-store.ts';
import { AppError, Code, Reason } from '../infra/app-error.ts';
import type { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import type { CallContext } from '../infra/grpc/grpc-service.ts';
import type { Logger } from '../infra/logger.ts';
import { toNotificationMessage } from '../pipeline/notification-codec.ts';
import type { NotificationWatches, WatchEvent } from './notification-watch.ts';

/** Notifications a page holds unless the request says otherwise, and at most. */
const DEFAULT_PAGE = 50;
const MAX_PAGE = 1_000;
/** Most ids one MarkNotificationsRead names. */
const MAX_MARKED = 1_000;

export interface NotificationServiceDeps {
  store: NotificationStore;
  watches: NotificationWatches;
  grpc: GrpcRegistry;
  logger: Logger;
  /** Charges a read to the caller's rate limits (each listing, each watch when it starts). */
  limits?: (context: CallContext) => Promise<void>;
}

export function registerNotificationService(deps: NotificationServiceDeps): void {
  const { store, watches } = deps;
  const charge = deps.limits ?? (async () => {});
  deps.grpc.register(NotificationService, {
    async listNotifications(request, context) {
      const recipient = allowed(recipientFor(context.principal, request));
      await charge(context);
      if (request.pageSize > MAX_PAGE)
        throw AppError.invalidField('page_size', `must be at most ${MAX_PAGE} (0: ${DEFAULT_PAGE})`);
      if (request.pageToken !== '' && !/^\d{1,19}$/.test(request.pageToken))
        throw AppError.invalidField('page_token', 'is not a page token this server gave');
      const page = await store.list({
        ...(recipient === undefined ? {} : { recipient }),
        ...(request.target === '' ? {} : { target: request.target }),
        ...(request.ruleId === '' ? {} : { ruleId: request.ruleId }),
        ...(request.pageToken === '' ? {} : { before: request.pageToken }),
        limit: request.pageSize || DEFAULT_PAGE,
      });
      return {
        notifications: page.notifications.map((n) => ({ ...toNotificationMessage(n), read: n.read })),
        nextPageToken: page.nextCursor ?? '',
      };
    },

    async markNotificationsRead(request, context) {
      const recipient = allowed(readerFor(context.principal, request.recipient))!;
      await charge(context);
      if (request.ids.length === 0) throw AppError.invalidField('ids', 'must name at least one notification');
      if (request.ids.length > MAX_MARKED)
        throw AppError.invalidField('ids', `must name at most ${MAX_MARKED} notifications per call`);
      const bad = request.ids.findIndex((id) => id === '' || id.length > 200);
      if (bad >= 0) throw AppError.invalidField(`ids[${bad}]`, 'must be 1 to 200 characters');
      return { marked: await store.markRead(recipient, request.ids) };
    },

    async *watchNotifications(request, context) {
      const selection: NotificationSelection = request;
      const recipient = allowed(recipientFor(context.principal, selection, true));
      await charge(context);
      const stop = AbortSignal.any([context.signal, context.draining]);
      const filter = {
        ...(recipient === undefined ? {} : { recipients: [recipient] }),
        ...(request.target === '' ? {} : { target: request.target }),
      };
      const afterSeq = request.afterSeq === undefined ? undefined : String(request.afterSeq);
      for await (const event of watches.watch(filter, afterSeq, stop)) yield answer(event);
    },
  });
}

/** The recipient a decision allows, or the error it makes. */
function allowed(decision: RecipientDecision): string | undefined {
  if (decision.ok) return decision.recipient;
  if (!decision.denied) throw AppError.invalidField('recipient', decision.reason);
  throw new AppError(Code.PERMISSION_DENIED, `recipient: ${decision.reason}`, {
    reason: Reason.OTHER_RECIPIENT,
    fieldViolations: [{ field: 'recipient', description: decision.reason }],
  });
}

function answer(event: WatchEvent): MessageInitShape<typeof WatchNotificationsResponseSchema> {
  switch (event.kind) {
    case 'notification':
      return { event: { case: 'notification', value: toNotificationMessage(event.notification) } };
    case 'truncated':
      return { event: { case: 'replayTruncated', value: { resumedAtSeq: BigInt(event.resumedAtSeq) } } };
    case 'caught-up':
      return { event: { case: 'caughtUp', value: { seq: BigInt(event.seq) } } };
  }
}
