/**
 * The gateway's own read of the events topic: a consumer group of its own per
 * gateway process, starting at the end of the log, decoding each record for the
 * dashboard and the counter subscriptions. It never blocks the gateway: it joins
 * in the background and retries with backoff while the log is unreachable.
 */

import type { Stoppable } from '../infra/lifecycle.ts';
import type { ConsumedBatch, EventLog, LogConsumer } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';
import { decodeEvent, eventTimeMs, timestampToMs } from '../pipeline/event-codec.ts';
import type { LiveEvent } from './live-stats.ts';

/**
 * The feed's fetches wait for this much (or `maxWaitMs`): a dashboard refreshing a few times a
 * second needs no fetch per record, and a fetch answered at once for each few records would cost
 * the gateway more CPU than the requests it serves.
 */
const LIVE_FETCH_MIN_BYTES = 64 * 1024;

/** What `GatewayDeps.live` carries: where the live feed reads. */
export interface LiveFeedSource {
  log: EventLog;
  eventsTopic: string;
  /** This gateway process's own group (e.g. `<prefix>gateway-live-<host>-<pid>`). */
  groupId: string;
  /** Longest wait of one fetch, ms (small: it bounds the dashboard's delay). */
  maxWaitMs: number;
}

/** `starting`: joining the group; `live`: consuming; `unavailable`: the log cannot be reached (retrying). */
export type LiveState = 'starting' | 'live' | 'unavailable';

export interface LiveFeed extends Stoppable {
  state(): { state: LiveState; reason?: string };
}

export interface LiveFeedOptions extends LiveFeedSource {
  logger: Logger;
  /** Called with each batch's decoded events, in log order; must not throw. */
  onEvents(events: LiveEvent[]): void;
  /** First retry delay after a failed start, ms (default 1,000; doubles up to 30 s). */
  retryDelayMs?: number;
}

/** Starts reading in the background; `stop()` leaves the group. */
export function startLiveFeed(options: LiveFeedOptions): LiveFeed {
  const logger = options.logger.child({ component: 'live-feed', group: options.groupId });
  let state: LiveState = 'starting';
  let reason: string | undefined;
  let stopped = false;
  let consumer: LogConsumer | undefined;
  let wake: (() => void) | undefined;
  let undecodable = 0;

  const handle = async (batch: ConsumedBatch): Promise<void> => {
    const events: LiveEvent[] = [];
    for (const record of batch.records) {
      try {
        const event = decodeEvent(record.value);
        const receivedAtMs = event.receivedAt ? timestampToMs(event.receivedAt) : record.timestampMs;
        events.push({
          id: event.id,
          type: event.type,
          target: event.target,
          userId: event.userId,
          value: event.value ?? null,
          timeMs: eventTimeMs(event),
          receivedAtMs,
        });
      } catch {
        // The sinks dead-letter such records; the dashboard just skips them.
        if (undecodable++ % 1000 === 0)
          logger.warn('live feed skipped undecodable records', { undecodable, partition: batch.partition });
      }
    }
    if (events.length === 0) return;
    try {
      options.onEvents(events);
    } catch (error) {
      logger.error('live feed listener failed', { error });
    }
  };

  const run = async (): Promise<void> => {
    let delayMs = options.retryDelayMs ?? 1_000;
    while (!stopped) {
      const attempt = options.log.consumer({
        groupId: options.groupId,
        topics: [options.eventsTopic],
        fromBeginning: false,
        maxWaitMs: options.maxWaitMs,
        minBytes: LIVE_FETCH_MIN_BYTES,
      });
      consumer = attempt;
      try {
        await attempt.run(handle);
        if (stopped) {
          await attempt.stop();
          return;
        }
        state = 'live';
        reason = undefined;
        logger.info('live feed consuming', { topic: options.eventsTopic });
        return;
      } catch (error) {
        await attempt.stop().catch(() => {});
        if (stopped) return;
        state = 'unavailable';
        reason = 'the event log cannot be reached';
        logger.warn('live feed could not start; retrying', { error, retryInMs: delayMs });
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delayMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
        delayMs = Math.min(delayMs * 2, 30_000);
      }
    }
  };
  const running = run();

  return {
    name: 'gateway live feed',
    state: () => (reason === undefined ? { state } : { state, reason }),
    async stop() {
      stopped = true;
      wake?.();
      await consumer?.stop();
      // A start still in flight stops its consumer itself once it returns.
      await Promise.race([running, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    },
  };
}
