/**
 * The `dashboard` channel of `/v1/stream`: a snapshot about every `tickMs` of the live feed's
 * statistics, the leaderboards (QueryService.TopTargets) and alerts, to each subscribed socket.
 * Each message is a full snapshot: a slow socket skips ticks.
 */
import type { QueryService } from '../gen/tally/v1/query_pb.js';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import type { Logger } from '../infra/logger.ts';
import { type LiveEvent, LiveStats } from './live-stats.ts';
import type { SocketHub, StreamSocket } from './socket-hub.ts';
import type { ClientMessage } from './stream-protocol.ts';

/** The live feed's state as the dashboard and `hello` show it. */
export interface LiveStateView {
  state: string;
  reason?: string;
}

export interface DashboardFeedOptions {
  query: ServiceClient<(typeof QueryService)['method']>;
  hub: SocketHub;
  logger: Logger;
  now: () => number;
  /** The live feed's state now. */
  liveState: () => LiveStateView;
  /** Dashboard period, ms; also the leaderboards' period while events arrive. */
  tickMs: number;
  /** How long after the last event seen the leaderboards are read every tick, ms. */
  settleMs: number;
  /** Targets per type in the leaderboards. */
  topLimit: number;
  /** Most types in a message (the ones with the highest leaderboard sums). */
  maxDashboardTypes: number;
}

interface DashboardLeaders {
  type: string;
  targets: { target: string; count: number }[];
}

/** Ticks from construction until `stop()`; sends only while a socket subscribed. */
export class DashboardFeed {
  readonly #options: DashboardFeedOptions;
  readonly #tick: NodeJS.Timeout;
  #stats: LiveStats;
  #lastEventSeenMs = Number.NEGATIVE_INFINITY;
  #leaders: DashboardLeaders[] = [];
  #leadersOmitted = 0;
  #leadersAtMs: number | undefined;
  #leadersError: string | undefined;
  #leadersReading = false;
  #leadersTriedMs = Number.NEGATIVE_INFINITY;

  constructor(options: DashboardFeedOptions) {
    this.#options = options;
    this.#stats = new LiveStats(options.now());
    this.#tick = setInterval(() => {
      if (![...options.hub.sockets].some((s) => s.dashboard)) return;
      void this.#refreshLeaders();
      this.#send();
    }, options.tickMs);
  }

  /** Counts from `at` afresh: the live feed (re)started. */
  reset(at: number): void {
    this.#stats = new LiveStats(at);
    this.#lastEventSeenMs = Number.NEGATIVE_INFINITY;
  }

  /** Events the live feed saw at `at` (ms). */
  seen(events: LiveEvent[], at: number): void {
    this.#stats.add(events, at);
    this.#lastEventSeenMs = at;
  }

  /** A `dashboard` subscribe or unsubscribe: answers it; a subscriber gets a snapshot at once. */
  handle(socket: StreamSocket, message: Extract<ClientMessage, { channel: 'dashboard' }>): void {
    socket.dashboard = message.op === 'subscribe';
    this.#options.hub.reply(socket, {
      channel: message.op === 'subscribe' ? 'subscribed' : 'unsubscribed',
      subscription: 'dashboard',
      ...(message.id === undefined ? {} : { id: message.id }),
    });
    if (socket.dashboard) {
      void this.#refreshLeaders();
      this.#send(socket);
    }
  }

  stop(): void {
    clearInterval(this.#tick);
  }

  #send(only?: StreamSocket): void {
    const { hub } = this.#options;
    const sockets = only ? [only] : [...hub.sockets].filter((s) => s.dashboard);
    if (sockets.length === 0) return;
    const text = this.#message();
    for (const socket of sockets) {
      // Each message is a full snapshot: a slow socket just misses this one.
      if (!hub.isSlow(socket)) hub.send(socket, text);
    }
  }

  #message(): string {
    const at = this.#options.now();
    const s = this.#stats.snapshot(at);
    return JSON.stringify({
      channel: 'dashboard',
      at: new Date(at).toISOString(),
      live: this.#options.liveState(),
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
        limit: this.#options.topLimit,
        at: this.#leadersAtMs === undefined ? null : new Date(this.#leadersAtMs).toISOString(),
        ...(this.#leadersError === undefined ? {} : { error: this.#leadersError }),
        types: this.#leaders,
        typesOmitted: this.#leadersOmitted,
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
  }

  /** Reads the leaderboards unless a read is in flight or the last one is recent enough. */
  async #refreshLeaders(): Promise<void> {
    const { now, settleMs, tickMs, liveState } = this.#options;
    const at = now();
    const hot = at - this.#lastEventSeenMs < settleMs;
    // Without a working live feed nothing says when to look again: poll more often.
    const period = hot ? tickMs : liveState().state === 'live' ? 5_000 : 2_000;
    if (this.#leadersReading || at - this.#leadersTriedMs < period - 10) return;
    this.#leadersReading = true;
    this.#leadersTriedMs = at;
    try {
      this.#keepLeaders(
        await this.#options.query.topTargets(
          { types: [], limit: this.#options.topLimit },
          { timeoutMs: 2_000 },
        ),
      );
      this.#leadersAtMs = now();
      this.#leadersError = undefined;
    } catch (error) {
      if (this.#leadersError === undefined)
        this.#options.logger.warn('top targets failed (logged again once it recovered)', {
          error: error instanceof Error ? error.message : String(error),
        });
      this.#leadersError = 'the query service did not answer; leaderboards may be stale';
    } finally {
      this.#leadersReading = false;
    }
  }

  /** Keeps the `maxDashboardTypes` types with the highest sums, in type order. */
  #keepLeaders(response: {
    leaders: { type: string; targets: { target: string; count: bigint }[] }[];
  }): void {
    const all = response.leaders.map((l) => ({
      type: l.type,
      targets: l.targets.map((t) => ({ target: t.target, count: Number(t.count) })),
      sum: l.targets.reduce((s, t) => s + Number(t.count), 0),
    }));
    const kept = [...all]
      .sort((a, b) => b.sum - a.sum || (a.type < b.type ? -1 : 1))
      .slice(0, this.#options.maxDashboardTypes)
      .sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
    this.#leaders = kept.map(({ type, targets }) => ({ type, targets }));
    this.#leadersOmitted = all.length - kept.length;
  }
}
