/**
 * The alerter's state, one port (`alerts`): the milestone store and the series store, on the same
 * Redis (standalone or Cluster) as the counters, else embedded under one folder.
 */
import { type Registry, redisMetrics } from '../metrics.ts';
import type { RedisConnectionOptions } from '../redis-client.ts';
import { createEmbeddedMilestoneStore } from './embedded-milestone-store.ts';
import { createEmbeddedSeriesStore } from './embedded-series-store.ts';
import type { MilestoneStore } from './milestone-store.ts';
import { createRedisMilestoneStore } from './redis-milestone-store.ts';
import { createRedisSeriesStore } from './redis-series-store.ts';
import type { SeriesStore } from './series-store.ts';

export interface AlertStores {
  /** Which adapters, for the start-up log and readiness. */
  readonly description: string;
  readonly milestones: MilestoneStore;
  readonly series: SeriesStore;
  /** Resolves when both answer; for readiness. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

function alertStores(milestones: MilestoneStore, series: SeriesStore): AlertStores {
  return {
    description:
      milestones.description === series.description
        ? milestones.description
        : `${milestones.description}; ${series.description}`,
    milestones,
    series,
    async ping() {
      await Promise.all([milestones.ping(), series.ping()]);
    },
    async close() {
      await Promise.allSettled([milestones.close(), series.close()]);
    },
  };
}

/**
 * Both stores on Redis, keys under `keyPrefix`; with `metrics`, each call is timed in
 * `tally_redis_operation_duration_seconds` (operations `milestones`, `series`).
 */
export function createRedisAlertStores(
  options: RedisConnectionOptions & { keyPrefix: string; metrics?: Registry | undefined },
): AlertStores {
  const milestones = createRedisMilestoneStore(options);
  const series = createRedisSeriesStore(options);
  if (!options.metrics) return alertStores(milestones, series);
  const { duration } = redisMetrics(options.metrics);
  const timed =
    (operation: 'milestones' | 'series') =>
    <A extends unknown[], T>(call: (...args: A) => Promise<T>) =>
    async (...args: A): Promise<T> => {
      const end = duration.startTimer({ operation });
      try {
        return await call(...args);
      } finally {
        end();
      }
    };
  const m = timed('milestones');
  const s = timed('series');
  return alertStores(
    {
      ...milestones,
      apply: m(milestones.apply),
      confirm: m(milestones.confirm),
      inspect: m(milestones.inspect),
    },
    {
      ...series,
      apply: s(series.apply),
      read: s(series.read),
      commit: s(series.commit),
      confirm: s(series.confirm),
    },
  );
}

/** Both stores in the process, durable under `dataDir`. */
export function createEmbeddedAlertStores(options: { dataDir: string }): AlertStores {
  const dataDir = options.dataDir;
  return alertStores(createEmbeddedMilestoneStore({ dataDir }), createEmbeddedSeriesStore({ dataDir }));
}
