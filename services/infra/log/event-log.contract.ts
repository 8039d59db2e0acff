/**
 * The EventLog port's contract: one suite that every adapter must pass
 * (embedded-event-log.test.ts, kafka-event-log.integration.test.ts). Each test
 * makes its own topics and groups from randomUUID() and deletes its topics when it ends.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, type TestContext, test } from 'node:test';
import type {
  BatchContext,
  BatchHandler,
  ConsumedBatch,
  ConsumedRecord,
  ConsumerOptions,
  EventLog,
  LogConsumer,
  LogRecord,
} from './event-log.ts';

/** What a test needs from an adapter: a fresh log, and how to release it (and its files) after the test. */
export interface OpenedEventLog {
  log: EventLog;
  cleanup(): Promise<void>;
}

const TEST_TIMEOUT_MS = 90_000;
const WAIT_MS = 45_000;

/** Registers the contract tests for one adapter; `open` runs at the start of each test. */
export function eventLogContract(adapterName: string, open: () => Promise<OpenedEventLog>): void {
  const contractTest = (title: string, fn: (t: TestContext) => Promise<void>) =>
    test(title, { timeout: TEST_TIMEOUT_MS }, fn);

  describe(`EventLog contract: ${adapterName}`, () => {
    // Each test opens its own log: one test's failure or leftovers cannot leak into the next.
    const scopeOf = (t: TestContext) => testScope(t, open);

    contractTest(
      'ensureTopics is idempotent and keeps existing topics; deleteTopics removes a topic and its records',
      async (t) => {
        const scope = await scopeOf(t);
        const { log } = scope;
        const topic = `t-${randomUUID()}`;
        scope.defer(() => log.deleteTopics([topic]));

        await log.ensureTopics([{ name: topic, partitions: 3 }]);
        await log.ensureTopics([{ name: topic, partitions: 3 }]);
        await log.ensureTopics([{ name: topic, partitions: 5 }]);
        assert.deepEqual(sortedEntries(await log.endOffsets(topic)), [
          [0, 0n],
          [1, 0n],
          [2, 0n],
        ]);

        await log.producer().send(topic, [
          { key: 'a', value: bytes(1) },
          { key: 'b', value: bytes(2) },
        ]);
        assert.equal(sum(await log.endOffsets(topic)), 2n);

        await log.deleteTopics([topic]);
        await log.deleteTopics([topic]); // a missing topic is ignored
        // Re-created with another partition count: the old topic and its records are gone.
        await log.ensureTopics([{ name: topic, partitions: 2 }]);
        assert.deepEqual(sortedEntries(await log.endOffsets(topic)), [
          [0, 0n],
          [1, 0n],
        ]);
      },
    );

    contractTest('a record with a partition goes to that partition, whatever its key', async (t) => {
      const scope = await scopeOf(t);
      const { log } = scope;
      const topic = await scope.topic(3);
      // One key, three partitions: the key alone would put all of them on one.
      await log.producer().send(topic, [
        { key: 'same', partition: 0, value: bytes(1) },
        { key: 'same', partition: 2, value: bytes(2) },
        { key: 'same', partition: 2, value: bytes(3) },
        { key: 'same', partition: 1, value: bytes(4) },
      ]);
      assert.deepEqual(sortedEntries(await log.endOffsets(topic)), [
        [0, 1n],
        [1, 1n],
        [2, 2n],
      ]);
    });

    contractTest(
      'committedOffsets is empty for a group that never committed, and rejects for a missing topic',
      async (t) => {
        const scope = await scopeOf(t);
        const { log } = scope;
        const topic = await scope.topic(3);
        assert.deepEqual(await log.committedOffsets(`g-${randomUUID()}`, topic), new Map());
        await assert.rejects(log.committedOffsets(`g-${randomUUID()}`, `t-${randomUUID()}`));
      },
    );

    contractTest(
      "groupOffsets gives every partition's start, end and the group's commit, and rejects for a missing topic",
      async (t) => {
        const scope = await scopeOf(t);
        const { log } = scope;
        const topic = await scope.topic(3);
        const groupId = `g-${randomUUID()}`;
        const offsetsOf = async () =>
          (await log.groupOffsets(groupId, topic)).map((p) => ({
            partition: p.partition,
            start: p.start,
            end: p.end,
            committed: p.committed,
          }));
        const fresh = [0, 1, 2].map((partition) => ({ partition, start: 0n, end: 0n, committed: undefined }));
        assert.deepEqual(await offsetsOf(), fresh);

        const sent = keyedRecords('offsets', 20);
        await log.producer().send(topic, sent);
        const ends = sortedEntries(await log.endOffsets(topic));
        assert.deepEqual(
          await offsetsOf(),
          ends.map(([partition, end]) => ({ partition, start: 0n, end, committed: undefined })),
          'nothing committed yet',
        );

        const tracker = new Tracker();
        await scope.run({ groupId, topics: [topic] }, tracker.handler('c'));
        await tracker.until(
          () => tracker.count() >= sent.length,
          () => `${sent.length} records`,
        );
        // A partition the group read is committed at its end; one without records stays uncommitted.
        const caughtUp = ends.map(([partition, end]) => ({
          partition,
          start: 0n,
          end,
          committed: end > 0n ? end : undefined,
        }));
        await poll(
          async () => deepEquals(await offsetsOf(), caughtUp),
          () => 'the commits of every handled batch',
        );
        await scope.stopConsumers();
        assert.deepEqual(await offsetsOf(), caughtUp);
        await assert.rejects(log.groupOffsets(groupId, `t-${randomUUID()}`));
      },
    );

    contractTest(
      'batches of different partitions are in hand at once; each is committed after its handler',
      async (t) => {
        const scope = await scopeOf(t);
        const { log } = scope;
        const topic = await scope.topic(4);
        const groupId = `g-${randomUUID()}`;
        // Records waiting in every partition before the group starts: the first fetch has them all.
        const sent = Array.from({ length: 4 }, (_, partition) => ({
          key: null,
          partition,
          value: bytes(partition),
        }));
        await log.producer().send(topic, sent);
        let inHand = 0;
        let most = 0;
        let handled = 0;
        const handler: BatchHandler = async () => {
          inHand++;
          most = Math.max(most, inHand);
          // Held until another partition's batch is in hand too (or long enough to tell it never is).
          const deadline = Date.now() + 3_000;
          while (inHand < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
          await new Promise((resolve) => setTimeout(resolve, 20));
          inHand--;
          handled++;
        };
        await scope.run({ groupId, topics: [topic] }, handler);
        await poll(
          async () => {
            const offsets = await log.groupOffsets(groupId, topic);
            return offsets.every((o) => o.committed === o.end);
          },
          () => 'the commits of every partition',
        );
        assert.ok(handled >= 4, `${handled} batches handled`);
        assert.ok(most >= 2, `at most ${most} batch in hand at once`);
      },
    );

    contractTest(
      'records with one key keep their order in one partition; a group gets every record once, byte for byte',
      async (t) => {
        const scope = await scopeOf(t);
        const { log } = scope;
        const topic = await scope.topic(3);
        const sentAt = Date.now();
        const sent: LogRecord[] = [];
        let n = 0;
        for (let round = 0; round < 3; round++) {
          const call: LogRecord[] = [];
          for (let k = 0; k < 8; k++) {
            for (let j = 0; j < 2; j++) {
              call.push({
                key: `user-${k}`,
                value: distinctBytes(n++),
                headers: { seq: String(round * 2 + j), 'ünï cödé': 'välue ✓', empty: '' },
              });
            }
          }
          call.push({ key: null, value: distinctBytes(n++), headers: { seq: String(round) } });
          await log.producer().send(topic, call);
          sent.push(...call);
        }
        const edgeCases: LogRecord[] = [
          { key: 'no-headers', value: distinctBytes(n++) },
          { key: 'empty-value', value: new Uint8Array(0), headers: {} },
          { key: 'ключ 🔑', value: distinctBytes(n++), headers: { 'x-bytes': '\u0000\u00ff' } },
          { key: '', value: distinctBytes(n++) },
          { key: null, value: distinctBytes(n++) },
        ];
        await log.producer().send(topic, edgeCases);
        sent.push(...edgeCases);
        const sentUntil = Date.now();

        const tracker = new Tracker();
        await scope.run({ groupId: `g-${randomUUID()}`, topics: [topic] }, tracker.handler('c'));
        await tracker.until(
          () => tracker.count() >= sent.length,
          () => `${sent.length} records`,
        );
        await scope.stopConsumers();

        assertExactlyOnce(tracker.records(), sent);
        for (const { record } of tracker.records()) {
          assert.ok(
            record.timestampMs >= sentAt - 2_000 && record.timestampMs <= sentUntil + 2_000,
            `timestamp ${record.timestampMs} not within the send (${sentAt}..${sentUntil})`,
          );
        }
        // Per partition: handled in offset order, offsets dense from 0.
        const byPartition = groupBy(tracker.records(), (r) => r.partition);
        for (const [partition, records] of byPartition) {
          assert.deepEqual(
            records.map((r) => r.record.offset),
            records.map((_, i) => BigInt(i)),
            `partition ${partition} offsets`,
          );
        }
        // Per key: one partition, the order of the sends.
        const byKey = groupBy(
          tracker.records().filter((r) => r.record.key?.startsWith('user-')),
          (r) => r.record.key,
        );
        assert.equal(byKey.size, 8);
        for (const [key, records] of byKey) {
          assert.equal(new Set(records.map((r) => r.partition)).size, 1, `key ${key} spans partitions`);
          assert.deepEqual(
            records.map((r) => r.record.headers.seq),
            ['0', '1', '2', '3', '4', '5'],
            `key ${key} order`,
          );
        }
        const ends = await log.endOffsets(topic);
        assert.equal(sum(ends), BigInt(sent.length));
        for (const [partition, records] of byPartition)
          assert.equal(ends.get(partition), BigInt(records.length));
      },
    );

    contractTest('a new consumer of the group resumes after the last committed batch', async (t) => {
      const scope = await scopeOf(t);
      const { log } = scope;
      const topic = await scope.topic(3);
      const groupId = `g-${randomUUID()}`;
      const first = keyedRecords('first', 30);
      await log.producer().send(topic, first);

      const tracker = new Tracker();
      const c1 = await scope.run({ groupId, topics: [topic] }, tracker.handler('c1'));
      await tracker.until(
        () => tracker.count() >= first.length,
        () => `${first.length} records`,
      );
      const ends = nonZero(await log.endOffsets(topic));
      await poll(
        async () => deepEquals(sortedEntries(await log.committedOffsets(groupId, topic)), ends),
        () => 'the commits of every handled batch',
      );
      await c1.stop();
      assert.deepEqual(sortedEntries(await log.committedOffsets(groupId, topic)), ends);

      const second = keyedRecords('second', 30);
      await log.producer().send(topic, second);
      await scope.run({ groupId, topics: [topic] }, tracker.handler('c2'));
      await tracker.until(
        () => tracker.count() >= first.length + second.length,
        () => `${second.length} more records`,
      );
      await scope.stopConsumers();

      assertExactlyOnce(tracker.records('c1'), first);
      assertExactlyOnce(tracker.records('c2'), second);
      assert.deepEqual(
        sortedEntries(await log.committedOffsets(groupId, topic)),
        nonZero(await log.endOffsets(topic)),
      );
    });

    contractTest(
      'a handler that throws gets the same batch again, and the partition does not advance',
      async (t) => {
        const scope = await scopeOf(t);
        const { log } = scope;
        const topic = await scope.topic(1);
        const groupId = `g-${randomUUID()}`;
        const sent = keyedRecords('retry', 5);
        await log.producer().send(topic, sent);

        const attempts: { offsets: bigint[]; committed: [number, bigint][] }[] = [];
        const tracker = new Tracker();
        await scope.run(
          { groupId, topics: [topic] },
          tracker.handler('c', async (batch) => {
            if (attempts.length >= 3) return;
            attempts.push({
              offsets: batch.records.map((r) => r.offset),
              committed: sortedEntries(await log.committedOffsets(groupId, topic)),
            });
            throw new Error('the sink is down (a test failure on purpose)');
          }),
        );
        await tracker.until(
          () => tracker.count() >= sent.length,
          () => `${sent.length} records`,
        );
        await scope.stopConsumers();

        assert.equal(attempts.length, 3);
        const [first, ...retries] = attempts;
        assert.equal(first?.offsets[0], 0n);
        for (const attempt of [first!, ...retries]) {
          assert.deepEqual(
            attempt.offsets.slice(0, first!.offsets.length),
            first!.offsets,
            'the same batch again',
          );
          assert.deepEqual(attempt.committed, [], 'nothing committed past a failed batch');
        }
        assertExactlyOnce(tracker.records(), sent);
        assert.deepEqual(sortedEntries(await log.committedOffsets(groupId, topic)), [[0, 5n]]);
      },
    );

    contractTest(
      'consumers of one group split the partitions; when one stops the other takes over',
      async (t) => {
        const scope = await scopeOf(t);
        const { log } = scope;
        const topic = await scope.topic(3);
        const groupId = `g-${randomUUID()}`;
        const tracker = new Tracker();
        const a = await scope.run({ groupId, topics: [topic] }, tracker.handler('a'));
        const b = await scope.run({ groupId, topics: [topic] }, tracker.handler('b'));

        const split = keyedRecords('split', 60);
        await log.producer().send(topic, split);
        await tracker.until(
          () => tracker.count() >= split.length,
          () => `${split.length} records`,
        );
        assertExactlyOnce(tracker.records(), split);
        const partitionsOf = (name: string) => new Set(tracker.records(name).map((r) => r.partition));
        const ofA = partitionsOf('a');
        const ofB = partitionsOf('b');
        assert.equal(ofA.size + ofB.size, 3, 'every partition has one owner');
        assert.ok(ofA.size > 0 && ofB.size > 0, 'both consumers own partitions');
        assert.ok(
          [...ofA].every((p) => !ofB.has(p)),
          'no partition has two owners',
        );
        // Every handled batch commits before b leaves, so the takeover starts from the end.
        const ends = nonZero(await log.endOffsets(topic));
        await poll(
          async () => deepEquals(sortedEntries(await log.committedOffsets(groupId, topic)), ends),
          () => 'the split to be committed',
        );

        await b.stop();
        const handledByB = tracker.records('b').length;
        // One record for each of b's partitions: once a handles them all, it owns them.
        const probes = [...ofB].map((p) => {
          const key = tracker.records('b').find((r) => r.partition === p)?.record.key ?? null;
          return { key, value: distinctBytes(1_000_000 + p), headers: { probe: String(p) } };
        });
        await log.producer().send(topic, probes);
        await tracker.until(
          () =>
            tracker.records('a').filter((r) => r.record.headers.probe !== undefined).length >= probes.length,
          () => `a handling b's partitions ${[...ofB].join(',')}`,
        );
        const rest = keyedRecords('rest', 30);
        await log.producer().send(topic, rest);
        const all = [...split, ...probes, ...rest];
        await tracker.until(
          () => tracker.count() >= all.length,
          () => `${all.length} records`,
        );
        await a.stop();

        assertExactlyOnce(tracker.records(), all);
        assert.equal(tracker.records('b').length, handledByB, 'b handled nothing after it stopped');
        assert.deepEqual(
          sortedEntries(await log.committedOffsets(groupId, topic)),
          nonZero(await log.endOffsets(topic)),
        );
      },
    );

    contractTest('stop() waits for the batch in hand to finish and commit', async (t) => {
      const scope = await scopeOf(t);
      const { log } = scope;
      const topic = await scope.topic(1);
      const groupId = `g-${randomUUID()}`;
      await log.producer().send(topic, keyedRecords('slow', 3));

      const calls: { offsets: bigint[]; finished: boolean; startedAfterStop: boolean }[] = [];
      let stopCalled = false;
      const tracker = new Tracker();
      const consumer = await scope.run({ groupId, topics: [topic] }, async (batch) => {
        const call = {
          offsets: batch.records.map((r) => r.offset),
          finished: false,
          startedAfterStop: stopCalled,
        };
        calls.push(call);
        tracker.notify();
        await new Promise((resolve) => setTimeout(resolve, 300)); // a slow sink
        call.finished = true;
      });
      await tracker.until(
        () => calls.length > 0,
        () => 'the first batch',
      );
      stopCalled = true;
      await consumer.stop();

      assert.ok(calls.length > 0);
      assert.ok(
        calls.every((c) => c.finished),
        'every batch finished before stop() resolved',
      );
      assert.ok(
        calls.every((c) => !c.startedAfterStop),
        'no batch started after stop()',
      );
      const last = calls.at(-1)!.offsets.at(-1)!;
      assert.deepEqual(sortedEntries(await log.committedOffsets(groupId, topic)), [[0, last + 1n]]);
    });

    contractTest('a consumer stopped while it is still starting never consumes', async (t) => {
      const scope = await scopeOf(t);
      const { log } = scope;
      const topic = await scope.topic(1);
      await log.producer().send(topic, keyedRecords('early', 5));
      const groupId = `g-${randomUUID()}`;
      let handled = 0;
      const consumer = log.consumer({ groupId, topics: [topic], fromBeginning: true, maxWaitMs: 100 });
      const running = consumer.run(async (batch) => {
        handled += batch.records.length;
      });
      await consumer.stop();
      await running.catch(() => {});
      await log.producer().send(topic, keyedRecords('late', 5));
      // Long enough for a consumer left running by mistake to fetch and commit.
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal(handled, 0, 'no batch reached the handler after stop()');
      assert.equal((await log.committedOffsets(groupId, topic)).size, 0, 'nothing was committed');
    });

    contractTest('a new group with fromBeginning false starts at the end', async (t) => {
      const scope = await scopeOf(t);
      const { log } = scope;
      const topic = await scope.topic(3);
      const old = keyedRecords('old', 30);
      await log.producer().send(topic, old);

      const tracker = new Tracker();
      await scope.run(
        { groupId: `g-${randomUUID()}`, topics: [topic], fromBeginning: false },
        tracker.handler('c'),
      );
      // Probes until every partition delivered one: the consumer's positions are then fixed.
      for (let round = 0; new Set(tracker.records().map((r) => r.partition)).size < 3; round++) {
        assert.ok(round < 60, 'the consumer never delivered records sent after it started');
        await log.producer().send(topic, keyedRecords(`probe-${round}`, 9));
        await tracker
          .until(
            () => new Set(tracker.records().map((r) => r.partition)).size === 3,
            () => '',
            1_000,
          )
          .catch(() => {});
      }
      const fresh = keyedRecords('new', 30);
      await log.producer().send(topic, fresh);
      await tracker.until(
        () => tracker.records().filter((r) => r.record.key?.startsWith('new-')).length >= fresh.length,
        () => `${fresh.length} new records`,
      );
      await scope.stopConsumers();

      const handled = tracker.records();
      assert.equal(
        handled.filter((r) => r.record.key?.startsWith('old-')).length,
        0,
        'no record sent before',
      );
      assertExactlyOnce(
        handled.filter((r) => r.record.key?.startsWith('new-')),
        fresh,
      );
    });

    contractTest('the producer keeps working after a topic it wrote to is deleted', async (t) => {
      const scope = await scopeOf(t);
      const { log } = scope;
      const gone = await scope.topic(1);
      const kept = await scope.topic(1);
      await log.producer().send(gone, keyedRecords('gone', 2));
      await log.deleteTopics([gone]);
      await log.producer().send(kept, keyedRecords('kept', 2));
      assert.deepEqual(sortedEntries(await log.endOffsets(kept)), [[0, 2n]]);
    });

    contractTest('a waiting consumer gets a new record at once, not after maxWaitMs', async (t) => {
      const scope = await scopeOf(t);
      const { log } = scope;
      const topic = await scope.topic(1);
      const tracker = new Tracker();
      await scope.run(
        { groupId: `g-${randomUUID()}`, topics: [topic], maxWaitMs: 25_000 },
        tracker.handler('c'),
      );
      for (const [i, record] of keyedRecords('wake', 3).entries()) {
        await log.producer().send(topic, [record]);
        // Well under maxWaitMs: a consumer that only looks again when its wait runs out fails here.
        await tracker.until(
          () => tracker.count() > i,
          () => `record ${i}`,
          10_000,
        );
      }
    });

    contractTest('separate groups each get every record', async (t) => {
      const scope = await scopeOf(t);
      const { log } = scope;
      const topic = await scope.topic(3);
      const sent = keyedRecords('both', 40);
      await log.producer().send(topic, sent.slice(0, 20));
      const tracker = new Tracker();
      await scope.run({ groupId: `g-${randomUUID()}`, topics: [topic] }, tracker.handler('one'));
      await scope.run({ groupId: `g-${randomUUID()}`, topics: [topic] }, tracker.handler('two'));
      await log.producer().send(topic, sent.slice(20));
      await tracker.until(
        () => tracker.records('one').length >= sent.length && tracker.records('two').length >= sent.length,
        () => `${sent.length} records in each group`,
      );
      await scope.stopConsumers();
      assertExactlyOnce(tracker.records('one'), sent);
      assertExactlyOnce(tracker.records('two'), sent);
    });
  });
}

// ---- helpers ----

interface Handled {
  consumer: string;
  partition: number;
  record: ConsumedRecord;
}

/** Records what handlers completed, and wakes waiters on every batch. */
class Tracker {
  readonly #handled: Handled[] = [];
  readonly #waiters = new Set<() => void>();

  /** A handler that runs `inner` (which may throw) and then records the batch as handled. */
  handler(
    consumer: string,
    inner?: (batch: ConsumedBatch, context: BatchContext) => Promise<void>,
  ): BatchHandler {
    return async (batch, context) => {
      try {
        if (inner) await inner(batch, context);
        for (const record of batch.records)
          this.#handled.push({ consumer, partition: batch.partition, record });
      } finally {
        this.notify();
      }
    };
  }

  records(consumer?: string): Handled[] {
    return consumer === undefined ? [...this.#handled] : this.#handled.filter((h) => h.consumer === consumer);
  }

  count(): number {
    return this.#handled.length;
  }

  notify(): void {
    for (const wake of this.#waiters) wake();
  }

  /** Resolves once `condition` holds (checked on every batch); rejects after `timeoutMs`. */
  async until(condition: () => boolean, what: () => string, timeoutMs = WAIT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()} (handled ${this.count()})`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 500));
        this.#waiters.add(wake);
      });
    }
  }
}

/** Polls `probe` until true; rejects after `timeoutMs`. */
async function poll(probe: () => Promise<boolean>, what: () => string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A test's topics and consumers, released in reverse order when the test ends. */
async function testScope(t: TestContext, open: () => Promise<OpenedEventLog>) {
  const cleanups: (() => Promise<void>)[] = [];
  const consumers: LogConsumer[] = [];
  t.after(async () => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw errors[0];
  });
  const defer = (cleanup: () => Promise<void>) => {
    cleanups.push(cleanup);
  };
  const opened = await open();
  defer(() => opened.cleanup());
  const log = opened.log;
  return {
    log,
    defer,
    async topic(partitions: number): Promise<string> {
      const name = `t-${randomUUID()}`;
      defer(() => log.deleteTopics([name]));
      await log.ensureTopics([{ name, partitions }]);
      return name;
    },
    /** A consumer (maxWaitMs 200 unless given), stopped when the test ends. */
    consumer(options: Omit<ConsumerOptions, 'maxWaitMs'> & { maxWaitMs?: number }): LogConsumer {
      const consumer = log.consumer({ maxWaitMs: 200, ...options });
      consumers.push(consumer);
      defer(() => consumer.stop());
      return consumer;
    },
    /** A consumer already running `handler`. */
    async run(
      options: Omit<ConsumerOptions, 'maxWaitMs'> & { maxWaitMs?: number },
      handler: BatchHandler,
    ): Promise<LogConsumer> {
      const consumer = this.consumer(options);
      await consumer.run(handler);
      return consumer;
    },
    async stopConsumers(): Promise<void> {
      await Promise.all(consumers.map((c) => c.stop()));
    },
  };
}

/** `count` records over `count / 2` keys, two per key, each value distinct. */
function keyedRecords(prefix: string, count: number): LogRecord[] {
  const seed = Math.floor(Math.random() * 1e9);
  return Array.from({ length: count }, (_, i) => ({
    key: `${prefix}-${Math.floor(i / 2)}`,
    value: distinctBytes(seed + i),
    headers: { n: String(i) },
  }));
}

/** Bytes unique to `n`, covering every byte value. */
function distinctBytes(n: number): Uint8Array {
  const value = new Uint8Array(4 + 256);
  new DataView(value.buffer).setUint32(0, n >>> 0);
  for (let i = 0; i < 256; i++) value[4 + i] = (i + n) & 0xff;
  return value;
}

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function identity(key: string | null, value: Uint8Array): string {
  return `${key === null ? '∅' : JSON.stringify(key)}|${Buffer.from(value).toString('hex')}`;
}

/** Every sent record handled exactly once, with the key, value and headers it was sent with. */
function assertExactlyOnce(handled: readonly Handled[], sent: readonly LogRecord[]): void {
  const expected = new Map(sent.map((r) => [identity(r.key, r.value), r]));
  assert.equal(expected.size, sent.length, 'test records must be distinct');
  const seen = new Map<string, number>();
  for (const { record } of handled) {
    const id = identity(record.key, record.value);
    const original = expected.get(id);
    assert.ok(original, `an unexpected record: key ${record.key}, offset ${record.offset}`);
    assert.ok(record.value instanceof Uint8Array);
    assert.deepEqual(new Uint8Array(record.value), new Uint8Array(original.value));
    assert.deepEqual({ ...record.headers }, { ...(original.headers ?? {}) });
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  const repeated = [...seen].filter(([, times]) => times > 1).length;
  const missing = [...expected.keys()].filter((id) => !seen.has(id)).length;
  assert.deepEqual({ missing, repeated }, { missing: 0, repeated: 0 });
}

function groupBy<T, K>(items: readonly T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

function sortedEntries(map: ReadonlyMap<number, bigint>): [number, bigint][] {
  return [...map].sort(([a], [b]) => a - b);
}

function nonZero(map: ReadonlyMap<number, bigint>): [number, bigint][] {
  return sortedEntries(map).filter(([, offset]) => offset > 0n);
}

function sum(map: ReadonlyMap<number, bigint>): bigint {
  let total = 0n;
  for (const value of map.values()) total += value;
  return total;
}

function deepEquals(a: unknown, b: unknown): boolean {
  try {
    assert.deepEqual(a, b);
    return true;
  } catch {
    return false;
  }
}
