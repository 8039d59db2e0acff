/**
 * The `notifications` channel of `/v1/stream`: each subscription is a
 * NotificationService.WatchNotifications stream of the query role, made with the socket's own
 * credential (who may see which notifications is decided there), its notifications pushed as
 * they come. A stream that breaks (a query process restarting, a network fault) is opened again
 * after the last seq it delivered, so the socket sees each notification once and in order; one
 * refused (a recipient the credential may not read, a malformed one) is answered with an `error`
 * message and dropped.
 */
import { toJson } from '@bufbuild/protobuf';
import {
  NotificationSchema,
  type NotificationService,
  type WatchNotificationsResponse,
} from '../gen/tally/v1/notifications_pb.js';
import { Code, codeName, toAppError } from '../infra/app-error.ts';
import { SURFACE_METADATA } from '../infra/auth/access-control.ts';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import type { Logger } from '../infra/logger.ts';
import { REQUESTS_METADATA } from '../pipeline/request-limits.ts';
import type { SocketHub, StreamSocket } from './socket-hub.ts';
import type { ClientMessage, NotificationsSelection } from './stream-protocol.ts';

export interface NotificationsWatchOptions {
  notifications: ServiceClient<(typeof NotificationService)['method']>;
  hub: SocketHub;
  logger: Logger;
  /** Most notifications subscriptions per socket. */
  maxSubscriptions: number;
  /** First wait before a broken stream is opened again, ms (doubles up to 30 s). */
  retryDelayMs?: number;
}

/** Codes after which opening the stream again cannot help: the request itself is refused. */
const FINAL = new Set<Code>([
  Code.INVALID_ARGUMENT,
  Code.PERMISSION_DENIED,
  Code.UNAUTHENTICATED,
  Code.UNIMPLEMENTED,
  Code.RESOURCE_EXHAUSTED,
]);

interface Subscription extends NotificationsSelection {
  key: string;
  /** The newest seq delivered (or caught up to): where a reopened stream resumes. */
  afterSeq?: string;
  stop: AbortController;
}

type NotificationsMessage = Extract<ClientMessage, { channel: 'notifications' }>;

export class NotificationsWatch {
  readonly #options: NotificationsWatchOptions;
  readonly #subscriptions = new Map<StreamSocket, Map<string, Subscription>>();

  constructor(options: NotificationsWatchOptions) {
    this.#options = options;
  }

  handle(socket: StreamSocket, message: NotificationsMessage): void {
    const { hub, maxSubscriptions } = this.#options;
    const idPart = message.id === undefined ? {} : { id: message.id };
    let mine = this.#subscriptions.get(socket);
    if (message.op === 'unsubscribe') {
      for (const sub of [...(mine?.values() ?? [])])
        if (
          (message.recipient === undefined || message.recipient === sub.recipient) &&
          (message.target === undefined || message.target === sub.target)
        ) {
          sub.stop.abort();
          mine!.delete(sub.key);
        }
      hub.reply(socket, {
        channel: 'unsubscribed',
        subscription: 'notifications',
        subscriptions: selections(mine),
        ...idPart,
      });
      return;
    }
    const key = JSON.stringify([message.recipient, message.target]);
    if (mine?.has(key)) {
      hub.reply(socket, {
        channel: 'subscribed',
        subscription: 'notifications',
        subscriptions: selections(mine),
        ...idPart,
      });
      return;
    }
    if ((mine?.size ?? 0) >= maxSubscriptions) {
      hub.replyError(socket, {
        field: 'channel',
        message: `channel: a socket holds at most ${maxSubscriptions} notifications subscriptions; unsubscribe one first`,
        ...idPart,
      });
      return;
    }
    if (!mine) {
      mine = new Map();
      this.#subscriptions.set(socket, mine);
    }
    const sub: Subscription = {
      key,
      recipient: message.recipient,
      target: message.target,
      ...(message.afterSeq === undefined ? {} : { afterSeq: message.afterSeq }),
      stop: new AbortController(),
    };
    mine.set(key, sub);
    void this.#follow(socket, sub, message.id);
  }

  /** The socket closed: its streams end. */
  closed(socket: StreamSocket): void {
    for (const sub of this.#subscriptions.get(socket)?.values() ?? []) sub.stop.abort();
    this.#subscriptions.delete(socket);
  }

  stop(): void {
    for (const socket of [...this.#subscriptions.keys()]) this.closed(socket);
  }

  /** Reads the subscription's stream until it is stopped, opening it again after a break. */
  async #follow(socket: StreamSocket, sub: Subscription, id: string | number | undefined): Promise<void> {
    const { hub, logger } = this.#options;
    const idPart = id === undefined ? {} : { id };
    let answered = false;
    let delayMs = this.#options.retryDelayMs ?? 1_000;
    while (!sub.stop.signal.aborted) {
      try {
        const stream = this.#options.notifications.watchNotifications(
          {
            recipient: sub.recipient,
            target: sub.target,
            ...(sub.afterSeq === undefined ? {} : { afterSeq: BigInt(sub.afterSeq) }),
          },
          { signal: sub.stop.signal, metadata: streamMetadata(socket) },
        );
        for await (const answer of stream) {
          this.#deliver(socket, sub, answer);
          if (!answered && answer.event.case === 'caughtUp') {
            answered = true;
            hub.reply(socket, {
              channel: 'subscribed',
              subscription: 'notifications',
              subscriptions: selections(this.#subscriptions.get(socket)),
              ...idPart,
            });
          }
          delayMs = this.#options.retryDelayMs ?? 1_000;
        }
        if (sub.stop.signal.aborted) return;
      } catch (error) {
        if (sub.stop.signal.aborted) return;
        const failure = toAppError(error);
        if (FINAL.has(failure.code)) {
          this.#subscriptions.get(socket)?.delete(sub.key);
          hub.reply(socket, {
            channel: 'error',
            field: failure.field ?? 'channel',
            message: failure.message,
            code: codeName(failure.code),
            ...(failure.reason === undefined ? {} : { reason: failure.reason }),
            subscription: 'notifications',
            recipient: sub.recipient,
            target: sub.target,
            ...idPart,
          });
          return;
        }
        logger.warn('notifications stream broke; opening it again', {
          error,
          afterSeq: sub.afterSeq,
          retryInMs: delayMs,
        });
      }
      // Ended or broken: opened again after the last seq delivered.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        sub.stop.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      delayMs = Math.min(delayMs * 2, 30_000);
    }
  }

  #deliver(socket: StreamSocket, sub: Subscription, answer: WatchNotificationsResponse): void {
    const { hub } = this.#options;
    const selection = { recipient: sub.recipient, target: sub.target };
    const { event } = answer;
    switch (event.case) {
      case 'notification':
        sub.afterSeq = String(event.value.seq);
        hub.reply(socket, {
          channel: 'notification',
          subscription: selection,
          notification: toJson(NotificationSchema, event.value),
        });
        return;
      case 'caughtUp':
        sub.afterSeq = String(event.value.seq);
        hub.reply(socket, {
          channel: 'notifications',
          event: 'caughtUp',
          seq: String(event.value.seq),
          subscription: selection,
        });
        return;
      case 'replayTruncated':
        hub.reply(socket, {
          channel: 'notifications',
          event: 'replayTruncated',
          resumedAtSeq: String(event.value.resumedAtSeq),
          subscription: selection,
        });
        return;
    }
  }
}

/** The socket's subscriptions, as replies list them. */
function selections(mine: Map<string, Subscription> | undefined): NotificationsSelection[] {
  return [...(mine?.values() ?? [])].map(({ recipient, target }) => ({ recipient, target }));
}

/**
 * The stream's metadata: the socket's own credential, the surface, and no client request for the
 * rate limits (the subscription was charged when the socket made it).
 */
function streamMetadata(socket: StreamSocket): Record<string, string> {
  return {
    [SURFACE_METADATA]: 'websocket',
    [REQUESTS_METADATA]: '0',
    ...(socket.authorization ? { authorization: socket.authorization } : {}),
  };
}
