/**
 * The counter role (group `group_realtimecounter`): live counts and sums per
 * (target, type) in the counter store, each event applied once.
 */
import type { CounterStore } from '../infra/counters/counter-store.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { EventLog } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';
import type { Registry } from '../infra/metrics.ts';
import type { Tracer } from '../infra/tracing.ts';
import { startEventConsumer } from '../pipeline/event-consumer.ts';

export interface CounterConfig {
  groupId: string;
  eventsTopic: string;
  dlqTopic: string;
  maxWaitMs: number;
  /** How often the group's lag is sampled, ms. */
  lagIntervalMs: number;
}

export interface CounterDeps {
  log: EventLog;
  counters: CounterStore;
  logger: Logger;
  metrics: Registry;
  /** Traces each batch and its write (docs/tracing.md); none when tracing is off. */
  tracer?: Tracer;
}

export async function start(deps: CounterDeps, config: CounterConfig): Promise<Stoppable> {
  return startEventConsumer({
    name: 'counter',
    log: deps.log,
    logger: deps.logger,
    groupId: config.groupId,
    topic: config.eventsTopic,
    dlqTopic: config.dlqTopic,
    maxWaitMs: config.maxWaitMs,
    lagIntervalMs: config.lagIntervalMs,
    metrics: deps.metrics,
    tracer: deps.tracer,
    sinkSpanName: 'counter apply',
    sink: async (batch) => {
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
