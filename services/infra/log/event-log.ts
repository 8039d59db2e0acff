/**
 * The event log port: partitioned topics, keyed records, consumer groups with
 * committed offsets. Adapters: Kafka (kafka-event-log.ts); an embedded one can
 * plug in without touching a role.
 */

/**
 * A record to append. Records with the same key land in the same partition, in order; a record
 * with `partition` goes to that partition whatever its key (a stage that copies one topic's
 * partitions into another's, partition for partition).
 */
export interface LogRecord {
  key: string | null;
  /** The partition to append to; absent: chosen from the key (murmur2, as Kafka's clients do). */
  partition?: number;
  value: Uint8Array;
  headers?: Readonly<Record<string, string>>;
}

/**
 * About the bytes `record` takes in a Kafka record batch: key, value, headers and the record's own
 * framing (lengths, offset and time deltas, attributes). A write of one partition's records must
 * fit the broker's largest message (`message.max.bytes`, 1 MiB by default), or Kafka refuses it
 * every time: writers bound their writes with this.
 */
export function recordBytes(record: LogRecord): number {
  let size = 24 + (record.key?.length ?? 0) + record.value.byteLength;
  for (const [k, v] of Object.entries(record.headers ?? {})) size += 8 + k.length + v.length;
  return size;
}

/** Bytes of records per write: half the broker's default largest message, leaving room for framing. */
export const MAX_WRITE_BYTES = 512 * 1024;

/**
 * `records` in consecutive slices of at most `maxBytes` each by {@link recordBytes} (a record
 * larger than that alone in its slice), in their order: one send each, one after the other.
 */
export function recordSlices(records: readonly LogRecord[], maxBytes = MAX_WRITE_BYTES): LogRecord[][] {
  const slices: LogRecord[][] = [];
  let slice: LogRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = recordBytes(r);
    if (slice.length > 0 && bytes + size > maxBytes) {
      slices.push(slice);
      slice = [];
      bytes = 0;
    }
    slice.push(r);
    bytes += size;
  }
  if (slice.length > 0) slices.push(slice);
  return slices;
}

/** A record read back, with its position. */
export interface ConsumedRecord {
  key: string | null;
  value: Uint8Array;
  headers: Readonly<Record<string, string>>;
  offset: bigint;
  /** Broker append time (or producer create time), epoch ms. */
  timestampMs: number;
}

/** Consecutive records of one partition, in offset order. */
export interface ConsumedBatch {
  topic: string;
  partition: number;
  records: readonly ConsumedRecord[];
}

/** Where a partition's log starts and ends, and how far a group committed on it. */
export interface PartitionOffsets {
  partition: number;
  /** First offset still in the log (retention moves it forward). */
  start: bigint;
  /** Next offset to be written. */
  end: bigint;
  /** The group's committed offset: the next record it will read; undefined when it never committed. */
  committed: bigint | undefined;
}

export interface TopicSpec {
  name: string;
  partitions: number;
}

export interface LogProducer {
  /**
   * Appends records to `topic`; resolves once the log acknowledged every one
   * (Kafka: acks=all, idempotent). Rejects with an AppError(UNAVAILABLE) when
   * the log does not answer in time: some records may then have been written.
   */
  send(topic: string, records: readonly LogRecord[]): Promise<void>;
}

export interface ConsumerOptions {
  groupId: string;
  topics: readonly string[];
  /** Where a group without committed offsets starts (default: earliest). */
  fromBeginning?: boolean;
  /** Longest wait for new records before an empty fetch returns. */
  maxWaitMs: number;
  /**
   * Bytes a fetch waits for (up to `maxWaitMs`) before it answers; default 1: a fetch answers as
   * soon as any record is there. Larger values trade up to `maxWaitMs` of delay for fewer, fuller
   * fetches, for readers that need not see each record at once (the gateway's live feed). The embedded log has no fetches to save and answers at once.
   */
  minBytes?: number;
}

export interface BatchContext {
  /** Keeps group membership alive during a long batch. */
  heartbeat(): Promise<void>;
  /** False once the consumer is stopping or lost the partition: finish up, the batch will be redelivered. */
  isActive(): boolean;
}

/**
 * The handler of one batch. Resolving means the sink holds every record's
 * effect: the consumer then commits past the batch. Throwing means an
 * infrastructure failure: nothing is committed and the batch is redelivered.
 *
 * A partition's batches come one at a time, in offset order; batches of different partitions
 * may be in hand at once (all those of one fetch, on Kafka), so that a handler can gather them
 * into one write.
 */
export type BatchHandler = (batch: ConsumedBatch, context: BatchContext) => Promise<void>;

export interface LogConsumer {
  /** Joins the group and starts calling `handler`; resolves once consuming has started. */
  run(handler: BatchHandler): Promise<void>;
  /** Stops fetching, waits for the batch in hand to finish and commit, leaves the group. */
  stop(): Promise<void>;
}

export interface EventLog {
  /** Which adapter, for the start-up log. */
  readonly description: string;
  /** Creates missing topics; existing ones are left as they are. */
  ensureTopics(topics: readonly TopicSpec[]): Promise<void>;
  /** Deletes topics and their records (missing ones are ignored). */
  deleteTopics(names: readonly string[]): Promise<void>;
  /** The process's producer (one per log, shared). */
  producer(): LogProducer;
  consumer(options: ConsumerOptions): LogConsumer;
  /** Next offset to be written, per partition. */
  endOffsets(topic: string): Promise<Map<number, bigint>>;
  /** Offsets committed by a group, per partition (absent when none). */
  committedOffsets(groupId: string, topic: string): Promise<Map<number, bigint>>;
  /**
   * Every partition of `topic` with its start and end offsets and `groupId`'s committed offset,
   * in partition order (what lag monitoring reads). Rejects for a missing topic.
   */
  groupOffsets(groupId: string, topic: string): Promise<PartitionOffsets[]>;
  /** Flushes and disconnects everything this log opened. */
  close(): Promise<void>;
}
