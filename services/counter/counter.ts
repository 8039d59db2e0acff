/**
 * The counter role (group `group_realtimecounter`): live counts and sums per
 * (target, type) in the counter store, each event applied once.
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
        batch.events.map(({ event }) => ({
          eventId: event.id,
          target: event.target,
          type: event.type,
          value: event.value,
        })),
      );
    },
  });
}
