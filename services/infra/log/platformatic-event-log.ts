/**
 * The event log on Apache Kafka, through @platformatic/kafka: an idempotent
 * producer with acks=all that partitions keys as the Java client and kafkajs do,
 * consumer groups with commits after the sink holds the effect, and group
 * rebalances that wait for the batch in hand.
 */
import {
  Admin,
  Consumer,
  type ConsumerGroupJoinPayload,
  type Message,
  type MessagesStream,
  type MessageToProduce,
  ProduceAcks,
  Producer,
  stringSerializer,
} from '@platformatic/kafka';
import { AppError, Code, unavailable } from '../app-error.ts';
import type { Logger } from '../logger.ts';
import { boundedSend } from './bounded-send.ts';
import type {
  BatchContext,
  BatchHandler,
  ConsumedBatch,
  ConsumerOptions,
  EventLog,
  LogConsumer,
  LogProducer,
  LogRecord,
  PartitionOffsets,
  TopicSpec,
} from './event-log.ts';
import { describeSecurity, type KafkaSecurity } from './kafka-security.ts';
import { murmur2 } from './murmur2.ts';

export interface PlatformaticEventLogOptions {
  brokers: readonly string[];
  clientId: string;
  /** Longest wait for the broker's acknowledgement of one send before UNAVAILABLE. */
  produceTimeoutMs: number;
  /**
   * How long a consumer group waits for a member that stopped heartbeating (a crashed process)
   * before handing its partitions to the others (default 30 s; the broker accepts 6 s to 5 min).
   */
  sessionTimeoutMs?: number;
  /** SASL and TLS to the brokers (none: plaintext, unauthenticated). */
  security?: KafkaSecurity;
  logger: Logger;
}

/** Longest wait for the leaders of newly created topics, and for deleted topics to disappear. */
const TOPIC_SETTLE_MS = 30_000;
/** How long a stop, with its last batch committed, waits for the group coordinator before going on. */
const LEAVE_GRACE_MS = 3_000;
/** Kafka's classic group timeouts, as the kafkajs adapter has them. */
const DEFAULT_SESSION_TIMEOUT_MS = 30_000;
const REBALANCE_TIMEOUT_MS = 60_000;
const HEARTBEAT_STALL_TIMEOUT_MS = 10_000;
/** Per fetch, as kafkajs: 10 MiB in all, 1 MiB per partition. */
const FETCH_MAX_BYTES = 10 * 1024 * 1024;
const FETCH_MAX_BYTES_PER_PARTITION = 1024 * 1024;

/** ListOffsets timestamps: the next offset to be written, and the first still in the log. */
const LATEST = -1n;
const EARLIEST = -2n;

/** Exponential backoff from 100 ms to 5 s, for the client's own retries and ours. */
const backoffMs = (attempt: number): number => Math.min(100 * 2 ** Math.max(0, attempt - 1), 5_000);

/** What every client of one log shares. */
interface ClientBase {
  clientId: string;
  bootstrapBrokers: string[];
  connectTimeout: number;
  retryDelay: (client: unknown, operation: string, attempt: number) => number;
  tls?: { ca?: string };
  sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string };
}

/** Creates the Kafka adapter; connections open lazily on first use. */
export function createPlatformaticEventLog(options: PlatformaticEventLogOptions): EventLog {
  const log = options.logger.child({ component: 'kafka' });
  const base: ClientBase = {
    clientId: options.clientId,
    bootstrapBrokers: [...options.brokers],
    connectTimeout: 3_000,
    retryDelay: (_client, _operation, attempt) => backoffMs(attempt),
  };
  const { tls, sasl } = options.security ?? {};
  if (tls) base.tls = tls.ca ? { ca: tls.ca } : {};
  if (sasl)
    base.sasl = {
      mechanism: sasl.mechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512',
      username: sasl.username,
      password: sasl.password,
    };

  let admin: Admin | undefined;
  const getAdmin = (): Admin => {
    admin ??= new Admin({ ...base, retries: 8 });
    return admin;
  };

  let producer: PlatformaticLogProducer | undefined;
  const consumers = new Set<PlatformaticLogConsumer>();

  /** The partitions of `topic`; rejects for a missing topic. */
  const partitionsOf = async (topic: string): Promise<number[]> => {
    // The client retries metadata of an unknown topic for a while (it may be new): ask first.
    if (!(await getAdmin().listTopics()).includes(topic))
      throw new AppError(Code.NOT_FOUND, `Kafka topic ${topic} does not exist`);
    const metadata = await getAdmin().metadata({ topics: [topic], forceUpdate: true });
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
    if (count === 0) throw unavailable(`Kafka topic ${topic} has no partitions`);
    return Array.from({ length: count }, (_, i) => i);
  };

  /** The earliest or latest offset of every partition of `topic`. */
  const listOffsets = async (
    topic: string,
    timestamp: bigint,
    partitions?: number[],
  ): Promise<Map<number, bigint>> => {
    partitions ??= await partitionsOf(topic);
    const [listed] = await getAdmin().listOffsets({
      topics: [
        { name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })) },
      ],
    });
    return new Map((listed?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
  };

  /** A group's committed offsets on `partitions` of `topic` (absent when none). */
  const committedOf = async (
    groupId: string,
    topic: string,
    partitionIndexes: number[],
  ): Promise<Map<number, bigint>> => {
    const [group] = await getAdmin().listConsumerGroupOffsets({
      groups: [{ groupId, topics: [{ name: topic, partitionIndexes }] }],
    });
    const result = new Map<number, bigint>();
    for (const t of group?.topics ?? [])
      for (const p of t.partitions)
        if (p.committedOffset >= 0n) result.set(p.partitionIndex, p.committedOffset);
    return result;
  };

  return {
    description: `kafka (@platformatic/kafka, brokers ${options.brokers.join(',')}, ${describeSecurity(options.security)})`,

    async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
      const a = getAdmin();
      const existing = new Set(await a.listTopics());
      const missing = topics.filter((t) => !existing.has(t.name));
      if (missing.length === 0) return;
      try {
        await a.createTopics({
          topics: missing.map((t) => ({ topic: t.name, partitions: t.partitions })),
        });
      } catch (error) {
        // Another process may have created it in between: only a still-missing topic is an error.
        const now = new Set(await a.listTopics());
        if (missing.some((t) => !now.has(t.name))) throw error;
      }
      // CreateTopics answers before the partitions have leaders; a send right after would fail.
      await settle(
        async () => {
          const metadata = await a.metadata({ topics: missing.map((t) => t.name), forceUpdate: true });
          return missing.every((t) => {
            const partitions = metadata.topics.get(t.name)?.partitions ?? [];
            return partitions.length > 0 && partitions.every((p) => p.leader >= 0);
          });
        },
        () => `leaders for ${missing.map((t) => t.name).join(', ')}`,
      );
      log.info('created topics', { topics: missing });
    },

    async deleteTopics(names: readonly string[]): Promise<void> {
      const a = getAdmin();
      const existing = new Set(await a.listTopics());
      const present = names.filter((n) => existing.has(n));
      if (present.length === 0) {
        // Deleted by another process (a destination's topic, by the query role): a producer that
        // wrote to one must forget it all the same, or its client would keep asking for it.
        if (producer?.wroteTo(names)) await producer.reset();
        return;
      }
      await a.deleteTopics({ topics: present });
      // Deletion completes asynchronously: a topic re-created at once must be a new one.
      await settle(
        async () => {
          const now = new Set(await a.listTopics());
          return present.every((n) => !now.has(n));
        },
        () => `deletion of ${present.join(', ')}`,
      );
      // A fresh producer: its sequence numbers and metadata of the deleted topics start over.
      await producer?.reset();
    },

    producer(): LogProducer {
      producer ??= new PlatformaticLogProducer(
        () =>
          new Producer<string, Buffer, string, string>({
            ...base,
            idempotent: true,
            acks: ProduceAcks.ALL,
            // Retried until acknowledged; the caller's wait is bounded by produceTimeoutMs.
            retries: Number.MAX_SAFE_INTEGER,
            autocreateTopics: false,
            partitioner: createJavaCompatiblePartitioner(),
            serializers: {
              key: stringSerializer,
              headerKey: stringSerializer,
              headerValue: stringSerializer,
            },
          }),
        options.produceTimeoutMs,
        log,
      );
      return producer;
    },

    consumer(consumerOptions: ConsumerOptions): LogConsumer {
      const c = new PlatformaticLogConsumer(
        base,
        consumerOptions,
        options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS,
        log,
        () => consumers.delete(c),
      );
      consumers.add(c);
      return c;
    },

    endOffsets(topic: string): Promise<Map<number, bigint>> {
      return listOffsets(topic, LATEST);
    },

    async committedOffsets(groupId: string, topic: string): Promise<Map<number, bigint>> {
      return committedOf(groupId, topic, await partitionsOf(topic));
    },

    async groupOffsets(groupId: string, topic: string): Promise<PartitionOffsets[]> {
      const partitions = await partitionsOf(topic);
      const [starts, ends, committed] = await Promise.all([
        listOffsets(topic, EARLIEST, partitions),
        listOffsets(topic, LATEST, partitions),
        committedOf(groupId, topic, partitions),
      ]);
      return partitions.map((partition) => ({
        partition,
        start: starts.get(partition) ?? 0n,
        end: ends.get(partition) ?? 0n,
        committed: committed.get(partition),
      }));
    },

    async close(): Promise<void> {
      await Promise.all([...consumers].map((c) => c.stop()));
      await producer?.close();
      await admin?.close().catch(() => {});
    },
  };
}

type KafkaProducer = Producer<string, Buffer, string, string>;

class PlatformaticLogProducer implements LogProducer {
  /** The topics the current client wrote to (a few: the events topics and the destinations'). */
  readonly #written = new Set<string>();
  readonly #create: () => KafkaProducer;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  #producer: KafkaProducer | undefined;

  constructor(create: () => KafkaProducer, timeoutMs: number, log: Logger) {
    this.#create = create;
    this.#timeoutMs = timeoutMs;
    this.#log = log;
  }

  /**
   * Starts over with a new client (a new producer id, sequence numbers from zero): after a topic
   * deletion, and after a send the client gave up on. What the old one was still sending is abandoned.
   */
  async reset(): Promise<void> {
    this.#written.clear();
    const old = this.#producer;
    this.#producer = undefined;
    await old?.close(true).catch(() => {});
  }

  /** Whether the current client wrote to any of `topics`. */
  wroteTo(topics: readonly string[]): boolean {
    return topics.some((t) => this.#written.has(t));
  }

  async send(topic: string, records: readonly LogRecord[]): Promise<void> {
    if (records.length === 0) return;
    this.#written.add(topic);
    this.#producer ??= this.#create();
    const producer = this.#producer;
    const messages: MessageToProduce<string, Buffer, string, string>[] = records.map((r) => ({
      topic,
      key: r.key ?? undefined,
      ...(r.partition !== undefined && { partition: r.partition }),
      value: Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength),
      headers: r.headers ? new Map(Object.entries(r.headers)) : undefined,
    }));
    const work = producer.send({ messages });
    await boundedSend(work, {
      timeoutMs: this.#timeoutMs,
      log: this.#log,
      isCurrent: () => this.#producer === producer,
      replace: () => this.reset(),
    });
  }

  async close(): Promise<void> {
    await this.#producer?.close(true);
  }
}

type KafkaMessage = Message<Buffer, Buffer, Buffer, Buffer>;

/** A partition's records of one read. */
interface PendingBatch {
  topic: string;
  partition: number;
  messages: KafkaMessage[];
}

const EMPTY = Buffer.alloc(0);
const partitionKey = (topic: string, partition: number) => `${topic}:${partition}`;

class PlatformaticLogConsumer implements LogConsumer {
  readonly #consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  readonly #options: ConsumerOptions;
  readonly #log: Logger;
  readonly #onStop: () => void;
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  /** The start in progress or done, so that a stop during start-up waits for it. */
  #starting: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #stopRequested = false;
  /** Resolves when a stop begins: waits end early. */
  readonly #stopSignal: Promise<void>;
  #signalStop: () => void = () => {};
  /** Wakes the loop waiting for records when some arrive, the stream fails or a stop begins. */
  #wake: (() => void) | undefined;
  /** Owned partitions, each with the group generation at which this member got it. */
  #owned = new Map<string, number>();
  /** Per owned partition, the next offset to hand to the handler: lower ones were handled. */
  readonly #positions = new Map<string, bigint>();
  /** The batches being handled and committed; a rebalance waits for them. */
  readonly #inHand = new Set<Promise<unknown>>();
  #rebalanceWaiting = false;
  /** Set while this member is rejoining the group: no batch starts until it knows its partitions. */
  #joining: { settled: Promise<void>; settle: () => void } | undefined;

  constructor(
    base: ClientBase,
    options: ConsumerOptions,
    sessionTimeoutMs: number,
    log: Logger,
    onStop: () => void,
  ) {
    this.#options = options;
    this.#log = log.child({ group: options.groupId });
    this.#onStop = onStop;
    this.#stopSignal = new Promise<void>((resolve) => {
      this.#signalStop = resolve;
    });
    this.#consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...base,
      groupId: options.groupId,
      autocommit: false,
      maxWaitTime: options.maxWaitMs,
      minBytes: options.minBytes ?? 1,
      maxBytes: FETCH_MAX_BYTES,
      maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION,
      sessionTimeout: sessionTimeoutMs,
      rebalanceTimeout: REBALANCE_TIMEOUT_MS,
      // Three heartbeats or more per session, as Kafka recommends.
      heartbeatInterval: Math.min(3_000, Math.floor(sessionTimeoutMs / 3)),
      // Only the client's 'consumer:heartbeat:stalled' event (unused here) reads it, but a rejoin
      // that fails as the consumer closes arms a timer of this length after the close, holding
      // the process open (the default is rebalanceTimeout): keep it short.
      heartbeatStallTimeout: HEARTBEAT_STALL_TIMEOUT_MS,
      retries: 5,
      // Runs before every JoinGroup this member sends: the batch in hand finishes and commits
      // first, so a partition changes hands only after its last batch here is committed.
      protocolsMetadata: () => this.#beforeRejoin(),
    });
    this.#consumer.on('consumer:group:join', (payload) => this.#joined(payload));
    for (const event of ['consumer:group:rejoin', 'consumer:group:leave'] as const)
      this.#consumer.on(event, () => this.#joinSettled());
    // The client reports here only a rejoin it gave up on; it then heartbeats no more. A new stream
    // joins again, reading from the committed offsets.
    this.#consumer.on('error', (error) => {
      // A rejoin cut short by a stop is reported after the close: nothing to do (but listen, or
      // the 'error' event would end the process).
      if (this.#stopRequested) return;
      this.#log.warn('Kafka consumer could not rejoin its group; it opens a new stream', { error });
      this.#owned = new Map();
      this.#joinSettled();
      this.#stream?.destroy();
    });
  }

  run(handler: BatchHandler): Promise<void> {
    if (this.#stopRequested) return Promise.reject(new Error('consumer is stopped'));
    if (this.#starting) return Promise.reject(new Error('consumer is already running'));
    this.#starting = this.#start(handler);
    return this.#starting;
  }

  async #start(handler: BatchHandler): Promise<void> {
    this.#stream = await this.#openStream();
    if (this.#stopRequested) return; // stop() closes what was opened
    this.#loop = this.#run(handler);
    this.#log.info('consumer started', { topics: this.#options.topics });
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopRequested = true; // no batch starts from now on
      this.#signalStop();
      this.#wake?.();
      // A stop during start-up waits for the start, so no consumer is left running after it.
      await this.#starting?.catch(() => {});
      await this.#loop; // the batch in hand finishes and commits
      // Leaving the group may wait on the coordinator (a rejoin it holds until a dead member's
      // session times out, a broker coming back): with nothing left to commit, the stop goes on
      // after LEAVE_GRACE_MS and the group notices the departure at the session timeout instead.
      const left = (async () => {
        await this.#stream?.close().catch(() => {});
        await this.#consumer.close(true).catch((error: unknown) => {
          this.#log.warn('Kafka consumer did not leave its group cleanly', { error });
        });
        return true;
      })();
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        left,
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), LEAVE_GRACE_MS);
        }),
      ]);
      clearTimeout(timer);
      if (!inTime)
        this.#log.warn('left without waiting for the group coordinator', { waitedMs: LEAVE_GRACE_MS });
      this.#onStop();
      this.#log.info('consumer stopped');
    })();
    return this.#stopping;
  }

  /** Joins the group and opens a stream from the committed offsets (else earliest or latest). */
  async #openStream(): Promise<MessagesStream<Buffer, Buffer, Buffer, Buffer>> {
    const stream = await this.#consumer.consume({
      topics: [...this.#options.topics],
      mode: 'committed',
      fallbackMode: (this.#options.fromBeginning ?? true) ? 'earliest' : 'latest',
      autocommit: false,
    });
    // A 'readable' listener puts the stream in paused mode: it fetches as records are read.
    stream.on('readable', () => this.#wake?.());
    stream.on('error', (error) => {
      this.#log.warn('Kafka fetch failed; the consumer reopens its stream', { error });
      this.#wake?.();
    });
    stream.on('close', () => this.#wake?.());
    return stream;
  }

  async #run(handler: BatchHandler): Promise<void> {
    let failures = 0;
    while (!this.#stopRequested) {
      try {
        if (!this.#stream || this.#stream.destroyed) {
          await this.#stream?.close().catch(() => {});
          this.#stream = undefined;
          const stream = await this.#openStream().finally(() => this.#joinSettled());
          if (this.#stopRequested) {
            this.#stream = stream; // stop() closes it
            return;
          }
          this.#stream = stream;
        }
        const messages = await this.#read(this.#stream);
        // Every partition's batch at once: the handler may gather them into one write.
        await Promise.all(this.#batches(messages).map((batch) => this.#handle(batch, handler)));
        failures = 0;
      } catch (error) {
        failures++;
        this.#log.warn('Kafka consumer failed; retrying', { error, failures });
        await this.#wait(backoffMs(failures));
      }
    }
  }

  /** The records buffered in the stream, waiting for some when there are none. Empty when stopping. */
  async #read(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>): Promise<KafkaMessage[]> {
    for (;;) {
      if (this.#stopRequested || stream.destroyed) return [];
      const messages: KafkaMessage[] = [];
      for (let m = stream.read() as KafkaMessage | null; m !== null; m = stream.read() as KafkaMessage | null)
        messages.push(m);
      if (messages.length > 0) return messages;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }

  /** Groups messages by partition, each in offset order. */
  #batches(messages: readonly KafkaMessage[]): PendingBatch[] {
    const batches = new Map<string, PendingBatch>();
    for (const m of messages) {
      const key = partitionKey(m.topic, m.partition);
      let batch = batches.get(key);
      if (!batch) {
        batch = { topic: m.topic, partition: m.partition, messages: [] };
        batches.set(key, batch);
      }
      batch.messages.push(m);
    }
    return [...batches.values()];
  }

  /** Runs the handler until it succeeds (or the partition is lost, or a stop begins), then commits. */
  async #handle(pending: PendingBatch, handler: BatchHandler): Promise<void> {
    const key = partitionKey(pending.topic, pending.partition);
    for (let attempt = 1; ; attempt++) {
      if (this.#joining) {
        await this.#wait(REBALANCE_TIMEOUT_MS, this.#joining.settled);
        this.#joinSettled(); // a join that failed without a word is over too
      }
      const acquired = this.#owned.get(key);
      if (this.#stopRequested || acquired === undefined) return; // its owner reads it from the commit
      // Records fetched before this member (re)gained the partition, and records handled already
      // (fetched again after a rejoin), are not this batch's.
      const from = this.#positions.get(key) ?? -1n;
      const messages = pending.messages.filter((m) => m.offset >= from && generationOf(m) >= acquired);
      const last = messages.at(-1);
      if (!last) return;
      const batch: ConsumedBatch = {
        topic: pending.topic,
        partition: pending.partition,
        records: messages.map(toRecord),
      };
      const context: BatchContext = {
        heartbeat: async () => {}, // the client heartbeats on its own timer
        isActive: () => !this.#stopRequested && this.#owned.get(key) === acquired,
      };
      const work = (async () => {
        await handler(batch, context);
        this.#positions.set(key, last.offset + 1n);
        if (this.#owned.get(key) !== acquired) return; // moved on: its new owner re-reads, the sinks dedup
        await this.#consumer
          .commit({
            offsets: [
              {
                topic: pending.topic,
                partition: pending.partition,
                offset: last.offset + 1n,
                leaderEpoch: last.leaderEpoch,
              },
            ],
          })
          .catch((error: unknown) => {
            this.#joinSettled(); // a rejoin the commit started has failed as well
            // Handled but not committed: a later batch's commit covers it, else it is read again.
            this.#log.warn('Kafka commit failed', { error, partition: pending.partition });
          });
      })();
      this.#inHand.add(work);
      try {
        await work;
        return;
      } catch (error) {
        this.#log.warn('batch handler failed; the batch will be handled again', {
          error,
          topic: pending.topic,
          partition: pending.partition,
          attempt,
        });
        await this.#wait(backoffMs(attempt));
      } finally {
        this.#inHand.delete(work);
      }
    }
  }

  /** Delays this member's JoinGroup until the batch in hand is handled and committed. */
  async #beforeRejoin(): Promise<Buffer> {
    this.#joining ??= (() => {
      let settle = () => {};
      const settled = new Promise<void>((resolve) => {
        settle = resolve;
      });
      return { settled, settle };
    })();
    // Without a member id this member was dropped from the group: others may have had its
    // partitions since, so none of what it fetched before is its own any more.
    if (this.#consumer.memberId === null) this.#owned = new Map();
    // A join the commit itself starts (its generation was gone) must not wait for that commit.
    if (this.#rebalanceWaiting) return EMPTY;
    this.#rebalanceWaiting = true;
    try {
      await Promise.all([...this.#inHand].map((work) => work.catch(() => {})));
    } finally {
      this.#rebalanceWaiting = false;
    }
    return EMPTY;
  }

  #joined(payload: ConsumerGroupJoinPayload): void {
    const generation = payload.generationId ?? 0;
    const owned = new Map<string, number>();
    for (const { topic, partitions } of payload.assignments ?? []) {
      for (const partition of partitions) {
        const key = partitionKey(topic, partition);
        owned.set(key, this.#owned.get(key) ?? generation);
      }
    }
    for (const key of this.#positions.keys()) if (!owned.has(key)) this.#positions.delete(key);
    this.#owned = owned;
    this.#joinSettled();
  }

  #joinSettled(): void {
    this.#joining?.settle();
    this.#joining = undefined;
  }

  /** Waits for `promise`, at most `ms`, and no longer once a stop begins. */
  async #wait(ms: number, promise?: Promise<unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#stopSignal,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
      ...(promise ? [promise] : []),
    ]);
    clearTimeout(timer);
  }
}

function generationOf(m: KafkaMessage): number {
  const consumer = m.metadata.consumer as { generationId?: number } | undefined;
  return consumer?.generationId ?? 0;
}

function toRecord(m: KafkaMessage) {
  const headers: Record<string, string> = {};
  for (const [key, value] of m.headerEntries) headers[key.toString('utf8')] = value?.toString('utf8') ?? '';
  const value = m.value ?? EMPTY;
  return {
    key: m.key === undefined || m.key === null ? null : m.key.toString('utf8'),
    value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
    headers,
    offset: m.offset,
    timestampMs: Number(m.timestamp),
  };
}

/**
 * The Java client's (and kafkajs's) partitioner: murmur2 of the key with the sign bit
 * cleared, modulo the partition count; round-robin for records without a key.
 * @platformatic/kafka's own default (`murmur2 >>> 0`) sends about half the keys to
 * another partition whenever the count is not a power of two.
 */
export function createJavaCompatiblePartitioner() {
  let next = 0;
  // The client takes the result modulo the partition count.
  return (_message: unknown, key: Buffer | undefined): number =>
    key === undefined ? next++ & 0x7fffffff : murmur2(key) & 0x7fffffff;
}

/** Polls `probe` until true; rejects with UNAVAILABLE after TOPIC_SETTLE_MS. */
async function settle(probe: () => Promise<boolean>, what: () => string): Promise<void> {
  const deadline = Date.now() + TOPIC_SETTLE_MS;
  for (;;) {
    const ok = await probe().catch(() => false);
    if (ok) return;
    if (Date.now() > deadline) throw unavailable(`Kafka timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
