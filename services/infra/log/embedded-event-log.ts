/**
 * The event log in this process, on files: no server needed. Same contract as
 * the Kafka adapter (event-log.contract.ts): partitioned topics (a key's
 * records on one partition, Kafka's murmur2 partitioner), sends acknowledged
 * once fdatasync'd, consumer groups of this process sharing partitions, and
 * offsets committed after the handler. One process per data directory.
 *
 * Layout of `dataDir`: `LOCK` (owner pid), `topics/<topic>/topic.json` and
 * `topics/<topic>/<partition>/<first offset>.log` (+ `.index`),
 * `groups/<hash of group id>.json` (committed offsets), `trash/` (deletions in progress).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AppError, Code } from '../app-error.ts';
import { lockDataDir } from '../data-dir-lock.ts';
import type { Logger } from '../logger.ts';
import { type CoordinatorDeps, EmbeddedConsumer, GroupCoordinator } from './embedded/consumer-group.ts';
import { errnoCode, fsyncDir, writeFileAtomic } from './embedded/files.ts';
import { OffsetStore } from './embedded/offset-store.ts';
import { PartitionLog, type PartitionLogOptions } from './embedded/partition-log.ts';
import { type EncodedRecord, FRAME_HEADER_BYTES, prepareRecord } from './embedded/record-format.ts';
import type {
  ConsumerOptions,
  EventLog,
  LogConsumer,
  LogProducer,
  LogRecord,
  PartitionOffsets,
  TopicSpec,
} from './event-log.ts';
import { partitionForKey } from './murmur2.ts';

export interface EmbeddedEventLogOptions {
  /** Directory of the log's files; created if missing, locked to this process. */
  dataDir: string;
  logger: Logger;
  /** Size at which a partition's segment file is closed and the next one started (default 128 MiB). */
  segmentBytes?: number;
  /** Per partition, the oldest segments are deleted while the rest hold at least this much (default 1 GiB). */
  retentionBytes?: number;
  /** Segments whose newest record is older than this are deleted (default 7 days). */
  retentionMs?: number;
  /** How often retention runs besides after each new segment (default 5 min). */
  retentionCheckIntervalMs?: number;
  /** Largest record (key, value and headers) a send accepts (default 1 MiB, like Kafka's message.max.bytes). */
  maxRecordBytes?: number;
  /** Most records in one consumed batch (default 1,000). */
  maxBatchRecords?: number;
  /** About the most bytes in one consumed batch; a larger record still comes, alone (default 1 MiB). */
  maxBatchBytes?: number;
  /** First wait before a failed batch is redelivered, doubling per failure (default 200 ms). */
  retryInitialMs?: number;
  /** Longest wait before a failed batch is redelivered (default 5 s). */
  retryMaxMs?: number;
}

const MiB = 1024 * 1024;
const DEFAULTS = {
  segmentBytes: 128 * MiB,
  retentionBytes: 1024 * MiB,
  retentionMs: 7 * 24 * 3600 * 1000,
  retentionCheckIntervalMs: 5 * 60 * 1000,
  maxRecordBytes: MiB,
  maxBatchRecords: 1_000,
  maxBatchBytes: MiB,
  retryInitialMs: 200,
  retryMaxMs: 5_000,
};
const MAX_PARTITIONS = 10_000;
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

interface Topic {
  name: string;
  /** This incarnation of the name: a deleted and re-created topic gets a new id. */
  id: string;
  dir: string;
  partitions: PartitionLog[];
  /** Next partition for a record without a key. */
  roundRobin: number;
}

interface RawTopicFile {
  name: string;
  id: string;
  partitions: number;
  createdAt: string;
}

interface State {
  topics: Map<string, Topic>;
  offsets: OffsetStore;
  coordinator: GroupCoordinator;
  retentionTimer: NodeJS.Timeout;
  releaseLock: () => Promise<void>;
}

/**
 * Creates the embedded log; it opens at once (lock, recovery of every
 * partition) and an opening failure (e.g. the directory is locked) rejects
 * every call.
 */
export function createEmbeddedEventLog(options: EmbeddedEventLogOptions): EventLog {
  const dataDir = resolve(options.dataDir);
  const logger = options.logger.child({ component: 'embedded-log' });
  const settings = { ...DEFAULTS, ...definedOnly(options) };
  const partitionOptions: PartitionLogOptions = {
    segmentBytes: settings.segmentBytes,
    retentionBytes: settings.retentionBytes,
    retentionMs: settings.retentionMs,
    // A longer frame is garbage to recovery. Not tied to maxRecordBytes alone: lowering that must not make
    // records already written look like garbage.
    maxFrameBytes: Math.max(settings.maxRecordBytes + 64 * 1024, 64 * MiB),
    indexIntervalBytes: 4096,
    logger,
  };
  const topicsDir = join(dataDir, 'topics');
  const trashDir = join(dataDir, 'trash');
  const consumers = new Set<EmbeddedConsumer>();
  let closing: Promise<void> | undefined;
  let admin: Promise<unknown> = Promise.resolve();

  const opening = open();
  opening.catch(() => {}); // reported by every call

  async function open(): Promise<State> {
    const started = Date.now();
    await mkdir(dataDir, { recursive: true });
    const releaseLock = await lockDataDir(dataDir, logger, { what: 'the event log' });
    const topics = new Map<string, Topic>();
    try {
      await mkdir(topicsDir, { recursive: true });
      await rm(trashDir, { recursive: true, force: true });
      await mkdir(trashDir, { recursive: true });
      for (const name of await readdir(topicsDir)) {
        const topic = await openTopic(name);
        if (topic) topics.set(topic.name, topic);
      }
      const offsets = await OffsetStore.open(join(dataDir, 'groups'));
      await offsets.retainTopics(new Map([...topics.values()].map((t) => [t.name, t.id])));
      const deps: CoordinatorDeps = {
        topic: (name) => topics.get(name),
        offsets,
        logger,
        settings: {
          maxBatchRecords: settings.maxBatchRecords,
          maxBatchBytes: settings.maxBatchBytes,
          retryInitialMs: settings.retryInitialMs,
          retryMaxMs: settings.retryMaxMs,
        },
      };
      const retentionTimer = setInterval(() => {
        for (const topic of topics.values())
          for (const partition of topic.partitions)
            partition
              .enforceRetention()
              .catch((error: unknown) => logger.warn('retention failed', { topic: topic.name, error }));
      }, settings.retentionCheckIntervalMs);
      retentionTimer.unref();
      logger.info('embedded event log opened', {
        dataDir,
        topics: topics.size,
        tookMs: Date.now() - started,
      });
      return { topics, offsets, coordinator: new GroupCoordinator(deps), retentionTimer, releaseLock };
    } catch (error) {
      await Promise.all(
        [...topics.values()].flatMap((t) => t.partitions.map((p) => p.close().catch(() => {}))),
      );
      await releaseLock();
      throw error;
    }
  }

  /** Opens a topic's directory; one without topic.json is an interrupted creation and is removed. */
  async function openTopic(dirName: string): Promise<Topic | undefined> {
    const dir = join(topicsDir, dirName);
    let raw: RawTopicFile;
    try {
      raw = JSON.parse(await readFile(join(dir, 'topic.json'), 'utf8')) as RawTopicFile;
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
      logger.warn('removing an unfinished topic', { dir });
      await discard(dir);
      return undefined;
    }
    const partitions = await Promise.all(
      Array.from({ length: raw.partitions }, (_, p) =>
        PartitionLog.open(raw.name, p, join(dir, String(p)), partitionOptions),
      ),
    );
    return {
      name: raw.name,
      id: raw.id,
      dir,
      partitions,
      roundRobin: Math.floor(Math.random() * raw.partitions),
    };
  }

  /** Moves a directory to the trash (atomic), then removes it. */
  async function discard(dir: string): Promise<void> {
    const target = join(trashDir, `${randomBytes(8).toString('hex')}`);
    await rename(dir, target);
    await fsyncDir(topicsDir);
    await rm(target, { recursive: true, force: true });
  }

  async function ready(): Promise<State> {
    if (closing) throw new AppError(Code.UNAVAILABLE, `the embedded event log in ${dataDir} is closed`);
    return opening;
  }

  /** Topic creation and deletion, one at a time. */
  function serialized<T>(work: () => Promise<T>): Promise<T> {
    const result = admin.then(work, work);
    admin = result.catch(() => {});
    return result;
  }

  const producer: LogProducer = {
    async send(topicName: string, records: readonly LogRecord[]): Promise<void> {
      if (records.length === 0) return;
      const state = await ready();
      const topic = state.topics.get(topicName);
      // UNAVAILABLE, as from Kafka (which times out): the topic may be about to be created.
      if (!topic) throw new AppError(Code.UNAVAILABLE, `topic ${topicName} does not exist`);
      const count = topic.partitions.length;
      const byPartition = new Map<number, EncodedRecord[]>();
      for (const [i, record] of records.entries()) {
        const encoded = prepareRecord(record);
        const recordBytes = encoded.frameBytes - FRAME_HEADER_BYTES;
        if (recordBytes > settings.maxRecordBytes)
          throw AppError.invalidField(
            `records[${i}]`,
            `${recordBytes} bytes is over the ${settings.maxRecordBytes}-byte record limit`,
          );
        const partition =
          record.partition ??
          (record.key === null ? topic.roundRobin++ % count : partitionForKey(record.key, count));
        if (partition < 0 || partition >= count || !Number.isInteger(partition))
          throw AppError.invalidField(
            `records[${i}].partition`,
            `${topicName} has partitions 0..${count - 1}`,
          );
        const list = byPartition.get(partition);
        if (list) list.push(encoded);
        else byPartition.set(partition, [encoded]);
      }
      const results = await Promise.allSettled(
        [...byPartition].map(([partition, list]) => topic.partitions[partition]!.append(list)),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) {
        const error: unknown = failed.reason;
        throw error instanceof AppError
          ? error
          : new AppError(Code.UNAVAILABLE, 'appending to the embedded log failed', { cause: error });
      }
    },
  };

  return {
    description: `embedded (file log in ${dataDir})`,

    async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
      for (const spec of specs) {
        if (!TOPIC_NAME.test(spec.name) || spec.name === '.' || spec.name === '..')
          throw AppError.invalidField('name', `${JSON.stringify(spec.name)} is not a valid topic name`);
        if (!Number.isInteger(spec.partitions) || spec.partitions < 1 || spec.partitions > MAX_PARTITIONS)
          throw AppError.invalidField('partitions', `must be an integer from 1 to ${MAX_PARTITIONS}`);
      }
      return serialized(async () => {
        const state = await ready();
        const created: TopicSpec[] = [];
        for (const spec of specs) {
          if (state.topics.has(spec.name)) continue;
          const dir = join(topicsDir, spec.name);
          await rm(dir, { recursive: true, force: true }); // nothing there but an unfinished creation
          await mkdir(dir);
          const raw: RawTopicFile = {
            name: spec.name,
            id: randomUUID(),
            partitions: spec.partitions,
            createdAt: new Date().toISOString(),
          };
          let partitions: PartitionLog[] = [];
          try {
            partitions = await Promise.all(
              Array.from({ length: spec.partitions }, (_, p) =>
                PartitionLog.open(spec.name, p, join(dir, String(p)), partitionOptions),
              ),
            );
            await writeFileAtomic(join(dir, 'topic.json'), `${JSON.stringify(raw)}\n`); // the topic exists from here
            await fsyncDir(topicsDir);
          } catch (error) {
            await Promise.all(partitions.map((p) => p.close()));
            await rm(dir, { recursive: true, force: true });
            throw error;
          }
          state.topics.set(spec.name, { name: spec.name, id: raw.id, dir, partitions, roundRobin: 0 });
          created.push(spec);
        }
        if (created.length === 0) return;
        state.coordinator.rebalanceAll();
        logger.info('created topics', { topics: created });
      });
    },

    deleteTopics(names: readonly string[]): Promise<void> {
      return serialized(async () => {
        const state = await ready();
        const doomed = names.flatMap((n) => state.topics.get(n) ?? []);
        if (doomed.length === 0) return;
        for (const topic of doomed) state.topics.delete(topic.name);
        state.coordinator.rebalanceAll(); // their consumers let go
        for (const topic of doomed) {
          await Promise.all(topic.partitions.map((p) => p.close()));
          await discard(topic.dir);
        }
        await state.offsets.dropTopics(new Map(doomed.map((t) => [t.name, t.id])));
        logger.info('deleted topics', { topics: doomed.map((t) => t.name) });
      });
    },

    producer(): LogProducer {
      return producer;
    },

    consumer(consumerOptions: ConsumerOptions): LogConsumer {
      const consumer = new EmbeddedConsumer(
        consumerOptions,
        async () => (await ready()).coordinator,
        logger,
        () => consumers.delete(consumer),
      );
      consumers.add(consumer);
      return consumer;
    },

    async endOffsets(topicName: string): Promise<Map<number, bigint>> {
      const topic = existing(await ready(), topicName);
      return new Map(topic.partitions.map((p) => [p.partition, p.endOffset]));
    },

    async committedOffsets(groupId: string, topicName: string): Promise<Map<number, bigint>> {
      const state = await ready();
      const topic = existing(state, topicName);
      return state.offsets.committed(groupId, topic.name, topic.id);
    },

    async groupOffsets(groupId: string, topicName: string): Promise<PartitionOffsets[]> {
      const state = await ready();
      const topic = existing(state, topicName);
      const committed = state.offsets.committed(groupId, topic.name, topic.id);
      return topic.partitions.map((p) => ({
        partition: p.partition,
        start: p.logStartOffset,
        end: p.endOffset,
        committed: committed.get(p.partition),
      }));
    },

    close(): Promise<void> {
      closing ??= (async () => {
        let state: State;
        try {
          state = await opening;
        } catch {
          return; // never opened: nothing to release
        }
        await Promise.all([...consumers].map((c) => c.stop()));
        await admin;
        clearInterval(state.retentionTimer);
        await Promise.all([...state.topics.values()].flatMap((t) => t.partitions.map((p) => p.close())));
        await state.releaseLock();
        logger.info('embedded event log closed', { dataDir });
      })();
      return closing;
    },
  };
}

function existing(state: State, name: string): Topic {
  const topic = state.topics.get(name);
  if (!topic) throw new AppError(Code.NOT_FOUND, `topic ${name} does not exist`);
  return topic;
}

/** The options that were given (undefined ones keep their defaults). */
function definedOnly(options: EmbeddedEventLogOptions): Partial<typeof DEFAULTS> {
  return Object.fromEntries(
    Object.entries(options).filter(([key, value]) => key in DEFAULTS && value !== undefined),
  ) as Partial<typeof DEFAULTS>;
}
