/**
 * The loop every sink role runs: read a partition's batch of events, decode
 * and check them, hand the good ones to the sink, send poison records to the
 * dead-letter topic, and only then let the consumer commit past the batch.
 */
import { defaultEventLimits, validateEvent } from '../domain/event-rules.ts';
import { decodeEvent, type Event, toEventInput } from './event-codec.ts';
import type { Stoppable } from './lifecycle.ts';
import type { ConsumedBatch, ConsumedRecord, EventLog } from './log/event-log.ts';
import type { Logger } from './logger.ts';
import { consumerMetrics, type Registry, secondsSince, startLagMonitor } from './metrics.ts';

/** A decoded event and where it was read from. */
export interface LoggedEvent {
  event: Event;
  partition: number;
  offset: bigint;
}

export interface EventBatch {
  topic: string;
  partition: number;
  /** Offset of the batch's last record (poison records included). */
  lastOffset: bigint;
  /** The decodable, well-formed events of the batch, in offset order. */
  events: LoggedEvent[];
}

export interface EventConsumerOptions {
  name: string;
  log: EventLog;
  logger: Logger;
  groupId: string;
  topic: string;
  dlqTopic: string;
  maxWaitMs: number;
  /** Applies a batch to the sink; resolves when the sink holds every effect, throws on infrastructure failure. */
  sink: (batch: EventBatch) => Promise<void>;
  /** Where the consumer's metrics go (docs/metrics.md); the sink label is `name`. */
  metrics: Registry;
  /** How often the group's lag is sampled, ms. */
  lagIntervalMs: number;
}

// Stored events passed ingest's rules when they were written; only their time may have aged since.
const storedEventLimits = {
  ...defaultEventLimits,
  maxLatenessMs: Number.POSITIVE_INFINITY,
  maxFutureMs: Number.POSITIVE_INFINITY,
};

/** Starts consuming; the returned Stoppable stops fetching, finishes the batch in hand and commits. */
export async function startEventConsumer(options: EventConsumerOptions): Promise<Stoppable> {
  const logger = options.logger.child({ role: options.name, group: options.groupId });
  const consumer = options.log.consumer({
    groupId: options.groupId,
    topics: [options.topic],
    fromBeginning: true,
    maxWaitMs: options.maxWaitMs,
  });
  const dlq = options.log.producer();
  const metrics = consumerMetrics(options.metrics);
  const group = { group: options.groupId };
  const batchEvents = metrics.batchEvents.labels(group);
  const batchDuration = metrics.batchDuration.labels(group);
  const sinkEvents = metrics.sinkEvents.labels({ sink: options.name });
  const visibleLatency = metrics.visibleLatency.labels({ sink: options.name });

  const handle = async (batch: ConsumedBatch): Promise<void> => {
    const events: LoggedEvent[] = [];
    const poison: { record: ConsumedRecord; rejection: Rejection }[] = [];
    for (const record of batch.records) {
      const checked = checkRecord(record);
      if (checked instanceof Rejection) poison.push({ record, rejection: checked });
      else events.push({ event: checked, partition: batch.partition, offset: record.offset });
    }
    if (poison.length > 0) {
      logger.warn('poison records sent to the dead-letter topic', {
        count: poison.length,
        partition: batch.partition,
        offsets: poison.map((p) => p.record.offset.toString()),
        reason: poison[0]?.rejection.message,
      });
      await dlq.send(
        options.dlqTopic,
        poison.map(({ record, rejection }) => ({
          key: record.key,
          value: record.value,
          headers: {
            ...record.headers,
            'tally-error': rejection.message,
            'tally-group': options.groupId,
            'tally-source-topic': batch.topic,
            'tally-source-partition': String(batch.partition),
            'tally-source-offset': record.offset.toString(),
            'tally-failed-at': new Date().toISOString(),
          },
        })),
      );
      for (const { rejection } of poison)
        metrics.dlqRecords.inc({ group: options.groupId, reason: rejection.reason });
    }
    const lastOffset = batch.records[batch.records.length - 1]!.offset;
    await options.sink({ topic: batch.topic, partition: batch.partition, lastOffset, events });
    // Visible from here: observe each event's time since ingest wrote it (dead-lettered records excepted).
    sinkEvents.inc(events.length);
    const nowMs = Date.now();
    const dead = poison.length > 0 ? new Set(poison.map((p) => p.record)) : undefined;
    for (const record of batch.records)
      if (!dead?.has(record)) visibleLatency.observe(Math.max(0, nowMs - record.timestampMs) / 1000);
  };

  await consumer.run(async (batch: ConsumedBatch) => {
    const startMs = performance.now();
    batchEvents.observe(batch.records.length);
    try {
      await handle(batch);
    } catch (error) {
      metrics.batchFailures.inc(group);
      throw error;
    } finally {
      batchDuration.observe(secondsSince(startMs));
    }
  });
  const lag = startLagMonitor({
    log: options.log,
    groupId: options.groupId,
    topic: options.topic,
    intervalMs: options.lagIntervalMs,
    gauge: metrics.lag,
    logger,
  });

  return {
    name: options.name,
    stop: async () => {
      await Promise.all([lag.stop(), consumer.stop()]);
    },
  };
}

/** Why a record goes to the dead-letter topic: a bounded class (a metric label) and the details. */
class Rejection {
  readonly reason: 'undecodable' | 'invalid';
  /** `<reason>: <what is wrong>`, the record's `tally-error` header. */
  readonly message: string;

  constructor(reason: 'undecodable' | 'invalid', what: string) {
    this.reason = reason;
    this.message = `${reason}: ${what}`;
  }
}

/** The event, or why the record cannot be applied. */
function checkRecord(record: ConsumedRecord): Event | Rejection {
  const invalid = (what: string) => new Rejection('invalid', what);
  let event: Event;
  try {
    event = decodeEvent(record.value);
  } catch (error) {
    return new Rejection('undecodable', error instanceof Error ? error.message : String(error));
  }
  if (!event.receivedAt) return invalid('received_at is missing');
  if (event.id === '') return invalid('id is missing');
  const violation = validateEvent(toEventInput(event), storedEventLimits, Date.now());
  return violation ? invalid(`${violation.field}: ${violation.description}`) : event;
}
