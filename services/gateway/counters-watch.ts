/**
 * The `counters` channel of `/v1/stream`: the targets sockets watch, read with
 * QueryService.GetCounters when new and for `settleMs` after the live feed saw an event for them,
 * pushed only when they changed. A slow socket gets only the latest counters of a target.
 */
import type { QueryService } from '../gen/tally/v1/query_pb.js';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import type { Logger } from '../infra/logger.ts';
import type { LiveEvent } from './live-stats.ts';
import type { SocketHub, StreamSocket } from './socket-hub.ts';
import type { ClientMessage } from './stream-protocol.ts';

/** Reads of one round in flight at once. */
const COUNTERS_CONCURRENCY = 8;

export interface CountersWatchOptions {
  query: ServiceClient<(typeof QueryService)['method']>;
  hub: SocketHub;
  logger: Logger;
  now: () => number;
  /** How long a target's counters are re-read after the last event seen for it, ms. */
  settleMs: number;
  /** Period of the reading rounds, ms. */
  roundMs: number;
  /** Most targets per socket. */
  maxTargets: number;
}

interface TargetWatch {
  subscribers: Set<StreamSocket>;
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

/** Reads every `roundMs` from construction until `stop()`, while any target is watched. */
export class CountersWatch {
  readonly #options: CountersWatchOptions;
  readonly #watches = new Map<string, TargetWatch>();
  readonly #timer: NodeJS.Timeout;
  #busy = false;
  #failing = false;

  constructor(options: CountersWatchOptions) {
    this.#options = options;
    this.#timer = setInterval(() => {
      if (this.#busy || this.#watches.size === 0) return;
      this.#busy = true;
      this.round()
        .catch((error: unknown) => options.logger.error('counters round failed', { error }))
        .finally(() => {
          this.#busy = false;
        });
    }, options.roundMs);
  }

  /** A `counters` subscribe or unsubscribe: answers it, and reads new targets at once. */
  handle(socket: StreamSocket, message: Extract<ClientMessage, { channel: 'counters' }>): void {
    const { hub, maxTargets } = this.#options;
    const idPart = message.id === undefined ? {} : { id: message.id };
    if (message.op === 'subscribe') {
      const added = message.targets.filter((t) => !socket.targets.has(t));
      if (socket.targets.size + added.length > maxTargets) {
        hub.replyError(socket, {
          field: 'targets',
          message: `targets: a socket watches at most ${maxTargets} targets (${socket.targets.size} already, ${added.length} more asked); unsubscribe some first`,
          ...idPart,
        });
        return;
      }
      for (const target of added) this.#watch(socket, target);
      hub.reply(socket, {
        channel: 'subscribed',
        subscription: 'counters',
        targets: [...socket.targets],
        ...idPart,
      });
      void this.round();
      return;
    }
    for (const target of message.targets ?? [...socket.targets]) this.#unwatch(socket, target);
    hub.reply(socket, {
      channel: 'unsubscribed',
      subscription: 'counters',
      targets: [...socket.targets],
      ...idPart,
    });
  }

  /** Forgets a closed socket's subscriptions. */
  closed(socket: StreamSocket): void {
    for (const target of [...socket.targets]) this.#unwatch(socket, target);
  }

  /** The live feed saw these events (at `at`, ms): their watched targets are read for `settleMs`. */
  seen(events: readonly LiveEvent[], at: number): void {
    for (const event of events) {
      const watch = this.#watches.get(event.target);
      if (watch) watch.hotUntil = at + this.#options.settleMs;
    }
  }

  /** Reads the targets due (new or hot), then sends each socket what it can take of its pending. */
  async round(): Promise<void> {
    const at = this.#options.now();
    const due = [...this.#watches].filter(([, w]) => !w.reading && (w.unread || w.hotUntil >= at));
    for (let i = 0; i < due.length; i += COUNTERS_CONCURRENCY)
      await Promise.all(due.slice(i, i + COUNTERS_CONCURRENCY).map(([t, w]) => this.#read(t, w)));
    this.#flushPending();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async #read(target: string, watch: TargetWatch): Promise<void> {
    const { query, logger, now } = this.#options;
    watch.reading = true;
    try {
      const response = await query.getCounters({ target }, { timeoutMs: 2_000 });
      watch.unread = false;
      this.#failing = false;
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
      for (const socket of watch.subscribers) socket.pending.set(target, watch.lastMessage);
    } catch (error) {
      // An unread watch is retried on the next round; a hot one while it stays hot.
      if (!this.#failing)
        logger.warn('counters read failed (logged again once reads recovered)', {
          target,
          error: error instanceof Error ? error.message : String(error),
        });
      this.#failing = true;
    } finally {
      watch.reading = false;
    }
  }

  #flushPending(): void {
    const { hub } = this.#options;
    for (const socket of hub.sockets) {
      for (const [target, text] of socket.pending) {
        if (hub.isSlow(socket)) break;
        socket.pending.delete(target);
        hub.send(socket, text);
      }
    }
  }

  #watch(socket: StreamSocket, target: string): void {
    let w = this.#watches.get(target);
    if (!w) {
      w = { subscribers: new Set(), hotUntil: 0, unread: true, reading: false };
      this.#watches.set(target, w);
    }
    w.subscribers.add(socket);
    socket.targets.add(target);
    // Watched already by another socket: this one gets the last counters pushed, at once.
    if (w.lastMessage !== undefined) socket.pending.set(target, w.lastMessage);
  }

  #unwatch(socket: StreamSocket, target: string): void {
    socket.targets.delete(target);
    socket.pending.delete(target);
    const w = this.#watches.get(target);
    if (!w) return;
    w.subscribers.delete(socket);
    if (w.subscribers.size === 0) this.#watches.delete(target);
  }
}
