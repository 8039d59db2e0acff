/**
 * Groups appends from many concurrent callers into few log writes: records
 * wait at most `lingerMs` (or until `maxBatchRecords` are queued), then go out
 * in one send. One send is in flight at a time, so records keep their order.
 */
import type { LogProducer, LogRecord } from './event-log.ts';

export interface BatchingProducerOptions {
  topic: string;
  lingerMs: number;
  maxBatchRecords: number;
}

interface Pending {
  records: readonly LogRecord[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class BatchingProducer {
  readonly #producer: LogProducer;
  readonly #options: BatchingProducerOptions;
  #queue: Pending[] = [];
  #queuedRecords = 0;
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> | undefined;

  constructor(producer: LogProducer, options: BatchingProducerOptions) {
    this.#producer = producer;
    this.#options = options;
  }

  /** Resolves once every record is acknowledged by the log; the records of one call stay together. */
  append(records: readonly LogRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ records, resolve, reject });
      this.#queuedRecords += records.length;
      if (this.#queuedRecords >= this.#options.maxBatchRecords) this.#kick();
      else this.#timer ??= setTimeout(() => this.#kick(), this.#options.lingerMs);
    });
  }

  /** Sends everything queued; resolves when the log acknowledged it (or failed it). */
  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#sending) {
      this.#kick();
      await this.#sending;
    }
  }

  #kick(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#sending || this.#queue.length === 0) return;
    this.#sending = this.#sendLoop().finally(() => {
      this.#sending = undefined;
      if (this.#queue.length > 0) this.#timer ??= setTimeout(() => this.#kick(), 0);
    });
  }

  async #sendLoop(): Promise<void> {
    // While one send is in flight new appends queue up; each round takes what is there.
    while (this.#queue.length > 0) {
      const batch: Pending[] = [];
      let count = 0;
      while (
        this.#queue.length > 0 &&
        (count === 0 || count + this.#queue[0]!.records.length <= this.#options.maxBatchRecords)
      ) {
        const next = this.#queue.shift()!;
        batch.push(next);
        count += next.records.length;
      }
      this.#queuedRecords -= count;
      try {
        await this.#producer.send(
          this.#options.topic,
          batch.flatMap((p) => p.records),
        );
        for (const p of batch) p.resolve();
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
  }
}
