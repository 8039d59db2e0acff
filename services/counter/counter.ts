/**
 * The counter role (group `group_realtimecounter`): live counts and sums per (target, type), the
 * hour windows of the leaderboards and the unique users in the counter store. It reads the accepted topic, where the persister forwards each event id once;
 * the store applies each event once by its offset in the events topic (docs/guarantees.md).
 */
import type { CounterIncrement, CounterStore } from '../infra/counters/counter-store.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import { eventTimeMs } from '../pipeline/event-codec.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';

export type CounterConfig = SinkRoleConfig;

export interface CounterDeps extends SinkRoleDeps {
  counters: CounterStore;
}

export function start(deps: CounterDeps, config: CounterConfig): Promise<Stoppable> {
  return startSinkRole(deps, config, {
    name: 'counter',
    spanName: 'counter apply',
    apply: async (batches) => {
      const increments: CounterIncrement[] = [];
      for (const { events } of batches)
        for (const { event, partition, position } of events)
          increments.push({
            partition,
            position,
            target: event.target,
            type: event.type,
            value: event.value,
            timeMs: eventTimeMs(event),
            userId: event.userId,
          });
      if (increments.length > 0) await deps.counters.apply(increments);
    },
  });
}
