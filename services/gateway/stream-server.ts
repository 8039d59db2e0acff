/**
 * The WebSocket `/v1/stream` (protocol: docs/stream.md). Channel `dashboard`: a
 * snapshot about every `tickMs` of the live feed's statistics, the leaderboards
 * (QueryService.TopTargets) and alerts. Channel `counters`: a target's counters
 * (QueryService.GetCounters) pushed when the live feed has seen an event for it.
 * A slow socket skips dashboard ticks and gets only the latest counters of a target.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { defaultEventLimits } from '../domain/event-rules.ts';
import type { QueryService } from '../gen/tally/v1/query_pb.js';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import type { Logger } from '../infra/logger.ts';
import { type LiveFeed, type LiveFeedSource, startLiveFeed } from './live-feed.ts';
import { type LiveEvent, LiveStats } from './live-stats.ts';
import {
  type ClientMessage,
  isProtocolError,
  type ProtocolError,
  parseClientMessage,
} from './stream-protocol.ts';

/** The version of the protocol, sent in `hello`. */
export const STREAM_PROTOCOL_VERSION = 1;

export interface StreamServerOptions {
  query: ServiceClient<(typeof QueryService)['method']>;
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
  /** Test hook: the clock. */
  now?: () => number;
}

export interface StreamServer {
  /** Completes a WebSocket upgrade of `/v1/stream` (the caller checked the path). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  readonly socketCount: number;
  /** Closes every socket (1001), stops the timers and the live feed. */
  stop(): Promise<void>;
}

interface Client {
  ws: WebSocket;
  dashboard: boolean;
  targets: Set<string>;
  /** Counters messages not sent yet because the socket is slow: the latest per target. */
  pending: Map<string, string>;
  alive: boolean;
  /** Token bucket of client messages. */
  tokens: number;
  tokensAtMs: number;
}

interface TargetWatch {
  subscribers: Set<Client>;
  /** The last counters pushed (JSON of the counts), to push only changes. */
  lastCounts?: string;
  /** The last `counters` message pushed, for a socket that subscribes later. */
  lastMessage?: string;
  /** Re-read until this time (ms) after the last event seen for the target. */
  hotUntil: number;
  /** Not read yet (a new watch): read at the next round even when not hot. */
  unread: boolean;
  reading: boolean;
}

interface DashboardLeaders {
  type: string;
  targets: { target: string; count: number }[];
}

export function createStreamServer(options: StreamServerOptions): StreamServer {
  const logger = options.logger.child({ component: 'stream' });
  const now = options.now ?? Date.now;
  const tickMs = options.tickMs ?? 500;
  const maxTargets = options.maxTargetsPerSocket ?? 100;
  const maxSockets = options.maxSockets ?? 1_000;
  const messageRate = options.maxMessagesPerSecond ?? 20;
  const slowBytes = options.slowSocketBytes ?? 1024 * 1024;
  const maxBufferedBytes = options.maxBufferedBytes ?? 8 * 1024 * 1024;
  const settleMs = options.countersSettleMs ?? 3_000;
  const topLimit = options.topLimit ?? 10;
  const maxDashboardTypes = options.maxDashboardTypes ?? 12;
  const limits = { maxTargets, maxTargetChars: defaultEventLimits.maxTargetChars };

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxMessageBytes ?? 256 * 1024,
    perMessageDeflate: false,
    clientTracking: false,
  });
  const clients = new Set<Client>();
  const watches = new Map<string, TargetWatch>();
  let stats = new LiveStats(now());
  let lastEventSeenMs = Number.NEGATIVE_INFINITY;
  let stopping = false;

  const onEvents = (events: LiveEvent[]): void => {
    const at = now();
    stats.add(events, at);
    lastEventSeenMs = at;
    for (const event of events) {
      const watch = watches.get(event.target);
      if (watch) watch.hotUntil = at + settleMs;
    }
  };
  // The live feed reads only while someone watches: each gateway would otherwise decode every
  // event of the topic, whatever its own traffic. Its statistics count from when it started.
  const feedIdleMs = options.feedIdleMs ?? 60_000;
  let feed: LiveFeed | undefined;
  let feedIdle: NodeJS.Timeout | undefined;
  const watched = () => {
    clearTimeout(feedIdle);
    feedIdle = undefined;
    if (feed || !options.live || stopping) return;
    stats = new LiveStats(now());
    lastEventSeenMs = Number.NEGATIVE_INFINITY;
    feed = startLiveFeed({ ...options.live, logger: options.logger, onEvents });
  };
  const unwatched = () => {
    if (clients.size > 0 || !feed) return;
    feedIdle = setTimeout(() => {
      feedIdle = undefined;
      const stopped = feed;
      feed = undefined;
      void stopped?.stop().catch((error: unknown) => logger.warn('live feed stop failed', { error }));
    }, feedIdleMs);
    feedIdle.unref();
  };

  // ---- sending, with backpressure -------------------------------------------------------------

  /** Sends unless the socket is closed or hopelessly behind; false when not sent. */
  const send = (client: Client, text: string): boolean => {
    if (client.ws.readyState !== client.ws.OPEN) return false;
    if (client.ws.bufferedAmount > maxBufferedBytes) {
      logger.warn('dropping a socket that does not read', { bufferedBytes: client.ws.bufferedAmount });
      client.ws.terminate();
      return false;
    }
    client.ws.send(text);
    return true;
  };
  const isSlow = (client: Client) => client.ws.bufferedAmount > slowBytes;
  const reply = (client: Client, message: Record<string, unknown>) => send(client, JSON.stringify(message));
  const replyError = (client: Client, error: ProtocolError) =>
    reply(client, {
      channel: 'error',
      message: error.message,
      field: error.field,
      ...(error.id === undefined ? {} : { id: error.id }),
    });

  // ---- leaderboards ---------------------------------------------------------------------------

  let leaders: DashboardLeaders[] = [];
  let leadersOmitted = 0;
  let leadersAtMs: number | undefined;
  let leadersError: string | undefined;
  let leadersReading = false;
  let leadersTriedMs = Number.NEGATIVE_INFINITY;

  const refreshLeaders = async (): Promise<void> => {
    const at = now();
    const hot = at - lastEventSeenMs < settleMs;
    // Without a working live feed nothing says when to look again: poll more often.
    const period = hot ? tickMs : feed?.state().state === 'live' ? 5_000 : 2_000;
    if (leadersReading || at - leadersTriedMs < period - 10) return;
    leadersReading = true;
    leadersTriedMs = at;
    try {
      const response = await options.query.topTargets({ types: [], limit: topLimit }, { timeoutMs: 2_000 });
      const all = response.leaders.map((l) => ({
        type: l.type,
        targets: l.targets.map((t) => ({ target: t.target, count: Number(t.count) })),
        sum: l.targets.reduce((s, t) => s + Number(t.count), 0),
      }));
      const kept = [...all]
        .sort((a, b) => b.sum - a.sum || (a.type < b.type ? -1 : 1))
        .slice(0, maxDashboardTypes)
        .sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
      leaders = kept.map(({ type, targets }) => ({ type, targets }));
      leadersOmitted = all.length - kept.length;
      leadersAtMs = now();
      leadersError = undefined;
    } catch (error) {
      if (leadersError === undefined)
        logger.warn('top targets failed (logged again once it recovered)', {
          error: error instanceof Error ? error.message : String(error),
        });
      leadersError = 'the query service did not answer; leaderboards may be stale';
    } finally {
      leadersReading = false;
    }
  };

  // ---- the dashboard tick ---------------------------------------------------------------------

  const liveState = () =>
    feed
      ? feed.state()
      : options.live
        ? { state: 'starting', reason: 'the live feed starts with the first subscriber' }
        : { state: 'off', reason: 'this gateway has no live feed configured' };

  const dashboardMessage = (): string => {
    const at = now();
    const s = stats.snapshot(at);
    return JSON.stringify({
      channel: 'dashboard',
      at: new Date(at).toISOString(),
      live: liveState(),
      rate: {
        perSecond: s.ratePerSecond,
        windowSeconds: s.rateWindowMs / 1000,
        history: s.history,
        historyStepSeconds: 1,
      },
      totals: {
        since: new Date(s.sinceMs).toISOString(),
        events: s.total,
        types: s.byType,
        otherTypes: s.otherTypes,
      },
      top: {
        limit: topLimit,
        at: leadersAtMs === undefined ? null : new Date(leadersAtMs).toISOString(),
        ...(leadersError === undefined ? {} : { error: leadersError }),
        types: leaders,
        typesOmitted: leadersOmitted,
      },
      latest: s.latest.map((e) => ({
        id: e.id,
        type: e.type,
        target: e.target,
        userId: e.userId,
        value: e.value,
        time: Number.isFinite(e.timeMs) ? new Date(e.timeMs).toISOString() : null,
      })),
      alerts: [],
    });
  };

  const sendDashboard = (only?: Client): void => {
    const targets = only ? [only] : [...clients].filter((c) => c.dashboard);
    if (targets.length === 0) return;
    const text = dashboardMessage();
    for (const client of targets) {
      // Each message is a full snapshot: a slow socket just misses this one.
      if (!isSlow(client)) send(client, text);
    }
  };

  // ---- counters -------------------------------------------------------------------------------

  let countersFailing = false;
  const readCounters = async (target: string, watch: TargetWatch): Promise<void> => {
    watch.reading = true;
    try {
      const response = await options.query.getCounters({ target }, { timeoutMs: 2_000 });
      watch.unread = false;
      countersFailing = false;
      const counts = response.counts.map((c) => ({ type: c.type, count: Number(c.count), sum: c.sum }));
      const key = JSON.stringify(counts);
      if (key === watch.lastCounts) return;
      watch.lastCounts = key;
      watch.lastMessage = JSON.stringify({
        channel: 'counters',
        target,
        counts,
        at: new Date(now()).toISOString(),
      });
      for (const client of watch.subscribers) client.pending.set(target, watch.lastMessage);
    } catch (error) {
      // An unread watch is retried on the next round; a hot one while it stays hot.
      if (!countersFailing)
        logger.warn('counters read failed (logged again once reads recovered)', {
          target,
          error: error instanceof Error ? error.message : String(error),
        });
      countersFailing = true;
    } finally {
      watch.reading = false;
    }
  };

  const COUNTERS_CONCURRENCY = 8;
  const countersRound = async (): Promise<void> => {
    const at = now();
    const due = [...watches].filter(([, w]) => !w.reading && (w.unread || w.hotUntil >= at));
    for (let i = 0; i < due.length; i += COUNTERS_CONCURRENCY)
      await Promise.all(due.slice(i, i + COUNTERS_CONCURRENCY).map(([t, w]) => readCounters(t, w)));
    flushPending();
  };

  const flushPending = (): void => {
    for (const client of clients) {
      for (const [target, text] of client.pending) {
        if (isSlow(client)) break;
        client.pending.delete(target);
        send(client, text);
      }
    }
  };

  // ---- subscriptions --------------------------------------------------------------------------

  const watch = (client: Client, target: string): void => {
    let w = watches.get(target);
    if (!w) {
      w = { subscribers: new Set(), hotUntil: 0, unread: true, reading: false };
      watches.set(target, w);
    }
    w.subscribers.add(client);
    client.targets.add(target);
    // Watched already by another socket: this one gets the last counters pushed, at once.
    if (w.lastMessage !== undefined) client.pending.set(target, w.lastMessage);
  };

  const unwatch = (client: Client, target: string): void => {
    client.targets.delete(target);
    client.pending.delete(target);
    const w = watches.get(target);
    if (!w) return;
    w.subscribers.delete(client);
    if (w.subscribers.size === 0) watches.delete(target);
  };

  const handleMessage = (client: Client, message: ClientMessage): void => {
    const idPart = message.id === undefined ? {} : { id: message.id };
    if (message.channel === 'dashboard') {
      client.dashboard = message.op === 'subscribe';
      reply(client, {
        channel: message.op === 'subscribe' ? 'subscribed' : 'unsubscribed',
        subscription: 'dashboard',
        ...idPart,
      });
      if (client.dashboard) {
        void refreshLeaders();
        sendDashboard(client);
      }
      return;
    }
    if (message.op === 'subscribe') {
      const added = message.targets.filter((t) => !client.targets.has(t));
      if (client.targets.size + added.length > maxTargets) {
        replyError(client, {
          field: 'targets',
          message: `targets: a socket watches at most ${maxTargets} targets (${client.targets.size} already, ${added.length} more asked); unsubscribe some first`,
          ...idPart,
        });
        return;
      }
      for (const target of added) watch(client, target);
      reply(client, {
        channel: 'subscribed',
        subscription: 'counters',
        targets: [...client.targets],
        ...idPart,
      });
      void countersRound();
      return;
    }
    for (const target of message.targets ?? [...client.targets]) unwatch(client, target);
    reply(client, {
      channel: 'unsubscribed',
      subscription: 'counters',
      targets: [...client.targets],
      ...idPart,
    });
  };

  const onConnection = (ws: WebSocket): void => {
    const client: Client = {
      ws,
      dashboard: false,
      targets: new Set(),
      pending: new Map(),
      alive: true,
      tokens: 2 * messageRate,
      tokensAtMs: now(),
    };
    clients.add(client);
    watched();
    ws.on('pong', () => {
      client.alive = true;
    });
    ws.on('message', (data, isBinary) => {
      client.alive = true;
      const at = now();
      client.tokens = Math.min(
        2 * messageRate,
        client.tokens + ((at - client.tokensAtMs) * messageRate) / 1000,
      );
      client.tokensAtMs = at;
      if (client.tokens < 1) {
        replyError(client, {
          field: 'message',
          message: `message: too many messages (at most ${messageRate} per second); this one was ignored`,
        });
        return;
      }
      client.tokens -= 1;
      try {
        if (isBinary) {
          replyError(client, { field: 'message', message: 'message: must be a text frame holding JSON' });
          return;
        }
        const bytes = Buffer.isBuffer(data)
          ? data
          : Array.isArray(data)
            ? Buffer.concat(data)
            : Buffer.from(data);
        const text = bytes.toString('utf8');
        const parsed = parseClientMessage(text, limits);
        if (isProtocolError(parsed)) replyError(client, parsed);
        else handleMessage(client, parsed);
      } catch (error) {
        logger.error('stream message failed', { error });
        replyError(client, { field: 'message', message: 'message: could not be handled (server error)' });
      }
    });
    ws.on('error', (error) => {
      // Oversized or malformed frames: ws closes the socket itself (1009 / 1002).
      logger.debug('stream socket error', { error: error.message });
    });
    ws.on('close', () => {
      clients.delete(client);
      for (const target of [...client.targets]) unwatch(client, target);
      unwatched();
    });
    reply(client, {
      channel: 'hello',
      protocol: STREAM_PROTOCOL_VERSION,
      live: liveState(),
      limits: {
        maxMessageBytes: options.maxMessageBytes ?? 256 * 1024,
        maxTargets,
        maxTargetChars: limits.maxTargetChars,
        maxMessagesPerSecond: messageRate,
        tickMs,
      },
    });
  };

  // ---- timers ---------------------------------------------------------------------------------

  const tick = setInterval(() => {
    if (![...clients].some((c) => c.dashboard)) return;
    void refreshLeaders();
    sendDashboard();
  }, tickMs);
  let countersBusy = false;
  const countersTimer = setInterval(
    () => {
      if (countersBusy || watches.size === 0) return;
      countersBusy = true;
      countersRound()
        .catch((error: unknown) => logger.error('counters round failed', { error }))
        .finally(() => {
          countersBusy = false;
        });
    },
    Math.max(50, Math.floor(tickMs / 2)),
  );
  const pings = setInterval(() => {
    for (const client of clients) {
      if (!client.alive) {
        client.ws.terminate();
        continue;
      }
      client.alive = false;
      client.ws.ping();
    }
  }, options.pingIntervalMs ?? 30_000);

  return {
    get socketCount() {
      return clients.size;
    },

    handleUpgrade(request, socket, head) {
      if (stopping || clients.size >= maxSockets) {
        const reason = stopping ? 'server is shutting down' : 'too many stream connections';
        socket.end(
          `HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${reason.length}\r\n\r\n${reason}`,
        );
        return;
      }
      wss.handleUpgrade(request, socket, head, onConnection);
    },

    async stop() {
      stopping = true;
      clearInterval(tick);
      clearInterval(countersTimer);
      clearInterval(pings);
      const closing = [...clients].map(
        (client) =>
          new Promise<void>((resolve) => {
            if (client.ws.readyState === client.ws.CLOSED) return resolve();
            client.ws.once('close', () => resolve());
            client.ws.close(1001, 'server shutting down');
          }),
      );
      const force = setTimeout(() => {
        for (const client of clients) client.ws.terminate();
      }, 2_000);
      await Promise.all(closing);
      clearTimeout(force);
      wss.close();
      clearTimeout(feedIdle);
      await feed?.stop();
    },
  };
}
