/**
 * The counter role (group `group_realtimecounter`): live counts and sums per (target, type) in
 * the counter store. It reads the accepted topic, where the persister forwards each event id once;
 * the store applies each event once by its offset in the events topic (docs/guarantees.md).
 */
import type { CounterStore } from '../infra/counters/counter-store.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';

export type CounterConfig = SinkRoleConfig;

export interface CounterDeps extends SinkRoleDeps {
  counters: CounterStore;
}

export function start(deps: CounterDeps, config: CounterConfig): Promise<Stoppable> {
  return startSinkRole(deps, config, {
    name: 'counter',
    spanName: 'counter apply',
    apply: async (batch) => {
      if (batch.events.length === 0) return;
      await deps.counters.apply(
        batch.partition,
        batch.events.map(({ event, position }) => ({
          position,
          target: event.target,
          type: event.type,
          value: event.value,
        })),
      );
    },
  });
}
