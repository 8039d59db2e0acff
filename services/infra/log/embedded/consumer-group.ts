/**
 * Consumer groups of the embedded log, within one process. The members of a
 * group share its topics' partitions round-robin (partition p of a topic goes
 * to the (p mod n)-th subscribed member in join order), recomputed when a
 * member joins or leaves or a topic appears or goes. A partition changes hands
 * only after its previous owner's batch in hand finished and committed, and
 * the new owner starts from the committed offset.
 */
import { AppError, Code } from '../../app-error.ts';
import type { Logger } from '../../logger.ts';
import type { BatchContext, BatchHandler, ConsumerOptions, LogConsumer } from '../event-log.ts';
import type { OffsetStore } from './offset-store.ts';
import type { PartitionLog } from './partition-log.ts';

/** Longest an idle partition's consumer waits before reading again (an append wakes it sooner). */
const IDLE_RECHECK_MS = 1_000;

/** A topic as consumers see it: its incarnation id and partitions. */
export interface TopicView {
  id: string;
  partitions: readonly PartitionLog[];
}

export interface ConsumerSettings {
  maxBatchRecords: number;
  maxBatchBytes: number;
  /** First wait before redelivering a failed batch; doubles per failure up to `retryMaxMs`. */
  retryInitialMs: number;
  retryMaxMs: number;
}

export interface CoordinatorDeps {
  topic(name: string): TopicView | undefined;
  offsets: OffsetStore;
  logger: Logger;
  settings: ConsumerSettings;
}

interface Group {
  id: string;
  members: EmbeddedConsumer[];
  /** Partition → the `done` of its previous owner's worker: the next owner starts after it. */
  handovers: Map<string, Promise<void>>;
  /** Partition → where a member started it without a committed offset, for the next owner. */
  startPositions: Map<string, bigint>;
}

type Assignment = Map<string, { topic: string; topicId: string; log: PartitionLog }>;

export class GroupCoordinator {
  readonly #deps: CoordinatorDeps;
  readonly #groups = new Map<string, Group>();

  constructor(deps: CoordinatorDeps) {
    this.#deps = deps;
  }

  get deps(): CoordinatorDeps {
    return this.#deps;
  }

  join(member: EmbeddedConsumer): Group {
    let group = this.#groups.get(member.groupId);
    if (!group) {
      group = { id: member.groupId, members: [], handovers: new Map(), startPositions: new Map() };
      this.#groups.set(member.groupId, group);
    }
    group.members.push(member);
    this.#rebalance(group);
    return group;
  }

  leave(member: EmbeddedConsumer): void {
    const group = this.#groups.get(member.groupId);
    if (!group) return;
    group.members = group.members.filter((m) => m !== member);
    this.#handOver(group, member.revoke(new Map()));
    if (group.members.length === 0) this.#groups.delete(group.id);
    else this.#rebalance(group);
  }

  /** After topics were created or deleted. */
  rebalanceAll(): void {
    for (const group of this.#groups.values()) this.#rebalance(group);
  }

  #rebalance(group: Group): void {
    const wanted = new Map<EmbeddedConsumer, Assignment>(group.members.map((m) => [m, new Map()]));
    const topics = [...new Set(group.members.flatMap((m) => m.topics))].sort();
    for (const topic of topics) {
      const view = this.#deps.topic(topic);
      if (!view) continue;
      const subscribed = group.members.filter((m) => m.topics.includes(topic));
      for (const [partition, log] of view.partitions.entries()) {
        const owner = subscribed[partition % subscribed.length]!;
        wanted.get(owner)!.set(partitionKey(topic, partition), { topic, topicId: view.id, log });
      }
    }
    // Every revocation before any start, so each new owner sees the handover it must wait for.
    for (const member of group.members) this.#handOver(group, member.revoke(wanted.get(member)!));
    for (const member of group.members) member.assign(wanted.get(member)!, group);
  }

  #handOver(group: Group, revoked: Map<string, Promise<void>>): void {
    for (const [key, done] of revoked) {
      group.handovers.set(key, done);
      done.then(() => {
        if (group.handovers.get(key) === done) group.handovers.delete(key);
      });
    }
  }
}

/** A member of a consumer group; see LogConsumer. */
export class EmbeddedConsumer implements LogConsumer {
  readonly groupId: string;
  readonly topics: readonly string[];
  readonly fromBeginning: boolean;
  readonly maxWaitMs: number;
  readonly #coordinator: () => Promise<GroupCoordinator>;
  readonly #onStop: () => void;
  readonly #log: Logger;
  #coordinatorReady: GroupCoordinator | undefined;
  #handler: BatchHandler | undefined;
  #state: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  #stopping: Promise<void> | undefined;
  readonly #workers = new Map<string, PartitionWorker>();

  constructor(
    options: ConsumerOptions,
    coordinator: () => Promise<GroupCoordinator>,
    logger: Logger,
    onStop: () => void,
  ) {
    this.groupId = options.groupId;
    this.topics = [...new Set(options.topics)];
    this.fromBeginning = options.fromBeginning ?? true;
    this.maxWaitMs = options.maxWaitMs;
    this.#coordinator = coordinator;
    this.#onStop = onStop;
    this.#log = logger.child({ group: options.groupId });
  }

  async run(handler: BatchHandler): Promise<void> {
    if (this.#state !== 'new')
      throw new AppError(
        Code.FAILED_PRECONDITION,
        'a consumer runs once: run() was already called, or stop()',
      );
    this.#state = 'starting';
    const coordinator = await this.#coordinator();
    if (this.#state !== 'starting') return; // stopped while opening
    const missing = this.topics.filter((t) => !coordinator.deps.topic(t));
    if (missing.length > 0) {
      this.#state = 'new';
      throw new AppError(Code.NOT_FOUND, `topic ${missing.join(', ')} does not exist`);
    }
    this.#handler = handler;
    this.#coordinatorReady = coordinator;
    this.#state = 'running';
    coordinator.join(this);
    await Promise.all([...this.#workers.values()].map((w) => w.started));
    this.#log.info('consumer started', { topics: this.topics });
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const wasRunning = this.#state === 'running';
      this.#state = 'stopped';
      if (wasRunning) {
        const workers = [...this.#workers.values()];
        this.#coordinatorReady?.leave(this); // revokes our partitions: the others wait for our batches
        await Promise.all(workers.map((w) => w.done));
        this.#log.info('consumer stopped');
      }
      this.#onStop();
    })();
    return this.#stopping;
  }

  /** Revokes the partitions not in `keep` (all of them when stopping); returns their workers' completions. */
  revoke(keep: Assignment): Map<string, Promise<void>> {
    const revoked = new Map<string, Promise<void>>();
    for (const [key, worker] of this.#workers) {
      if (keep.get(key)?.log === worker.log && this.#state === 'running') continue;
      worker.revoke();
      this.#workers.delete(key);
      revoked.set(key, worker.done);
    }
    return revoked;
  }

  /** Starts a worker for each partition of `assignment` this member does not hold yet. */
  assign(assignment: Assignment, group: Group): void {
    if (this.#state !== 'running' || !this.#handler || !this.#coordinatorReady) return;
    for (const [key, { topic, topicId, log }] of assignment) {
      if (this.#workers.has(key)) continue;
      this.#workers.set(
        key,
        new PartitionWorker({
          key,
          topic,
          topicId,
          log,
          group,
          consumer: this,
          handler: this.#handler,
          deps: this.#coordinatorReady.deps,
          logger: this.#log,
          after: group.handovers.get(key),
        }),
      );
    }
  }
}

interface WorkerInit {
  key: string;
  topic: string;
  topicId: string;
  log: PartitionLog;
  group: Group;
  consumer: EmbeddedConsumer;
  handler: BatchHandler;
  deps: CoordinatorDeps;
  logger: Logger;
  /** The previous owner's completion. */
  after: Promise<void> | undefined;
}

/** Consumes one partition for one member: one batch at a time, in offset order, committing after each. */
class PartitionWorker {
  readonly log: PartitionLog;
  /** Resolves once the worker has its start position (or ended). */
  readonly started: Promise<void>;
  /** Resolves once the worker ended: its last batch finished and committed (never rejects). */
  readonly done: Promise<void>;
  readonly #init: WorkerInit;
  readonly #abort = new AbortController();
  #active = true;
  #markStarted: () => void = () => {};

  constructor(init: WorkerInit) {
    this.#init = init;
    this.log = init.log;
    this.started = new Promise<void>((resolve) => {
      this.#markStarted = resolve;
    });
    this.done = this.#run().then(
      () => this.#markStarted(),
      (error: unknown) => {
        this.#markStarted();
        init.logger.error('partition consumer failed', {
          topic: init.topic,
          partition: init.log.partition,
          error,
        });
      },
    );
  }

  revoke(): void {
    this.#active = false;
    this.#abort.abort();
  }

  async #run(): Promise<void> {
    const { log, topic, handler, deps, logger } = this.#init;
    const partition = log.partition;
    if (this.#init.after) await this.#init.after;
    if (!this.#active) return;
    let position = this.#startPosition();
    this.#markStarted();
    const context: BatchContext = {
      heartbeat: async () => {},
      isActive: () => this.#active && !log.closed,
    };
    let failures = 0;
    const backOff = async (message: string, fields: Record<string, unknown>) => {
      failures++;
      const retryInMs = Math.min(
        deps.settings.retryInitialMs * 2 ** (failures - 1),
        deps.settings.retryMaxMs,
      );
      logger.warn(message, { topic, partition, retryInMs, ...fields });
      await sleep(retryInMs, this.#abort.signal);
    };

    while (this.#active) {
      let result: Awaited<ReturnType<PartitionLog['read']>>;
      try {
        result = await log.read(position, deps.settings.maxBatchRecords, deps.settings.maxBatchBytes);
      } catch (error) {
        await backOff('reading the partition failed', { offset: position.toString(), error });
        continue;
      }
      if (result.kind === 'closed' || !this.#active) return; // revoked during the read: no new batch
      if (result.kind === 'out-of-range') {
        const reset = this.#init.consumer.fromBeginning ? result.logStartOffset : result.endOffset;
        logger.warn('offset out of range (records deleted by retention?): resetting', {
          topic,
          partition,
          offset: position.toString(),
          resetTo: reset.toString(),
        });
        position = reset;
        continue;
      }
      const records = result.records;
      if (records.length === 0) {
        // An append wakes the wait at once: its bound only re-checks now and then, so a short
        // fetch wait meant for Kafka (where it batches) need not spin an idle partition here.
        await log.waitForRecords(
          position,
          Math.max(this.#init.consumer.maxWaitMs, IDLE_RECHECK_MS),
          this.#abort.signal,
        );
        continue;
      }
      try {
        await handler({ topic, partition, records }, context);
      } catch (error) {
        await backOff('batch handler failed: the batch will be redelivered', {
          firstOffset: records[0]!.offset.toString(),
          error,
        });
        continue;
      }
      const next = records.at(-1)!.offset + 1n;
      // A deleted topic's offsets are gone with it (and must not touch a re-created topic's).
      if (deps.topic(topic)?.id !== this.#init.topicId) return;
      try {
        // Committed even when the partition was revoked meanwhile: its next owner waits for this.
        await deps.offsets.commit(this.#init.group.id, topic, this.#init.topicId, partition, next);
      } catch (error) {
        await backOff('commit failed: the batch will be redelivered', { error });
        continue;
      }
      failures = 0;
      position = next;
    }
  }

  /** The committed offset; else where the group's previous owner started; else earliest or latest. */
  #startPosition(): bigint {
    const { deps, group, key, log, topic, topicId, consumer } = this.#init;
    const committed = deps.offsets.committed(group.id, topic, topicId).get(log.partition);
    if (committed !== undefined) return committed;
    const incarnation = `${key}#${topicId}`;
    let position = group.startPositions.get(incarnation);
    if (position === undefined) {
      position = consumer.fromBeginning ? log.logStartOffset : log.endOffset;
      group.startPositions.set(incarnation, position);
    }
    return position;
  }
}

function partitionKey(topic: string, partition: number): string {
  return `${partition}@${topic}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
