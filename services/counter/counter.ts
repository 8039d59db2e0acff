/**
 * The counter role (group `group_realtimecounter`): live counts and sums per (target, type), the
 * hour windows of the leaderboards and the unique users in the counter store, and the
 * sliding-window aggregates per user and per target in the aggregate store. It reads the accepted
 * topic, where the persister forwards each event id once; both stores apply each event once by
 * its offset in the events topic (docs/guarantees.md), before the batch commits.
 */
import {
  type AggregateIncrement,
  type AggregateStore,
  yieldToIo,
} from '../infra/aggregates/aggregate-store.ts';
import type { CounterIncrement, CounterStore } from '../infra/counters/counter-store.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import { eventTimeMs } from '../pipeline/event-codec.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';

export interface CounterConfig extends SinkRoleConfig {
  /** The types whose aggregates are kept (TALLY_AGGREGATE_TYPES): every type, or those listed (none when empty). */
  aggregateTypes?: 'all' | readonly string[];
}

export interface CounterDeps extends SinkRoleDeps {
  counters: CounterStore;
  /** The sliding-window aggregates; none: not kept. */
  aggregates?: AggregateStore;
}

export function start(deps: CounterDeps, config: CounterConfig): Promise<Stoppable> {
  const types = config.aggregateTypes ?? 'all';
  const aggregates = types === 'all' || types.length > 0 ? deps.aggregates : undefined;
  const kept = types === 'all' ? () => true : (type: string) => types.includes(type);
  return startSinkRole(deps, config, {
    name: 'counter',
    spanName: 'counter apply',
    apply: async (batches) => {
      const increments: CounterIncrement[] = [];
      const series: AggregateIncrement[] = [];
      for (const { events } of batches)
        for (const { event, partition, position } of events) {
          const timeMs = eventTimeMs(event);
          increments.push({
            partition,
            position,
            target: event.target,
            type: event.type,
            value: event.value,
            timeMs,
            userId: event.userId,
          });
          if (!aggregates || !kept(event.type) || !Number.isFinite(timeMs)) continue;
          const common = { partition, position, type: event.type, timeMs, value: event.value };
          series.push({ ...common, kind: 'target', subject: event.target });
          if (event.userId) series.push({ ...common, kind: 'user', subject: event.userId });
        }
      const counting = increments.length > 0 && deps.counters.apply(increments);
      if (series.length === 0 || !aggregates) {
        await counting;
        return;
      }
      // The counters' scripts go out before the aggregates' are built: Redis runs the one while
      // this process builds the other.
      await Promise.all([counting, yieldToIo().then(() => aggregates.apply(series))]);
    },
  });
}
