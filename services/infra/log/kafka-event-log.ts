/**
 * The event log on Apache Kafka, through kafkajs: an idempotent producer with
 * acks=all, consumer groups with manual commits after the sink holds the effect.
 */
import {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  Kafka,
  logLevel,
  Partitioners,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import { unavailable } from '../app-error.ts';
import type { Logger } from '../logger.ts';
import { boundedSend } from './bounded-send.ts';
import type {
  BatchHandler,
  ConsumerOptions,
  EventLog,
  LogConsumer,
  LogProducer,
  LogRecord,
  PartitionOffsets,
  TopicSpec,
} from './event-log.ts';
import { describeSecurity, type KafkaSecurity } from './kafka-security.ts';

export interface KafkaEventLogOptions {
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

/** Creates the Kafka adapter; connections open lazily on first use. */
export function createKafkaEventLog(options: KafkaEventLogOptions): EventLog {
  const log = options.logger.child({ component: 'kafka' });
  const kafka = new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }) => {
        const { message, ...rest } = entry;
        const fields = { ...rest, timestamp: undefined, logger: undefined };
        // kafkajs logs at ERROR what it then retries; what it gives up on reaches us as a rejection.
        if (level <= logLevel.WARN) log.warn(message, fields);
      },
    retry: { initialRetryTime: 100, retries: 8, maxRetryTime: 5_000 },
    connectionTimeout: 3_000,
    ...(options.security?.tls && { ssl: options.security.tls.ca ? { ca: [options.security.tls.ca] } : true }),
    ...(options.security?.sasl && { sasl: { ...options.security.sasl } as SASLOptions }),
  });

  let admin: Promise<Admin> | undefined;
  const getAdmin = (): Promise<Admin> => {
    admin ??= (async () => {
      const a = kafka.admin();
      await a.connect();
      return a;
    })().catch((error: unknown) => {
      admin = undefined;
      throw unavailable('Kafka admin connection failed', error);
    });
    return admin;
  };
  /**
   * A fresh admin client at the next call: kafkajs keeps every topic an admin asked about in its
   * metadata requests, so once one of them is deleted each request fails ("does not host this
   * topic-partition") and so would every later call, whatever topic it is about.
   */
  const resetAdmin = async (): Promise<void> => {
    const old = admin;
    admin = undefined;
    const a = await old?.catch(() => undefined);
    await a?.disconnect().catch(() => undefined);
  };

  let producer: KafkaLogProducer | undefined;
  const consumers = new Set<KafkaLogConsumer>();

  return {
    description: `kafka (kafkajs, brokers ${options.brokers.join(',')}, ${describeSecurity(options.security)})`,

    async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
      const a = await getAdmin();
      const existing = new Set(await a.listTopics());
      const missing = topics.filter((t) => !existing.has(t.name));
      if (missing.length === 0) return;
      try {
        await a.createTopics({
          waitForLeaders: true,
          topics: missing.map((t) => ({ topic: t.name, numPartitions: t.partitions })),
        });
      } catch (error) {
        // Another process may have created it in between: only a still-missing topic is an error.
        const now = new Set(await a.listTopics());
        if (missing.some((t) => !now.has(t.name))) throw error;
      }
      log.info('created topics', { topics: missing });
    },

    async deleteTopics(names: readonly string[]): Promise<void> {
      const a = await getAdmin();
      const existing = new Set(await a.listTopics());
      const present = names.filter((n) => existing.has(n));
      if (present.length === 0) {
        // Deleted by another process (a destination's topic, by the query role): a producer that
        // wrote to one must forget it all the same, or its client would keep asking for it.
        if (producer?.wroteTo(names)) await producer.reset();
        await resetAdmin();
        return;
      }
      await a.deleteTopics({ topics: present });
      await producer?.reset();
      await resetAdmin();
    },

    producer(): LogProducer {
      producer ??= new KafkaLogProducer(
        () => kafka.producer(producerConfig()),
        options.produceTimeoutMs,
        log,
      );
      return producer;
    },

    consumer(consumerOptions: ConsumerOptions): LogConsumer {
      const c = new KafkaLogConsumer(
        kafka,
        consumerOptions,
        options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS,
        log,
        () => consumers.delete(c),
      );
      consumers.add(c);
      return c;
    },

    async endOffsets(topic: string): Promise<Map<number, bigint>> {
      const a = await getAdmin();
      const offsets = await a.fetchTopicOffsets(topic);
      return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
    },

    async committedOffsets(groupId: string, topic: string): Promise<Map<number, bigint>> {
      const a = await getAdmin();
      const [entry] = await a.fetchOffsets({ groupId, topics: [topic] });
      const result = new Map<number, bigint>();
      for (const p of entry?.partitions ?? [])
        if (p.offset !== '-1') result.set(p.partition, BigInt(p.offset));
      return result;
    },

    async groupOffsets(groupId: string, topic: string): Promise<PartitionOffsets[]> {
      const a = await getAdmin();
      // The commits first: they fail at once for a missing topic (the offsets would retry), and read
      // before the end offsets they can never be ahead of them.
      const [committed] = await a.fetchOffsets({ groupId, topics: [topic] });
      const ends = await a.fetchTopicOffsets(topic);
      const byPartition = new Map((committed?.partitions ?? []).map((p) => [p.partition, p.offset]));
      return ends
        .map((o) => {
          const c = byPartition.get(o.partition);
          return {
            partition: o.partition,
            start: BigInt(o.low),
            end: BigInt(o.high),
            committed: c === undefined || c === '-1' ? undefined : BigInt(c),
          };
        })
        .sort((x, y) => x.partition - y.partition);
    },

    async close(): Promise<void> {
      await Promise.all([...consumers].map((c) => c.stop()));
      await producer?.close();
      if (admin) await (await admin.catch(() => undefined))?.disconnect();
    },
  };
}

function producerConfig() {
  return {
    idempotent: true,
    // Retried until acknowledged; the caller's wait is bounded by produceTimeoutMs.
    retry: { initialRetryTime: 100, retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5_000 },
    // One request in flight per broker keeps idempotent retries in order.
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  };
}

class KafkaLogProducer implements LogProducer {
  /** The topics the current client wrote to (a few: the events topics and the destinations'). */
  readonly #written = new Set<string>();
  readonly #create: () => Producer;
  #producer: Producer;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  #connecting: Promise<void> | undefined;

  constructor(create: () => Producer, timeoutMs: number, log: Logger) {
    this.#create = create;
    this.#producer = create();
    this.#timeoutMs = timeoutMs;
    this.#log = log;
  }

  /**
   * Starts over with a new kafkajs producer: after a send kafkajs gave up on, and after a topic
   * deletion (kafkajs refreshes the metadata of every topic a producer ever wrote to, so once one
   * of them is deleted every later send would time out).
   */
  async reset(): Promise<void> {
    this.#written.clear();
    const old = this.#producer;
    const wasConnected = this.#connecting !== undefined;
    this.#producer = this.#create();
    this.#connecting = undefined;
    if (wasConnected) await old.disconnect().catch(() => {});
  }

  /** Whether the current client wrote to any of `topics`. */
  wroteTo(topics: readonly string[]): boolean {
    return topics.some((t) => this.#written.has(t));
  }

  async send(topic: string, records: readonly LogRecord[]): Promise<void> {
    if (records.length === 0) return;
    this.#written.add(topic);
    const producer = this.#producer;
    const work = (async () => {
      this.#connecting ??= producer.connect().catch((error: unknown) => {
        this.#connecting = undefined;
        throw error;
      });
      await this.#connecting;
      await producer.send({
        topic,
        acks: -1,
        messages: records.map((r) => ({
          key: r.key,
          ...(r.partition !== undefined && { partition: r.partition }),
          value: Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength),
          headers: r.headers ? { ...r.headers } : undefined,
        })),
      });
    })();
    await boundedSend(work, {
      timeoutMs: this.#timeoutMs,
      log: this.#log,
      isCurrent: () => this.#producer === producer,
      replace: () => this.reset(),
    });
  }

  async close(): Promise<void> {
    if (this.#connecting) await this.#producer.disconnect();
  }
}

const DEFAULT_SESSION_TIMEOUT_MS = 30_000;

/**
 * Partitions' batches handled at once by one consumer (kafkajs workers; each is a few closures).
 * A member assigned more partitions handles the rest as workers free up.
 */
const CONCURRENT_PARTITIONS = 256;

/** How long a stop with no batch in hand waits for the group coordinator before going on. */
const LEAVE_GRACE_MS = 3_000;

class KafkaLogConsumer implements LogConsumer {
  readonly #consumer: Consumer;
  readonly #options: ConsumerOptions;
  readonly #log: Logger;
  readonly #onStop: () => void;
  #stopping: Promise<void> | undefined;
  /** The start in progress or done, so that a stop during start-up waits for it. */
  #starting: Promise<void> | undefined;
  /** The batches being handled and committed, if any: what a stop must wait for. */
  readonly #inHand = new Set<Promise<void>>();
  /** Commits of batches handled in this turn, sent together at the next one. */
  #pendingCommit:
    | {
        offsets: Map<string, { topic: string; partition: number; offset: string }>;
        commit: EachBatchPayload['commitOffsetsIfNecessary'];
        done: Promise<void>;
      }
    | undefined;

  constructor(
    kafka: Kafka,
    options: ConsumerOptions,
    sessionTimeoutMs: number,
    log: Logger,
    onStop: () => void,
  ) {
    this.#options = options;
    this.#log = log.child({ group: options.groupId });
    this.#onStop = onStop;
    this.#consumer = kafka.consumer({
      groupId: options.groupId,
      maxWaitTimeInMs: options.maxWaitMs,
      minBytes: options.minBytes ?? 1,
      sessionTimeout: sessionTimeoutMs,
      // Three heartbeats or more per session, as Kafka recommends; kafkajs's default is 3 s.
      heartbeatInterval: Math.min(3_000, Math.floor(sessionTimeoutMs / 3)),
      allowAutoTopicCreation: false,
      // Rejoin rather than give up when the broker is away for a while.
      retry: { initialRetryTime: 200, retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5_000 },
    });
  }

  run(handler: BatchHandler): Promise<void> {
    if (this.#stopping) return Promise.reject(new Error('consumer is stopped'));
    this.#starting = this.#start(handler);
    return this.#starting;
  }

  async #start(handler: BatchHandler): Promise<void> {
    await this.#consumer.connect();
    for (const topic of this.#options.topics) {
      await this.#consumer.subscribe({ topic, fromBeginning: this.#options.fromBeginning ?? true });
    }
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Every partition's batch of a fetch in hand at once: the handler may gather them into one
      // write, and their commits go out as one request (a partition's batches stay in order: the
      // next fetch waits for all of this one's).
      partitionsConsumedConcurrently: CONCURRENT_PARTITIONS,
      eachBatch: async (payload) => {
        if (payload.batch.messages.length === 0) return;
        let done!: () => void;
        const inHand = new Promise<void>((resolve) => {
          done = resolve;
        });
        this.#inHand.add(inHand);
        try {
          await this.#handle(payload, handler);
        } finally {
          this.#inHand.delete(inHand);
          done();
        }
      },
    });
    this.#log.info('consumer started', { topics: this.#options.topics });
  }

  /** One batch: to the handler, then its commit. */
  async #handle(payload: EachBatchPayload, handler: BatchHandler): Promise<void> {
    const { batch, heartbeat, isRunning, isStale, resolveOffset, commitOffsetsIfNecessary } = payload;
    const records = batch.messages.map((m) => ({
      key: m.key ? m.key.toString('utf8') : null,
      value: new Uint8Array(
        m.value?.buffer ?? new ArrayBuffer(0),
        m.value?.byteOffset ?? 0,
        m.value?.byteLength ?? 0,
      ),
      headers: headersOf(m.headers),
      offset: BigInt(m.offset),
      timestampMs: Number(m.timestamp),
    }));
    await handler(
      { topic: batch.topic, partition: batch.partition, records },
      { heartbeat, isActive: () => isRunning() && !isStale() },
    );
    const last = batch.messages[batch.messages.length - 1]!.offset;
    resolveOffset(last);
    if (isStale()) return; // the partition moved: its new owner re-reads, the sinks dedup
    await this.#commit(
      batch.topic,
      batch.partition,
      (BigInt(last) + 1n).toString(),
      commitOffsetsIfNecessary,
    );
  }

  /**
   * Commits one partition's next offset together with those of the other batches handled in the
   * same turn (the batches of one gathered write finish together): one OffsetCommit request for
   * them all. Through the batch's own commit function: consumer.commitOffsets() is a silent no-op
   * once a stop has begun, which would lose the last commit of a draining consumer.
   */
  #commit(
    topic: string,
    partition: number,
    offset: string,
    commit: EachBatchPayload['commitOffsetsIfNecessary'],
  ): Promise<void> {
    let pending = this.#pendingCommit;
    if (!pending) {
      const done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        const gathered = this.#pendingCommit!;
        this.#pendingCommit = undefined;
        const byTopic = new Map<string, { partition: number; offset: string }[]>();
        for (const o of gathered.offsets.values()) {
          const list = byTopic.get(o.topic) ?? [];
          list.push({ partition: o.partition, offset: o.offset });
          byTopic.set(o.topic, list);
        }
        return gathered.commit({ topics: [...byTopic].map(([t, partitions]) => ({ topic: t, partitions })) });
      });
      pending = { offsets: new Map(), commit, done };
      this.#pendingCommit = pending;
    }
    pending.offsets.set(`${topic}|${partition}`, { topic, partition, offset });
    pending.commit = commit;
    return pending.done;
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      // A stop during start-up waits for the start, so no consumer is left running after it.
      await this.#starting?.catch(() => {});
      if (this.#starting) {
        const disconnected = this.#consumer.disconnect().then(
          () => true,
          () => true,
        );
        // The batches in hand are handled and committed before anything else…
        await Promise.all(this.#inHand);
        // …but leaving the group may wait on the coordinator (a rejoin blocked until a dead
        // member's session times out, a broker coming back): with no batch in hand nothing is
        // left to commit, so the stop goes on after LEAVE_GRACE_MS and the group notices the
        // departure at the session timeout instead.
        let timer: NodeJS.Timeout | undefined;
        const left = await Promise.race([
          disconnected,
          new Promise<false>((resolve) => {
            timer = setTimeout(() => resolve(false), LEAVE_GRACE_MS);
          }),
        ]);
        clearTimeout(timer);
        if (!left)
          this.#log.warn('left without waiting for the group coordinator', { waitedMs: LEAVE_GRACE_MS });
      }
      this.#onStop();
      this.#log.info('consumer stopped');
    })();
    return this.#stopping;
  }
}

function headersOf(headers: Record<string, Buffer | string | (Buffer | string)[] | undefined> | undefined) {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) out[key] = first.toString();
  }
  return out;
}
