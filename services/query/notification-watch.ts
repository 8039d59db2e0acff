/**
 * The live side of WatchNotifications: one reader of the notification store per query process,
 * fanning out to every watch. The store makes notifications visible in seq order
 * (sql-notification-store.ts), so following its cursor misses none and repeats none: the reader
 * asks for those after the newest seq it has seen, every `pollMs` while someone watches, and hands
 * each to the watches whose filter it matches. A watch that resumes after a seq is first given
 * what it missed (the newest `replayMax` at most), then joins the live ones, with nothing between
 * the two lost or repeated: replays and reads run one at a time.
 */

import {
  matchesFilter,
  type NotificationFilter,
  type NotificationStore,
  type StoredNotification,
} from '../infra/alerts/notification-store.ts';
import { AppError, Code } from '../infra/app-error.ts';
import type { Logger } from '../infra/logger.ts';

/** What a watch yields. */
export type WatchEvent =
  | { kind: 'notification'; notification: StoredNotification }
  /** First, when more were missed than a replay holds: the replay starts at `resumedAtSeq`. */
  | { kind: 'truncated'; resumedAtSeq: string }
  /** After the replay: `seq` is the newest seq the watch has been given all of. */
  | { kind: 'caught-up'; seq: string };

export interface NotificationWatchOptions {
  store: NotificationStore;
  logger: Logger;
  /** How often the store is read while someone watches, ms (default 250). */
  pollMs?: number;
  /** Most notifications a resuming watch is replayed (default 1,000). */
  replayMax?: number;
  /** Most notifications queued for one watch whose client does not read; past it the watch ends (default 10,000). */
  maxQueued?: number;
}

export interface NotificationWatches {
  /**
   * The notifications matching `filter`: after `afterSeq` first when given, then live. Ends when
   * `signal` aborts; throws RESOURCE_EXHAUSTED when its client fell too far behind.
   */
  watch(
    filter: NotificationFilter,
    afterSeq: string | undefined,
    signal: AbortSignal,
  ): AsyncIterable<WatchEvent>;
  /** How many watches are open. */
  readonly size: number;
  /** Ends every watch and the reader. */
  stop(): void;
}

const PAGE = 1_000;

interface Watch {
  filter: NotificationFilter;
  queue: WatchEvent[];
  wake?: () => void;
  failed?: AppError;
}

export function createNotificationWatches(options: NotificationWatchOptions): NotificationWatches {
  const { store } = options;
  const logger = options.logger.child({ component: 'notification-watch' });
  const pollMs = options.pollMs ?? 250;
  const replayMax = options.replayMax ?? 1_000;
  const maxQueued = options.maxQueued ?? 10_000;
  const watches = new Set<Watch>();
  /** The newest seq every live watch has been given all of; undefined until first read. */
  let cursor: string | undefined;
  /** Replays and reads, one at a time. */
  let serial: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let failures = 0;

  const inTurn = <T>(work: () => Promise<T>): Promise<T> => {
    const turn = serial.then(work);
    serial = turn.catch(() => {});
    return turn;
  };
  const push = (watch: Watch, event: WatchEvent) => {
    if (watch.failed) return;
    if (watch.queue.length >= maxQueued) {
      watch.failed = new AppError(
        Code.RESOURCE_EXHAUSTED,
        `the watch fell ${maxQueued} notifications behind; resume after the last seq received`,
      );
      watch.queue.length = 0;
    } else watch.queue.push(event);
    watch.wake?.();
  };
  const start = async () => (cursor ??= await store.latestSeq());

  /** Hands every notification kept after the cursor to the watches it matches. */
  const read = async () => {
    if (watches.size === 0) return;
    await start();
    for (;;) {
      const page = await store.since(cursor!, {}, PAGE);
      for (const notification of page) {
        for (const watch of watches)
          if (matchesFilter(notification, watch.filter)) push(watch, { kind: 'notification', notification });
        cursor = notification.seq;
      }
      if (page.length < PAGE) return;
    }
  };
  const schedule = () => {
    if (stopped || timer || watches.size === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      inTurn(read)
        .then(() => {
          failures = 0;
        })
        .catch((error: unknown) => {
          // The store is down: watches wait (nothing is skipped: the cursor did not move).
          if (failures++ % 40 === 0)
            logger.warn('notification store unreadable; retrying', { error, failures });
        })
        .finally(schedule);
    }, pollMs);
    timer.unref();
  };

  /** What a watch resuming after `afterSeq` missed, up to the cursor: the newest `replayMax`. */
  const replay = async (watch: Watch, afterSeq: string) => {
    const upTo = await start();
    const recipient = watch.filter.recipients?.[0];
    const newest = await store.list({
      ...(recipient === undefined ? {} : { recipient }),
      ...(watch.filter.target === undefined ? {} : { target: watch.filter.target }),
      before: String(BigInt(upTo) + 1n),
      limit: replayMax + 1,
    });
    const missed = newest.notifications.filter((n) => BigInt(n.seq) > BigInt(afterSeq)).reverse();
    if (missed.length > replayMax) {
      missed.shift();
      push(watch, { kind: 'truncated', resumedAtSeq: missed[0]!.seq });
    }
    for (const notification of missed) push(watch, { kind: 'notification', notification });
  };

  return {
    get size() {
      return watches.size;
    },
    async *watch(filter, afterSeq, signal) {
      const watch: Watch = { filter, queue: [] };
      await inTurn(async () => {
        if (afterSeq !== undefined) await replay(watch, afterSeq);
        else await start();
        push(watch, { kind: 'caught-up', seq: cursor! });
        watches.add(watch);
      });
      schedule();
      const abort = () => watch.wake?.();
      signal.addEventListener('abort', abort);
      try {
        while (!signal.aborted && !stopped) {
          if (watch.failed) throw watch.failed;
          const event = watch.queue.shift();
          if (event) {
            yield event;
            continue;
          }
          await new Promise<void>((resolve) => {
            watch.wake = resolve;
          });
          watch.wake = undefined;
        }
      } finally {
        signal.removeEventListener('abort', abort);
        watches.delete(watch);
      }
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      for (const watch of watches) watch.wake?.();
    },
  };
}
