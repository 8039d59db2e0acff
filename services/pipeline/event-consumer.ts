/**
 * The loop every sink role runs: read a partition's batch of events, decode
 * and check them, hand the good ones to the sink, send poison records to the
 * dead-letter topic, and only then let the consumer commit past the batch.
 *
 * The batches of different partitions in hand at once (those of one fetch) are gathered into one
 * sink write: one round trip and one transaction for them all instead of one per partition, which
 * is most of what an event costs when the consumer keeps up and each partition's batch is small.
 * While a write is out, the batches that arrive wait and go together in the next.
 *
 * With a tracer, each batch is a CONSUMER span linked to the trace context in
 * its records' headers, and the sink's write is a child of the first batch's span, linked to the
 * others' (docs/tracing.md).
 */
import { ROOT_CONTEXT, type Span, SpanKind, trace } from '@opentelemetry/api';
import { defaultEventLimits, validateEvent } from '../domain/event-rules.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { ConsumedBatch, ConsumedRecord, EventLog } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';
import { consumerMetrics, type Registry, secondsSince } from '../infra/metrics.ts';
import { errorType, extractContext, failSpan, inSpan, SpanLinks, type Tracer } from '../infra/tracing.ts';
import { decodeEvent, type Event, timestampToMs, toEventInput } from './event-codec.ts';
import { startLagMonitor } from './lag-monitor.ts';

/**
 * On a record the persister forwards to the accepted topic: the event's offset in the events
 * topic (its partition is the same number). Sinks downstream of the persister keep their place by
 * it, since a forward that is repeated (the persister redelivered) lands at a new offset.
 */
export const EVENT_OFFSET_HEADER = 'tally-event-offset';

/** A decoded event and where it was read from. */
export interface LoggedEvent {
  event: Event;
  partition: number;
  /** Its offset in the topic read. */
  offset: bigint;
  /**
   * Its offset in the events topic, on the same partition number: `offset` when read from the
   * events topic, the `tally-event-offset` header when read from the accepted topic. Increases
   * along a partition, except where a forward is repeated.
   */
  position: bigint;
  /** The record as read (the persister forwards its value and headers unchanged). */
  record: ConsumedRecord;
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
  /** Bytes of records a fetch waits for, up to `maxWaitMs` (default 1). */
  minBytes?: number;
  /**
   * Applies batches, one per partition at most, to the sink; resolves when the sink holds every
   * effect, throws on infrastructure failure (every batch of the write is then redelivered).
   */
  sink: (batches: readonly EventBatch[]) => Promise<void>;
  /** Where the consumer's metrics go (docs/metrics.md); the sink label is `name`. */
  metrics: Registry;
  /** How often the group's lag is sampled, ms. */
  lagIntervalMs: number;
  /** Traces each batch and its sink write when given (docs/tracing.md). */
  tracer?: Tracer;
  /** The name of the sink write's span, such as `persister insert` (default: `<name> write`). */
  sinkSpanName?: string;
  /**
   * Pacing of small batches, ms (0: none): a partition's batch of fewer than SMALL_BATCH_RECORDS
   * starts at least this long after the start of that partition's previous one. A consumer that
   * keeps up otherwise loops as fast as the CPU lets it, a few records a batch, and pays a sink
   * round trip and a commit for each; paced, the records of the wait come in the next batch.
   */
  paceMs?: number;
}

/** A batch at least this large is handled at once, paced or not: it already amortises its costs. */
export const SMALL_BATCH_RECORDS = 500;

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
    minBytes: options.minBytes,
  });
  const dlq = options.log.producer();
  const metrics = consumerMetrics(options.metrics);
  const group = { group: options.groupId };
  const batchEvents = metrics.batchEvents.labels(group);
  const batchDuration = metrics.batchDuration.labels(group);
  const sinkEvents = metrics.sinkEvents.labels({ sink: options.name });
  const visibleLatency = metrics.visibleLatency.labels({ sink: options.name });

  const sinkSpanName = options.sinkSpanName ?? `${options.name} write`;
  const writeEvents = metrics.writeEvents.labels({ sink: options.name });
  /**
   * One sink write of gathered batches, in a span that is the first batch span's child (linked to
   * the others') when tracing.
   */
  const write = (gathered: readonly Gathered[]): Promise<void> => {
    const batches = gathered.map((g) => g.batch);
    let events = 0;
    for (const b of batches) events += b.events.length;
    writeEvents.observe(events);
    const [first, ...others] = gathered;
    if (!options.tracer || !first?.span) return options.sink(batches);
    const parent = trace.setSpan(ROOT_CONTEXT, first.span);
    const span = options.tracer.startSpan(
      sinkSpanName,
      {
        attributes: {
          'tally.sink': options.name,
          'tally.sink.events': events,
          'tally.sink.partitions': batches.length,
        },
        links: others.flatMap((g) => (g.span ? [{ context: g.span.spanContext() }] : [])),
      },
      parent,
    );
    return inSpan(span, parent, () => options.sink(batches));
  };
  const gatherer = new WriteGatherer(write);

  const handle = async (batch: ConsumedBatch, span: Span | undefined): Promise<void> => {
    const events: LoggedEvent[] = [];
    const poison: { record: ConsumedRecord; rejection: Rejection }[] = [];
    for (const record of batch.records) {
      const checked = checkRecord(record);
      if (checked instanceof Rejection) poison.push({ record, rejection: checked });
      else
        events.push({
          event: checked.event,
          partition: batch.partition,
          offset: record.offset,
          position: checked.position ?? record.offset,
          record,
        });
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
      span?.setAttribute('tally.dlq.records', poison.length);
    }
    const lastOffset = batch.records[batch.records.length - 1]!.offset;
    await gatherer.submit({
      batch: { topic: batch.topic, partition: batch.partition, lastOffset, events },
      span,
    });
    // Visible from here: observe each event's time since ingest accepted it (its received_at, which
    // a forward to the accepted topic keeps; dead-lettered records excepted).
    sinkEvents.inc(events.length);
    const nowMs = Date.now();
    for (const { event } of events)
      visibleLatency.observe(Math.max(0, nowMs - timestampToMs(event.receivedAt!)) / 1000);
  };

  const paceMs = options.paceMs ?? 0;
  /** When each partition's last batch started, for pacing. */
  const lastStart = new Map<number, number>();
  await consumer.run(async (batch: ConsumedBatch, context) => {
    if (paceMs > 0) {
      const last = lastStart.get(batch.partition);
      const wait = last === undefined ? 0 : last + paceMs - performance.now();
      if (wait > 0 && batch.records.length < SMALL_BATCH_RECORDS && context.isActive())
        await new Promise((resolve) => setTimeout(resolve, wait));
      lastStart.set(batch.partition, performance.now());
    }
    const startMs = performance.now();
    batchEvents.observe(batch.records.length);
    const span = options.tracer && startBatchSpan(options.tracer, batch, options.groupId);
    try {
      await handle(batch, span);
    } catch (error) {
      metrics.batchFailures.inc(group);
      if (span) failSpan(span, errorType(error));
      throw error;
    } finally {
      batchDuration.observe(secondsSince(startMs));
      span?.end();
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

/** A batch waiting for its sink write, with its span when tracing. */
interface Gathered {
  batch: EventBatch;
  span: Span | undefined;
}

interface Waiting {
  gathered: Gathered;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Gathers the batches submitted within one turn of the event loop into one write, one batch per
 * partition (a second batch of a partition waits for the next write, after its first). One write
 * at a time: batches submitted while it is out go in the next, as soon as it is done. Each
 * submitter learns its write's outcome.
 */
export class WriteGatherer {
  readonly #write: (gathered: readonly Gathered[]) => Promise<void>;
  #waiting: Waiting[] = [];
  #busy = false;

  constructor(write: (gathered: readonly Gathered[]) => Promise<void>) {
    this.#write = write;
  }

  /** Resolves once the write that carried `gathered` succeeded; rejects with its error. */
  submit(gathered: Gathered): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ gathered, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#busy) return;
    this.#busy = true;
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    const taken: Waiting[] = [];
    const rest: Waiting[] = [];
    const partitions = new Set<string>();
    for (const w of this.#waiting) {
      const key = `${w.gathered.batch.topic}|${w.gathered.batch.partition}`;
      if (partitions.has(key)) rest.push(w);
      else {
        partitions.add(key);
        taken.push(w);
      }
    }
    this.#waiting = rest;
    try {
      await this.#write(taken.map((w) => w.gathered));
      for (const w of taken) w.resolve();
    } catch (error) {
      for (const w of taken) w.reject(error);
    } finally {
      this.#busy = false;
      if (this.#waiting.length > 0) this.#schedule();
    }
  }
}

/**
 * A batch's span: a root of its own (its records come from many traces), linked to the span
 * each record's headers carry — the request that wrote the event.
 */
function startBatchSpan(tracer: Tracer, batch: ConsumedBatch, groupId: string): Span {
  const links = new SpanLinks();
  for (const record of batch.records) links.add(trace.getSpanContext(extractContext(record.headers)));
  return tracer.startSpan(
    `process ${batch.topic}`,
    {
      kind: SpanKind.CONSUMER,
      links: links.links,
      attributes: {
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': batch.topic,
        'messaging.destination.partition.id': String(batch.partition),
        'messaging.consumer.group.name': groupId,
        'messaging.batch.message_count': batch.records.length,
        'tally.log.first_offset': Number(batch.records[0]?.offset ?? 0n),
        'tally.log.last_offset': Number(batch.records[batch.records.length - 1]?.offset ?? 0n),
        ...links.attributes(),
      },
    },
    ROOT_CONTEXT,
  );
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

/** The event (and its events-topic offset when the record carries it), or why the record cannot be applied. */
function checkRecord(record: ConsumedRecord): { event: Event; position: bigint | undefined } | Rejection {
  const invalid = (what: string) => new Rejection('invalid', what);
  const header = record.headers[EVENT_OFFSET_HEADER];
  let position: bigint | undefined;
  if (header !== undefined) {
    if (!/^\d{1,19}$/.test(header))
      return invalid(`${EVENT_OFFSET_HEADER}: not an offset: ${header.slice(0, 40)}`);
    position = BigInt(header);
  }
  let event: Event;
  try {
    event = decodeEvent(record.value);
  } catch (error) {
    return new Rejection('undecodable', error instanceof Error ? error.message : String(error));
  }
  if (!event.receivedAt) return invalid('received_at is missing');
  if (event.id === '') return invalid('id is missing');
  const violation = validateEvent(toEventInput(event), storedEventLimits, Date.now());
  return violation ? invalid(`${violation.field}: ${violation.description}`) : { event, position };
}
