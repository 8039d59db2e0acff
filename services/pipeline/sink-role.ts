/**
 * What every sink role shares: its configuration (group, topics, fetch wait, lag sampling) and
 * its dependencies (the event log, logs, metrics, traces), and the start of its consume loop.
 * A sink role adds its own store to the deps and its write as `apply`.
 */
import type { Stoppable } from '../infra/lifecycle.ts';
import type { EventLog } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';
import type { Registry } from '../infra/metrics.ts';
import type { Tracer } from '../infra/tracing.ts';
import { type EventBatch, startEventConsumer } from './event-consumer.ts';

export interface SinkRoleConfig {
  /** The consumer group, TALLY_GROUP_PREFIX included. */
  groupId: string;
  /** The topic it reads: the events topic, or the accepted topic for a sink downstream of the persister. */
  eventsTopic: string;
  dlqTopic: string;
  /** Longest a fetch waits for records (for `minBytes` of them), ms. */
  maxWaitMs: number;
  /** Bytes of records a fetch waits for, up to `maxWaitMs` (default 1: answered at the first record). */
  minBytes?: number;
  /** How often the group's lag is sampled, ms. */
  lagIntervalMs: number;
  /** Pacing of small batches, ms (TALLY_CONSUMER_PACE_MS; event-consumer.ts); 0 or absent: none. */
  paceMs?: number;
}

export interface SinkRoleDeps {
  log: EventLog;
  logger: Logger;
  metrics: Registry;
  /** Traces each batch and its write (docs/tracing.md); none when tracing is off. */
  tracer?: Tracer;
}

export interface SinkRoleOptions {
  /** The role's name: the `sink` label of its metrics, and its logs' `role`. */
  name: string;
  /** The name of the write's span, such as `persister insert`. */
  spanName: string;
  /**
   * Applies batches of distinct partitions (those in hand at once, gathered) in one write; resolves
   * once the store holds every effect, throws on infrastructure failure.
   */
  apply: (batches: readonly EventBatch[]) => Promise<void>;
}

/** Starts the sink's consume loop; the Stoppable finishes the batch in hand, commits and stops. */
export function startSinkRole(
  deps: SinkRoleDeps,
  config: SinkRoleConfig,
  options: SinkRoleOptions,
): Promise<Stoppable> {
  return startEventConsumer({
    name: options.name,
    log: deps.log,
    logger: deps.logger,
    metrics: deps.metrics,
    tracer: deps.tracer,
    groupId: config.groupId,
    topic: config.eventsTopic,
    dlqTopic: config.dlqTopic,
    maxWaitMs: config.maxWaitMs,
    minBytes: config.minBytes,
    lagIntervalMs: config.lagIntervalMs,
    paceMs: config.paceMs,
    sinkSpanName: options.spanName,
    sink: options.apply,
  });
}
