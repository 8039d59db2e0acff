/**
 * The WebSocket `/v1/stream` (protocol: docs/stream.md), put together from its three parts: the
 * sockets (`SocketHub`), channel `dashboard` (`DashboardFeed`: a snapshot about every `tickMs` of
 * the live feed's statistics, the leaderboards and alerts) and channel `counters`
 * (`CountersWatch`: a target's counters pushed when the live feed has seen an event for it), the
 * live feed they share, which reads only while a socket is open, and channel `notifications`
 * (`NotificationsWatch`: WatchNotifications streams of the query role).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { defaultEventLimits } from '../domain/event-rules.ts';
import type { EntityService } from '../gen/tally/v1/entities_pb.js';
import type { NotificationService } from '../gen/tally/v1/notifications_pb.js';
import type { QueryService } from '../gen/tally/v1/query_pb.js';
import { codeName, toAppError } from '../infra/app-error.ts';
import { SURFACE_METADATA } from '../infra/auth/access-control.ts';
import type { CallOptions, ServiceClient } from '../infra/grpc/grpc-service.ts';
import type { Logger } from '../infra/logger.ts';
import type { RequestLimits } from '../pipeline/request-limits.ts';
import { REQUESTS_METADATA } from '../pipeline/request-limits.ts';
import { CountersWatch } from './counters-watch.ts';
import { DashboardFeed, type LiveStateView } from './dashboard-feed.ts';
import { EntitiesWatch } from './entities-watch.ts';
import { type LiveFeed, type LiveFeedSource, startLiveFeed } from './live-feed.ts';
import type { LiveEvent } from './live-stats.ts';
import { NotificationsWatch } from './notifications-watch.ts';
import { type AcceptedCredential, SocketHub, type StreamAuth, type StreamSocket } from './socket-hub.ts';

/** The version of the protocol, sent in `hello`. */
export const STREAM_PROTOCOL_VERSION = 1;

/** What the stream serves and its limits; every default is the one the gateway runs with. */
export interface StreamServerOptions {
  query: ServiceClient<(typeof QueryService)['method']>;
  /** Channel `notifications`; absent: its subscriptions are refused (UNIMPLEMENTED). */
  notifications?: ServiceClient<(typeof NotificationService)['method']>;
  /** Most notifications subscriptions per socket (default 10). */
  maxNotificationSubscriptions?: number;
  /** Channel `entities` (docs/entities.md); absent: its subscriptions are refused (UNIMPLEMENTED). */
  entities?: ServiceClient<(typeof EntityService)['method']>;
  /** Most entities per socket (default 100). */
  maxEntitiesPerSocket?: number;
  /** Where the live feed reads; without it, the dashboard says live data is unavailable. */
  live?: LiveFeedSource;
  logger: Logger;
  /** Dashboard period, ms (default 500). */
  tickMs?: number;
  /** Largest client message, bytes (default 256 KiB: 100 targets of 2,048 characters fit). */
  maxMessageBytes?: number;
  /** Most counters targets per socket (default 100). */
  maxTargetsPerSocket?: number;
  /** Most open sockets per gateway (default 1,000); more are refused with 503. */
  maxSockets?: number;
  /** Client messages per second a socket may send, on average (default 20; bursts of twice that). */
  maxMessagesPerSecond?: number;
  /** Ping period, ms (default 30,000); a socket that did not answer the previous ping is dropped. */
  pingIntervalMs?: number;
  /** A socket with more than this many bytes unsent skips pushes (default 1 MiB). */
  slowSocketBytes?: number;
  /** A socket with more than this many bytes unsent is dropped (default 8 MiB). */
  maxBufferedBytes?: number;
  /** How long a target's counters are re-read after the last event seen for it, ms (default 3,000). */
  countersSettleMs?: number;
  /** Targets per type in the leaderboards (default 10). */
  topLimit?: number;
  /** Most types in a dashboard message (default 12; the ones with the highest leaderboard sums). */
  maxDashboardTypes?: number;
  /**
   * How long the live feed keeps reading after the last socket closed, ms (default 60,000). It
   * starts with the first socket: a gateway nobody watches does not read the events topic.
   */
  feedIdleMs?: number;
  /** Test hook: the clock (ms); the timers stay the global ones. */
  now?: () => number;
  /**
   * Access control, when on: each socket authenticates (socket-hub.ts), and the stream's shared
   * reads (leaderboards, counters) are made with the credential of one of its authenticated
   * sockets, each of which may read.
   */
  auth?: StreamAuth;
  /**
   * The rate limits: each `subscribe` is a read of the socket's credential (and address, when
   * limited per address); over the limit it is answered with an `error` message (code
   * `RESOURCE_EXHAUSTED`, `retryAfterMs`) and the socket stays open.
   */
  limits?: RequestLimits;
  /** The client's address from the connection's and `X-Forwarded-For` (default: the connection's). */
  clientAddress?: (socketAddress: string, forwardedFor: string | undefined) => string;
}

export interface StreamServer {
  /**
   * Completes a WebSocket upgrade of `/v1/stream` (the caller checked the path and, with access
   * control on, the handshake's credential: `authorization`).
   */
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    credential?: AcceptedCredential,
  ): void;
  readonly socketCount: number;
  /** Closes every socket (1001), stops the timers and the live feed. */
  stop(): Promise<void>;
}

/** Starts the dashboard, counters and ping timers; the live feed starts with the first socket. */
export function createStreamServer(options: StreamServerOptions): StreamServer {
  const logger = options.logger.child({ component: 'stream' });
  const now = options.now ?? Date.now;
  const tickMs = options.tickMs ?? 500;
  const settleMs = options.countersSettleMs ?? 3_000;
  const maxMessageBytes = options.maxMessageBytes ?? 256 * 1024;
  const maxMessagesPerSecond = options.maxMessagesPerSecond ?? 20;
  const limits = {
    maxTargets: options.maxTargetsPerSocket ?? 100,
    maxTargetChars: defaultEventLimits.maxTargetChars,
  };
  // The hub's callbacks and the live feed reach the two channels, created once the hub exists.
  let dashboard: DashboardFeed;
  let counters: CountersWatch;
  let notifications: NotificationsWatch | undefined;
  let entities: EntitiesWatch | undefined;
  const live = createFeedLease(options, logger, {
    started: () => dashboard.reset(now()),
    seen: (events) => {
      const at = now();
      dashboard.seen(events, at);
      counters.seen(events, at);
    },
  });
  const liveState = (): LiveStateView => live.state();
  /** Each socket's last message whose rate limit check is under way. */
  const checked = new Map<StreamSocket, Promise<unknown>>();
  const hub = new SocketHub({
    logger,
    now,
    maxMessageBytes,
    maxSockets: options.maxSockets ?? 1_000,
    maxMessagesPerSecond,
    pingIntervalMs: options.pingIntervalMs ?? 30_000,
    slowSocketBytes: options.slowSocketBytes ?? 1024 * 1024,
    maxBufferedBytes: options.maxBufferedBytes ?? 8 * 1024 * 1024,
    limits,
    onOpen: () => live.acquire(!hub.stopping),
    hello: () => ({
      channel: 'hello',
      protocol: STREAM_PROTOCOL_VERSION,
      live: liveState(),
      limits: { maxMessageBytes, ...limits, maxMessagesPerSecond, tickMs },
    }),
    onMessage: (socket, message) => {
      const handle = () => {
        if (message.channel === 'dashboard') dashboard.handle(socket, message);
        else if (message.channel === 'counters') counters.handle(socket, message);
        else if (message.channel === 'entities') {
          if (entities) entities.handle(socket, message);
          else
            hub.reply(socket, {
              channel: 'error',
              field: 'channel',
              message: 'channel: "entities" is not served by this gateway (it has no entity service)',
              code: 'UNIMPLEMENTED',
              ...(message.id === undefined ? {} : { id: message.id }),
            });
        } else if (notifications) notifications.handle(socket, message);
        else
          hub.reply(socket, {
            channel: 'error',
            field: 'channel',
            message:
              'channel: "notifications" is not served by this gateway (it has no notification service)',
            code: 'UNIMPLEMENTED',
            ...(message.id === undefined ? {} : { id: message.id }),
          });
      };
      const limits = options.limits;
      if (!limits) return handle();
      // In order: a socket's messages wait for its subscriptions' checks.
      const previous = checked.get(socket) ?? Promise.resolve();
      const next = previous.then(async () => {
        if (message.op !== 'subscribe') return handle();
        try {
          await limits.read({ principal: socket.principal, address: socket.address });
        } catch (error) {
          const refusal = toAppError(error);
          hub.reply(socket, {
            channel: 'error',
            field: 'op',
            message: refusal.message,
            code: codeName(refusal.code),
            reason: refusal.reason,
            ...(refusal.retryAfterMs === undefined ? {} : { retryAfterMs: refusal.retryAfterMs }),
            ...(message.id === undefined ? {} : { id: message.id }),
          });
          return;
        }
        if (socket.ws.readyState === socket.ws.OPEN) handle();
      });
      checked.set(
        socket,
        next.catch((error: unknown) => logger.warn('stream message failed', { error })),
      );
    },
    onClose: (socket) => {
      checked.delete(socket);
      counters.closed(socket);
      notifications?.closed(socket);
      entities?.closed(socket);
      if (hub.sockets.size === 0) live.release();
    },
    auth: options.auth,
    clientAddress: options.clientAddress,
  });
  const query = options.auth ? withAuthorization(options.query, () => hub.anyAuthorization()) : options.query;
  const parts = { query, hub, logger, now, settleMs };
  dashboard = new DashboardFeed({
    ...parts,
    liveState,
    tickMs,
    topLimit: options.topLimit ?? 10,
    maxDashboardTypes: options.maxDashboardTypes ?? 12,
  });
  counters = new CountersWatch({
    ...parts,
    roundMs: Math.max(50, Math.floor(tickMs / 2)),
    maxTargets: limits.maxTargets,
  });
  if (options.entities)
    entities = new EntitiesWatch({
      entities: options.auth
        ? withAuthorization(options.entities, () => hub.anyAuthorization())
        : options.entities,
      hub,
      logger,
      roundMs: tickMs,
      maxEntities: options.maxEntitiesPerSocket ?? 100,
    });
  if (options.notifications)
    notifications = new NotificationsWatch({
      notifications: options.notifications,
      hub,
      logger,
      maxSubscriptions: options.maxNotificationSubscriptions ?? 10,
    });

  return {
    get socketCount() {
      return hub.sockets.size;
    },
    handleUpgrade: (request, socket, head, credential) =>
      hub.handleUpgrade(request, socket, head, credential),
    async stop() {
      dashboard.stop();
      counters.stop();
      notifications?.stop();
      entities?.stop();
      await hub.stop();
      await live.stop();
    },
  };
}

/**
 * `client` whose calls carry `authorization()` (when there is one), the surface `websocket`, and
 * no client request for the rate limits: the stream's reads serve subscriptions that were charged
 * when made (REQUESTS_METADATA `0`, believed from this process's gateway or a trusted proxy).
 */
function withAuthorization<C extends object>(client: C, authorization: () => string | undefined): C {
  return new Proxy(client, {
    get(target, property) {
      const value = Reflect.get(target, property) as unknown;
      if (typeof value !== 'function' || property === 'close') return value;
      return (request: unknown, callOptions?: CallOptions) => {
        const credential = authorization();
        const metadata: Record<string, string> = {
          ...callOptions?.metadata,
          [SURFACE_METADATA]: 'websocket',
          [REQUESTS_METADATA]: '0',
        };
        if (credential) metadata.authorization = credential;
        return (value as (r: unknown, o: CallOptions) => unknown).call(target, request, {
          ...callOptions,
          metadata,
        });
      };
    },
  });
}

/** The live feed, read only while someone watches. */
interface FeedLease {
  /** A socket opened: cancels a pending idle stop, and starts the feed if `start` and it is not running. */
  acquire(start: boolean): void;
  /** The last socket closed: stops the feed after `feedIdleMs` unless a socket opens. */
  release(): void;
  state(): LiveStateView;
  stop(): Promise<void>;
}

// The live feed reads only while someone watches: each gateway would otherwise decode every
// event of the topic, whatever its own traffic. Its statistics count from when it started.
function createFeedLease(
  options: StreamServerOptions,
  logger: Logger,
  listener: { started(): void; seen(events: LiveEvent[]): void },
): FeedLease {
  const feedIdleMs = options.feedIdleMs ?? 60_000;
  let feed: LiveFeed | undefined;
  let idle: NodeJS.Timeout | undefined;
  return {
    acquire(start) {
      clearTimeout(idle);
      idle = undefined;
      if (feed || !options.live || !start) return;
      listener.started();
      feed = startLiveFeed({ ...options.live, logger: options.logger, onEvents: listener.seen });
    },
    release() {
      if (!feed) return;
      idle = setTimeout(() => {
        idle = undefined;
        const stopped = feed;
        feed = undefined;
        void stopped?.stop().catch((error: unknown) => logger.warn('live feed stop failed', { error }));
      }, feedIdleMs);
      idle.unref();
    },
    state: () =>
      feed
        ? feed.state()
        : options.live
          ? { state: 'starting', reason: 'the live feed starts with the first subscriber' }
          : { state: 'off', reason: 'this gateway has no live feed configured' },
    async stop() {
      clearTimeout(idle);
      await feed?.stop();
    },
  };
}
