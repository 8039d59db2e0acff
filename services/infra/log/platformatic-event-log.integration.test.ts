/**
 * The event log contract (event-log.contract.ts) on the @platformatic/kafka adapter, against
 * the real broker; then what only two Kafka clients can show: each reads what the other wrote,
 * in order, and a key lands on the same partition whichever wrote it. Then group handovers (on
 * both adapters) and stops, the client's own behaviours the adapter works around, and last the
 * adapter across a restart of a broker of the test's own.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import {
  Consumer,
  compatibilityPartitioner,
  defaultPartitioner,
  murmur2 as platformaticMurmur2,
} from '@platformatic/kafka';
import { Partitioners } from 'kafkajs';
import { createPrivateKafka } from '../../testing/private-kafka.ts';
import { realServers, requireRealServers, waitFor } from '../../testing/real-servers.ts';
import { AppError, Code } from '../app-error.ts';
import { createLogger, type Logger } from '../logger.ts';
import { handleProcessWarnings } from '../node-warnings.ts';
import { eventLogContract } from './event-log.contract.ts';
import type { BatchHandler, ConsumedRecord, EventLog, LogConsumer, LogRecord } from './event-log.ts';
import { createKafkaEventLog } from './kafka-event-log.ts';
import { murmur2 } from './murmur2.ts';
import { createJavaCompatiblePartitioner, createPlatformaticEventLog } from './platformatic-event-log.ts';

await requireRealServers();
handleProcessWarnings(); // drops kafkajs's known-harmless TimeoutNegativeWarning

const brokers = realServers.kafkaBrokers.split(',');
const logger = createLogger('warn');

const openPlatformatic = (brokerList = brokers, produceTimeoutMs = 10_000, withLogger = logger): EventLog =>
  createPlatformaticEventLog({
    brokers: brokerList,
    clientId: 'tally-test',
    produceTimeoutMs,
    logger: withLogger,
  });
const openKafkajs = (): EventLog =>
  createKafkaEventLog({ brokers, clientId: 'tally-test', produceTimeoutMs: 10_000, logger });

eventLogContract('kafka (@platformatic/kafka)', async () => {
  const log = openPlatformatic();
  return { log, cleanup: () => log.close() };
});

describe('key partitioning', () => {
  const kafkajsPartition = Partitioners.DefaultPartitioner();
  const javaPartition = (key: Buffer, partitions: number) =>
    kafkajsPartition({
      topic: 't',
      partitionMetadata: Array.from({ length: partitions }, (_, i) => ({
        partitionId: i,
        leader: 0,
        replicas: [0],
        isr: [0],
        offlineReplicas: [],
        partitionErrorCode: 0,
      })),
      message: { key, value: null },
    });
  const anyMessage = { topic: 't', value: Buffer.alloc(0) };
  const keys = [
    ...Array.from({ length: 2_000 }, (_, i) => Buffer.from(`user-${i}`)),
    ...Array.from({ length: 2_000 }, (_, i) =>
      Buffer.from(Array.from({ length: i % 67 }, (_, j) => (i * 31 + j * 7) & 0xff)),
    ),
    Buffer.from('ключ 🔑'),
    Buffer.alloc(0),
  ];

  test('murmur2 is Kafka’s: the same hash as @platformatic/kafka’s and the same partition as kafkajs’s', () => {
    const partitioner = createJavaCompatiblePartitioner();
    for (const key of keys) {
      assert.equal(murmur2(key), platformaticMurmur2(key), `hash of ${key.toString('hex')}`);
      for (const partitions of [1, 2, 3, 5, 6, 12, 100]) {
        assert.equal(
          partitioner(undefined, key) % partitions,
          javaPartition(key, partitions),
          `key ${key.toString('hex')}, ${partitions} partitions`,
        );
      }
    }
  });

  test('records without a key go round the partitions', () => {
    const partitioner = createJavaCompatiblePartitioner();
    const seen = new Set(Array.from({ length: 6 }, () => partitioner(undefined, undefined) % 3));
    assert.deepEqual([...seen].sort(), [0, 1, 2]);
  });

  // Why the adapter brings its own partitioner: the client's default keeps the sign bit
  // (`murmur2 >>> 0`), so with a partition count that is not a power of two about half the keys
  // land elsewhere than with the Java client or kafkajs. If this starts failing, the default
  // became compatible and the adapter's partitioner could go.
  test('@platformatic/kafka’s default partitioner is not the Java client’s (the adapter does not use it)', () => {
    const moved = keys.filter((key) => defaultPartitioner(anyMessage, key) % 3 !== javaPartition(key, 3));
    assert.ok(moved.length > keys.length / 4, `${moved.length} of ${keys.length} keys elsewhere`);
    const powerOfTwo = keys.filter(
      (key) => defaultPartitioner(anyMessage, key) % 4 !== javaPartition(key, 4),
    );
    assert.equal(powerOfTwo.length, 0);
  });
});

describe('kafkajs and @platformatic/kafka on one topic', () => {
  test('each reads what the other wrote, key by key in order, and a key lands on one partition whichever wrote it', {
    timeout: 120_000,
  }, async (t) => {
    const defer = cleanups(t);
    const writers = { kafkajs: openKafkajs(), platformatic: openPlatformatic() };
    defer(() => Promise.all(Object.values(writers).map((l) => l.close())));
    // Partition counts that are not powers of two: where a sign-bit mistake in murmur2 shows.
    for (const partitions of [3, 7]) {
      const topic = `t-${randomUUID()}`;
      await writers.platformatic.ensureTopics([{ name: topic, partitions }]);
      defer(() => writers.platformatic.deleteTopics([topic]));

      const keys = [...Array.from({ length: 60 }, (_, i) => `user-${i}`), 'ключ 🔑', ''];
      const sent: LogRecord[] = [];
      // Rounds alternate between the clients; within a round every key gets one record.
      for (let round = 0; round < 4; round++) {
        const writer = round % 2 === 0 ? 'kafkajs' : 'platformatic';
        const records = keys.map((key) => ({
          key,
          value: Buffer.from(`${key}|${round}`),
          headers: { round: String(round), writer },
        }));
        await writers[writer].producer().send(topic, records);
        sent.push(...records);
      }

      for (const [reader, log] of Object.entries(writers)) {
        const handled: { partition: number; record: ConsumedRecord }[] = [];
        const consumer = log.consumer({ groupId: `g-${randomUUID()}`, topics: [topic], maxWaitMs: 200 });
        defer(() => consumer.stop());
        await consumer.run(async (batch) => {
          for (const record of batch.records) handled.push({ partition: batch.partition, record });
        });
        await waitFor(
          () => handled.length >= sent.length,
          () => `${reader} read ${handled.length} of ${sent.length}`,
          45_000,
          50,
        );
        await consumer.stop();
        assert.equal(handled.length, sent.length, `${reader}: every record once`);

        for (const key of keys) {
          const ofKey = handled.filter((h) => h.record.key === key);
          assert.deepEqual(
            ofKey.map((h) => `${h.record.headers.round}:${h.record.headers.writer}`),
            ['0:kafkajs', '1:platformatic', '2:kafkajs', '3:platformatic'],
            `${reader}, ${partitions} partitions: key ${JSON.stringify(key)} in the order written`,
          );
          assert.deepEqual(
            ofKey.map((h) => Buffer.from(h.record.value).toString()),
            [0, 1, 2, 3].map((round) => `${key}|${round}`),
          );
          // Both clients put the key on one partition: the Java client's.
          const expected = (murmur2(Buffer.from(key)) & 0x7fffffff) % partitions;
          assert.deepEqual(
            [...new Set(ofKey.map((h) => h.partition))],
            [expected],
            `${reader}, ${partitions} partitions: partition of key ${JSON.stringify(key)}`,
          );
        }
      }
    }
  });
});

for (const [name, open] of [
  ['@platformatic/kafka', () => openPlatformatic()],
  ['kafkajs', openKafkajs],
] as const) {
  test(`${name}: a new member gets partitions only after the batch in hand is handled and committed`, {
    timeout: 120_000,
  }, async (t) => {
    const defer = cleanups(t);
    const log = open();
    defer(() => log.close());
    const topic = `t-${randomUUID()}`;
    await log.ensureTopics([{ name: topic, partitions: 2 }]);
    defer(() => log.deleteTopics([topic]));
    const groupId = `g-${randomUUID()}`;
    const first = keyed('first', 40);
    await log.producer().send(topic, first);

    const handled: { consumer: string; partition: number; record: ConsumedRecord }[] = [];
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let inHand: number | undefined;
    const handler =
      (consumer: string): BatchHandler =>
      async (batch) => {
        if (consumer === 'a' && inHand === undefined) {
          inHand = batch.partition;
          await released; // a slow sink: the batch stays in hand
        }
        for (const record of batch.records) handled.push({ consumer, partition: batch.partition, record });
      };
    const a = log.consumer({ groupId, topics: [topic], maxWaitMs: 200 });
    defer(async () => {
      release(); // a failed test must not leave the handler waiting
      await a.stop();
    });
    await a.run(handler('a'));
    await waitFor(
      () => inHand !== undefined,
      () => 'a batch in hand',
      45_000,
      50,
    );

    const b = log.consumer({ groupId, topics: [topic], maxWaitMs: 200 });
    defer(() => b.stop());
    const bRunning = b.run(handler('b'));
    // Long enough for b to join and fetch (a heartbeat of a's every 3 s notices b): the group
    // must wait for a, which still holds its batch.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    assert.deepEqual(
      handled.filter((h) => h.consumer === 'b'),
      [],
      'b handled nothing while a held its batch',
    );
    release();
    await bRunning;

    const second = keyed('second', 40);
    await log.producer().send(topic, second);
    const all = [...first, ...second];
    await waitFor(
      () => handled.length >= all.length,
      () => `handled ${handled.length} of ${all.length}`,
      45_000,
      50,
    );
    await Promise.all([a.stop(), b.stop()]);
    const ids = handled.map((h) => Buffer.from(h.record.value).toString());
    assert.equal(new Set(ids).size, ids.length, 'no record handled twice');
    assert.deepEqual(new Set(ids), new Set(all.map((r) => Buffer.from(r.value).toString())));
    assert.deepEqual(
      sorted(await log.committedOffsets(groupId, topic)),
      sorted(await log.endOffsets(topic)).filter(([, end]) => end > 0n),
    );
  });
}

const REPOSITORY = join(import.meta.dirname, '..', '..', '..');

/** A group member of its own process: joins the group given in argv[1], says so, then runs. */
const MEMBER = `
import { createPlatformaticEventLog } from './services/infra/log/platformatic-event-log.ts';
import { createLogger } from './services/infra/logger.ts';
const { brokers, options } = JSON.parse(process.argv[1]);
const log = createPlatformaticEventLog({ brokers, clientId: 'tally-test', produceTimeoutMs: 10_000, logger: createLogger('error') });
await log.consumer(options).run(async () => {});
console.log('joined');
`;

test('a stop while the group waits on a dead member does not wait for the coordinator', {
  timeout: 120_000,
}, async (t) => {
  const defer = cleanups(t);
  const log = openPlatformatic();
  defer(() => log.close());
  const topic = `t-${randomUUID()}`;
  await log.ensureTopics([{ name: topic, partitions: 2 }]);
  defer(() => log.deleteTopics([topic]));
  const groupId = `g-${randomUUID()}`;
  const options = { groupId, topics: [topic], maxWaitMs: 200 };
  const draining = log.consumer(options);
  defer(() => draining.stop());
  await draining.run(async () => {});

  // A member in another process joins, then dies without leaving the group.
  const dead = spawn(
    process.execPath,
    ['--input-type=module', '-e', MEMBER, JSON.stringify({ brokers, options })],
    {
      cwd: REPOSITORY,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  defer(async () => {
    dead.kill('SIGKILL');
  });
  let deadOutput = '';
  dead.stdout.on('data', (chunk: Buffer) => {
    deadOutput += chunk.toString();
  });
  await waitFor(
    () => deadOutput.includes('joined'),
    () => `the other member to join (it wrote: ${deadOutput})`,
    60_000,
    50,
  );
  dead.kill('SIGKILL');
  // A new member asks to join: the group now waits for the dead one until its session times out
  // (30 s), and the live member's rejoin waits with it.
  const joining = log.consumer(options);
  defer(() => joining.stop());
  const joined = joining.run(async () => {});
  joined.catch(() => {});
  await new Promise((resolve) => setTimeout(resolve, 6_000)); // a's heartbeat has seen the rebalance
  const started = Date.now();
  await draining.stop();
  assert.ok(Date.now() - started < 8_000, `stopped in ${Date.now() - started} ms`);
});

// What the client does on its own, pinned so that a change of version shows whether the
// adapter's workarounds are still needed.
describe('@platformatic/kafka 2.12.1 alone', () => {
  test('its compatibilityPartitioner puts every record without a key on partition 0', () => {
    const message = { topic: 't', value: Buffer.alloc(0) };
    const partitions = new Set(
      Array.from({ length: 12 }, () => compatibilityPartitioner(message, undefined) % 3),
    );
    assert.deepEqual([...partitions], [0]);
  });

  test('a rebalance takes partitions from a member that still holds records it has not committed', {
    timeout: 60_000,
  }, async (t) => {
    const defer = cleanups(t);
    const log = openPlatformatic();
    defer(() => log.close());
    const topic = `t-${randomUUID()}`;
    await log.ensureTopics([{ name: topic, partitions: 2 }]);
    defer(() => log.deleteTopics([topic]));
    await log.producer().send(topic, keyed('held', 20));
    const groupId = `g-${randomUUID()}`;
    const member = () => {
      const consumer = new Consumer({
        clientId: 'tally-test',
        bootstrapBrokers: brokers,
        groupId,
        autocommit: false,
        maxWaitTime: 200,
        heartbeatInterval: 500,
      });
      defer(() => consumer.close(true));
      return consumer;
    };
    const options = { topics: [topic], mode: 'earliest' as const, autocommit: false };
    const a = member();
    const aStream = await a.consume(options);
    await once(aStream, 'readable');
    const held = aStream.read() as { partition: number } | null; // in hand: not processed, not committed
    assert.ok(held);
    assert.deepEqual(a.assignments?.[0]?.partitions, [0, 1]);

    // The group rebalances as soon as b joins; a is never asked whether it is done with `held`.
    await member().consume(options);
    await waitFor(
      () => a.assignments?.[0]?.partitions.length === 1,
      () => `a to give a partition away (a has ${JSON.stringify(a.assignments)})`,
      10_000,
      50,
    );
  });
});

test('across a broker restart: sends answer UNAVAILABLE in bounded time, then succeed; the consumer carries on', {
  timeout: 300_000,
}, async (t) => {
  const defer = cleanups(t);
  const kafka = await createPrivateKafka();
  defer(() => kafka.cleanup());
  await kafka.start();
  const produceTimeoutMs = 2_000;
  const warnings: string[] = [];
  const log = openPlatformatic([kafka.brokers], produceTimeoutMs, recordingLogger(warnings));
  defer(() => log.close());
  const topic = `t-${randomUUID()}`;
  await log.ensureTopics([{ name: topic, partitions: 3 }]);
  const groupId = `g-${randomUUID()}`;

  const handled: ConsumedRecord[] = [];
  const consumer: LogConsumer = log.consumer({ groupId, topics: [topic], maxWaitMs: 200 });
  defer(() => consumer.stop());
  const nextOffsets = new Map<number, bigint>(); // per partition, past the last record handled
  await consumer.run(async (batch) => {
    handled.push(...batch.records);
    nextOffsets.set(batch.partition, batch.records.at(-1)!.offset + 1n);
  });
  const before = keyed('before', 30);
  await log.producer().send(topic, before);
  await waitFor(
    async () => sum(await log.committedOffsets(groupId, topic)) === BigInt(before.length),
    () => `the commits of ${before.length} records (handled ${handled.length})`,
    60_000,
  );

  await kafka.stop();
  const started = Date.now();
  await assert.rejects(log.producer().send(topic, keyed('during', 4)), (error: unknown) => {
    assert.ok(error instanceof AppError && error.code === Code.UNAVAILABLE, String(error));
    return true;
  });
  assert.ok(Date.now() - started < produceTimeoutMs + 2_000, `answered in ${Date.now() - started} ms`);
  // The broker stays away until the consumer has given up on its stream: it must open a new one.
  await waitFor(
    () => warnings.includes('Kafka fetch failed; the consumer reopens its stream'),
    () => `the consumer to notice (warnings: ${warnings.join('; ')})`,
    120_000,
  );

  await kafka.start();
  const after = keyed('after', 30);
  await waitFor(
    async () => {
      try {
        await log.producer().send(topic, after);
        return true;
      } catch (error) {
        if (error instanceof AppError && error.code === Code.UNAVAILABLE) return false;
        throw error;
      }
    },
    () => 'the producer to recover',
    120_000,
    250,
  );
  const afterIds = new Set(after.map((r) => Buffer.from(r.value).toString()));
  await waitFor(
    () => handled.filter((r) => afterIds.has(Buffer.from(r.value).toString())).length >= after.length,
    () => `the consumer to read what was sent after the restart (handled ${handled.length})`,
    120_000,
  );
  await consumer.stop();
  // Sends that timed out while the broker was away may land later: the log can hold more.
  assert.deepEqual(
    sorted(await log.committedOffsets(groupId, topic)),
    sorted(nextOffsets),
    'every handled batch committed',
  );
  const count = (prefix: string) => handled.filter((r) => r.key?.startsWith(prefix)).length;
  assert.equal(count('before-'), before.length, 'committed before the restart: not read again');
  assert.ok(count('after-') >= after.length);
  // Per key, the records sent after the restart in the order sent (a retried send may repeat one).
  for (const key of new Set(after.map((r) => r.key))) {
    const values = handled.filter((r) => r.key === key).map((r) => Buffer.from(r.value).toString());
    const firsts = values.filter((v, i) => values.indexOf(v) === i);
    assert.deepEqual(
      firsts,
      after.filter((r) => r.key === key).map((r) => Buffer.from(r.value).toString()),
    );
  }
});

/** A logger that keeps the message of each warning in `warnings`. */
function recordingLogger(warnings: string[]): Logger {
  const quiet = () => {};
  const recorder: Logger = {
    debug: quiet,
    info: quiet,
    warn: (msg) => warnings.push(msg),
    error: (msg) => warnings.push(msg),
    child: () => recorder,
  };
  return recorder;
}

/** Registers cleanups that run when the test ends, last registered first (a topic before its log). */
function cleanups(t: TestContext): (cleanup: () => Promise<unknown>) => void {
  const list: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    for (const cleanup of list.reverse()) await cleanup().catch(() => {});
  });
  return (cleanup) => {
    list.push(cleanup);
  };
}

/** `count` records over `count / 2` keys; each value names the record. */
function keyed(prefix: string, count: number): LogRecord[] {
  const run = randomUUID().slice(0, 8);
  return Array.from({ length: count }, (_, i) => ({
    key: `${prefix}-${Math.floor(i / 2)}`,
    value: Buffer.from(`${prefix}-${run}-${i}`),
  }));
}

function sorted(map: ReadonlyMap<number, bigint>): [number, bigint][] {
  return [...map].sort(([x], [y]) => x - y);
}

function sum(map: ReadonlyMap<number, bigint>): bigint {
  let total = 0n;
  for (const value of map.values()) total += value;
  return total;
}
