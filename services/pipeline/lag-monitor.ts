/**
 * The lag monitor: samples a consumer group's lag on every partition of its
 * topic into the `tally_consumer_lag_messages` gauge, for dashboards and KEDA.
 */
import type { EventLog, PartitionOffsets } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';
import type { ConsumerMetrics } from '../infra/metrics.ts';

/**
 * A group's lag on a partition: records at or past its committed offset. A
 * partition it never committed (or whose committed records retention removed)
 * counts from the log start, where such a group starts reading.
 */
export function partitionLag(offsets: PartitionOffsets): number {
  const from =
    offsets.committed !== undefined && offsets.committed > offsets.start ? offsets.committed : offsets.start;
  return offsets.end > from ? Number(offsets.end - from) : 0;
}

export interface LagMonitorOptions {
  log: EventLog;
  groupId: string;
  topic: string;
  /** How often the offsets are read, ms. */
  intervalMs: number;
  gauge: ConsumerMetrics['lag'];
  logger: Logger;
}

export interface LagMonitor {
  /** Takes a sample now, or joins the one in flight. */
  sample(): Promise<void>;
  /** Ends the sampling; waits up to a second for a sample in flight (whose result is dropped). */
  stop(): Promise<void>;
}

/**
 * Samples `groupId`'s lag on every partition of `topic` now and every
 * `intervalMs` into the gauge. A sample still running when the next is due
 * is not doubled; a failed one is logged at debug (the consumer itself
 * reports outages) and leaves the last values.
 */
export function startLagMonitor(options: LagMonitorOptions): LagMonitor {
  let stopped = false;
  let inFlight: Promise<void> | undefined;
  const sample = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    inFlight ??= (async () => {
      try {
        const offsets = await options.log.groupOffsets(options.groupId, options.topic);
        if (stopped) return;
        for (const p of offsets)
          options.gauge.set(
            { group: options.groupId, topic: options.topic, partition: String(p.partition) },
            partitionLag(p),
          );
      } catch (error) {
        options.logger.debug('consumer lag sample failed', { group: options.groupId, error });
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };
  void sample();
  const timer = setInterval(sample, options.intervalMs);
  timer.unref();
  return {
    sample,
    async stop() {
      stopped = true;
      clearInterval(timer);
      // So that no request of a sample is still out when the log closes, unless the log hangs.
      let wait: NodeJS.Timeout | undefined;
      await Promise.race([inFlight, new Promise((resolve) => (wait = setTimeout(resolve, 1_000)))]);
      clearTimeout(wait);
    },
  };
}
