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

  await consumer.run(async (batch: ConsumedBatch) => {
    const events: LoggedEvent[] = [];
    const poison: { record: ConsumedRecord; reason: string }[] = [];
    for (const record of batch.records) {
      const checked = checkRecord(record);
      if (typeof checked === 'string') poison.push({ record, reason: checked });
      else events.push({ event: checked, partition: batch.partition, offset: record.offset });
    }
    if (poison.length > 0) {
      logger.warn('poison records sent to the dead-letter topic', {
        count: poison.length,
        partition: batch.partition,
        offsets: poison.map((p) => p.record.offset.toString()),
        reason: poison[0]?.reason,
      });
      await dlq.send(
        options.dlqTopic,
        poison.map(({ record, reason }) => ({
          key: record.key,
          value: record.value,
          headers: {
            ...record.headers,
            'tally-error': reason,
            'tally-group': options.groupId,
            'tally-source-topic': batch.topic,
            'tally-source-partition': String(batch.partition),
            'tally-source-offset': record.offset.toString(),
            'tally-failed-at': new Date().toISOString(),
          },
        })),
      );
    }
    const lastOffset = batch.records[batch.records.length - 1]!.offset;
    await options.sink({ topic: batch.topic, partition: batch.partition, lastOffset, events });
  });

  return {
    name: options.name,
    stop: () => consumer.stop(),
  };
}

/** The event, or why the record cannot be applied. */
function checkRecord(record: ConsumedRecord): Event | string {
  let event: Event;
  try {
    event = decodeEvent(record.value);
  } catch (error) {
    return `undecodable: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (!event.receivedAt) return 'invalid: received_at is missing';
  if (event.id === '') return 'invalid: id is missing';
  const violation = validateEvent(toEventInput(event), storedEventLimits, Date.now());
  return violation ? `invalid: ${violation.field}: ${violation.description}` : event;
}
