/**
 * Groups appends from many concurrent callers into few log writes, adapting to the load as
 * Nagle's algorithm does: when no send is in flight, what is queued goes out at once (after the
 * appends of the same turn of the event loop, `setImmediate`), so a lone request pays no wait;
 * while a send is in flight, appends gather, and all of them go out together when it returns (up
 * to `maxBatchRecords` per send). Batches thus grow with the load by themselves — one round trip's
 * worth of appends — and the latency at light load is the log's own. A send also stays under
 * `maxBatchBytes`, so that one partition's share always fits the broker's largest message. `lingerMs` > 0 adds a fixed
 * wait before a send started from idle, trading that latency for bigger batches. One send is in
 * flight at a time, so records keep their order.
 *
 * Every append is bounded by `timeoutMs` from the moment it is queued: when the
 * log is slow or away, callers get UNAVAILABLE in time instead of waiting behind
 * earlier sends. Records still queued when their caller gave up are not sent;
 * records already in a send may still be written (the caller retries with the
 * same event ids, which the sinks deduplicate).
 *
 * With a tracer, each send is a PRODUCER span linked to the span each of its
 * appends was made in (docs/tracing.md): many requests share one send.
 */
import { context, ROOT_CONTEXT, type SpanContext, SpanKind, trace } from '@opentelemetry/api';
import { AppError, Code } from '../infra/app-error.ts';
import { type LogProducer, type LogRecord, MAX_WRITE_BYTES, recordBytes } from '../infra/log/event-log.ts';
import { type ProduceMetrics, secondsSince } from '../infra/metrics.ts';
import { errorType, failSpan, SpanLinks, type Tracer } from '../infra/tracing.ts';

export interface BatchingProducerOptions {
  topic: string;
  lingerMs: number;
  maxBatchRecords: number;
  /** Most bytes of records per send (default the log's MAX_WRITE_BYTES); an append larger goes alone. */
  maxBatchBytes?: number;
  /** Longest an append may wait for the log's acknowledgement, queueing included. */
  timeoutMs: number;
  /** Observes each write (its duration and events) when given. */
  metrics?: ProduceMetrics;
  /** Traces each write when given. */
  tracer?: Tracer;
}

interface Pending {
  records: readonly LogRecord[];
  /** Their bytes, by recordBytes. */
  bytes: number;
  /** The span the append was made in, when tracing. */
  spanContext: SpanContext | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
  settled: boolean;
}

export class BatchingProducer {
  readonly #producer: LogProducer;
  readonly #options: BatchingProducerOptions;
  #queue: Pending[] = [];
  #queuedRecords = 0;
  /** A send from idle is scheduled (after this turn of the event loop, or after `lingerMs`). */
  #scheduled: { cancel(): void } | undefined;
  #sending: Promise<void> | undefined;

  constructor(producer: LogProducer, options: BatchingProducerOptions) {
    this.#producer = producer;
    this.#options = options;
  }

  /** Resolves once every record is acknowledged by the log; the records of one call stay together. */
  append(records: readonly LogRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let bytes = 0;
      for (const r of records) bytes += recordBytes(r);
      const pending: Pending = {
        records,
        bytes,
        spanContext: this.#options.tracer ? trace.getSpanContext(context.active()) : undefined,
        settled: false,
        resolve: () => {
          if (pending.settled) return;
          pending.settled = true;
          clearTimeout(pending.timer);
          resolve();
        },
        reject: (error) => {
          if (pending.settled) return;
          pending.settled = true;
          clearTimeout(pending.timer);
          reject(error);
        },
        timer: setTimeout(() => {
          const queued = this.#queue.indexOf(pending);
          if (queued >= 0) {
            this.#queue.splice(queued, 1); // never sent: nothing written
            this.#queuedRecords -= records.length;
          }
          pending.reject(
            new AppError(
              Code.UNAVAILABLE,
              `the event log did not acknowledge within ${this.#options.timeoutMs} ms`,
            ),
          );
        }, this.#options.timeoutMs),
      };
      this.#queue.push(pending);
      this.#queuedRecords += records.length;
      // A send in flight takes what queued meanwhile when it returns: nothing to schedule.
      if (this.#sending) return;
      if (this.#queuedRecords >= this.#options.maxBatchRecords) this.#kick();
      else this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    if (this.#options.lingerMs > 0) {
      const timer = setTimeout(() => this.#kick(), this.#options.lingerMs);
      this.#scheduled = { cancel: () => clearTimeout(timer) };
    } else {
      const immediate = setImmediate(() => this.#kick());
      this.#scheduled = { cancel: () => clearImmediate(immediate) };
    }
  }

  /** Sends everything queued; resolves when the log acknowledged it (or failed it). */
  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#sending) {
      this.#kick();
      await this.#sending;
    }
  }

  #kick(): void {
    this.#scheduled?.cancel();
    this.#scheduled = undefined;
    if (this.#sending || this.#queue.length === 0) return;
    this.#sending = this.#sendLoop().finally(() => {
      this.#sending = undefined;
      // Appended between the loop's last round and here: they go at once, as from idle.
      if (this.#queue.length > 0) this.#kick();
    });
  }

  async #sendLoop(): Promise<void> {
    // While one send is in flight new appends queue up; each round takes what is there, at once.
    while (this.#queue.length > 0) {
      const batch: Pending[] = [];
      let count = 0;
      let bytes = 0;
      const maxBytes = this.#options.maxBatchBytes ?? MAX_WRITE_BYTES;
      while (
        this.#queue.length > 0 &&
        (count === 0 ||
          (count + this.#queue[0]!.records.length <= this.#options.maxBatchRecords &&
            bytes + this.#queue[0]!.bytes <= maxBytes))
      ) {
        const next = this.#queue.shift()!;
        batch.push(next);
        count += next.records.length;
        bytes += next.bytes;
      }
      this.#queuedRecords -= count;
      const metrics = this.#options.metrics;
      const span = this.#options.tracer && this.#startSpan(this.#options.tracer, batch, count);
      const startMs = performance.now();
      metrics?.batchEvents.observe(count);
      try {
        await this.#producer.send(
          this.#options.topic,
          batch.flatMap((p) => p.records),
        );
        for (const p of batch) p.resolve();
      } catch (error) {
        metrics?.failures.inc();
        if (span) failSpan(span, errorType(error));
        for (const p of batch) p.reject(error);
      } finally {
        metrics?.duration.observe(secondsSince(startMs));
        span?.end();
      }
    }
  }

  /** A send's span: a root of its own (it serves many traces), linked to each append's span. */
  #startSpan(tracer: Tracer, batch: readonly Pending[], count: number) {
    const links = new SpanLinks();
    for (const p of batch) links.add(p.spanContext);
    return tracer.startSpan(
      `send ${this.#options.topic}`,
      {
        kind: SpanKind.PRODUCER,
        links: links.links,
        attributes: {
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'send',
          'messaging.destination.name': this.#options.topic,
          'messaging.batch.message_count': count,
          ...links.attributes(),
        },
      },
      // Not the context the send loop happens to run in, which is the first append's.
      ROOT_CONTEXT,
    );
  }
}
