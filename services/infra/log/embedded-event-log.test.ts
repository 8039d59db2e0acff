/**
 * The embedded event log: the port's contract (event-log.contract.ts), then
 * what only a file log has to get right: crash recovery, torn tails, the data
 * directory lock, retention, and partitions chosen like Kafka's.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Partitioners } from 'kafkajs';
import { AppError, Code } from '../app-error.ts';
import { createLogger } from '../logger.ts';
import { createEmbeddedEventLog, type EmbeddedEventLogOptions } from './embedded-event-log.ts';
import { eventLogContract } from './event-log.contract.ts';
import type { ConsumedBatch, EventLog, LogRecord } from './event-log.ts';
import { partitionForKey } from './murmur2.ts';

const logger = createLogger('warn');

eventLogContract('embedded', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-embedded-log-'));
  const log = createEmbeddedEventLog({ dataDir, logger });
  return {
    log,
    cleanup: async () => {
      await log.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

/** A temporary data directory, removed when the test ends. */
async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-embedded-log-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** An embedded log on `dataDir`, closed when the test ends. */
function openLog(t: TestContext, dataDir: string, options: Partial<EmbeddedEventLogOptions> = {}): EventLog {
  const log = createEmbeddedEventLog({ dataDir, logger, ...options });
  t.after(() => log.close());
  return log;
}

/** Consumes `topic` as `groupId` until `done(records)` holds; returns every batch, in the order handled. */
async function consumeUntil(
  log: EventLog,
  groupId: string,
  topic: string,
  done: (batches: ConsumedBatch[]) => boolean,
  timeoutMs = 20_000,
): Promise<ConsumedBatch[]> {
  const batches: ConsumedBatch[] = [];
  let wake = () => {};
  const consumer = log.consumer({ groupId, topics: [topic], maxWaitMs: 100 });
  await consumer.run(async (batch) => {
    batches.push(batch);
    wake();
  });
  const deadline = Date.now() + timeoutMs;
  try {
    while (!done(batches)) {
      if (Date.now() > deadline) throw new Error(`timed out consuming ${topic} as ${groupId}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 200);
      });
    }
  } finally {
    await consumer.stop();
  }
  return batches;
}

const recordCount = (batches: readonly ConsumedBatch[]) => batches.reduce((n, b) => n + b.records.length, 0);

function records(prefix: string, count: number, bytes = 16): LogRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    key: `${prefix}-${i % 7}`,
    value: new Uint8Array(bytes).fill(i & 0xff),
    headers: { n: String(i) },
  }));
}

async function rejectsWith(promise: Promise<unknown>, code: number, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof AppError, `an AppError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

test('a key goes to the partition Kafka would choose (murmur2, like kafkajs DefaultPartitioner)', async (t) => {
  const kafkaPartitioner = Partitioners.DefaultPartitioner();
  const kafkaPartition = (key: string, partitions: number) =>
    kafkaPartitioner({
      topic: 'x',
      partitionMetadata: Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        replicas: [0],
        isr: [0],
        partitionErrorCode: 0,
      })),
      message: { key, value: 'x' },
    });
  for (let i = 0; i < 3_000; i++) {
    const key = i % 2 === 0 ? `user-${i}` : `ключ-🔑-${'x'.repeat(i % 11)}-${i}`;
    for (const partitions of [1, 3, 6, 7])
      assert.equal(partitionForKey(key, partitions), kafkaPartition(key, partitions));
  }

  // And through the adapter.
  const log = openLog(t, await tempDir(t));
  await log.ensureTopics([{ name: 'events', partitions: 6 }]);
  const sent = Array.from({ length: 60 }, (_, i) => ({ key: `user-${i}`, value: new Uint8Array([i]) }));
  await log.producer().send('events', sent);
  const batches = await consumeUntil(log, 'g', 'events', (b) => recordCount(b) >= sent.length);
  for (const batch of batches)
    for (const record of batch.records) assert.equal(batch.partition, kafkaPartition(record.key!, 6));
});

test('a missing topic, a bad name or an oversized record is refused, and nothing is written', async (t) => {
  const log = openLog(t, await tempDir(t), { maxRecordBytes: 1_000 });
  await rejectsWith(
    log.producer().send('nope', records('a', 1)),
    Code.UNAVAILABLE,
    /topic nope does not exist/,
  );
  await rejectsWith(log.endOffsets('nope'), Code.NOT_FOUND, /topic nope does not exist/);
  await rejectsWith(log.committedOffsets('g', 'nope'), Code.NOT_FOUND, /topic nope/);
  await rejectsWith(
    log.consumer({ groupId: 'g', topics: ['nope'], maxWaitMs: 100 }).run(async () => {}),
    Code.NOT_FOUND,
    /topic nope does not exist/,
  );
  await rejectsWith(
    log.ensureTopics([{ name: '../etc', partitions: 1 }]),
    Code.INVALID_ARGUMENT,
    /topic name/,
  );
  await rejectsWith(log.ensureTopics([{ name: 'ok', partitions: 0 }]), Code.INVALID_ARGUMENT, /partitions/);

  await log.ensureTopics([{ name: 'events', partitions: 1 }]);
  await rejectsWith(
    log.producer().send('events', [...records('a', 2), { key: 'big', value: new Uint8Array(2_000) }]),
    Code.INVALID_ARGUMENT,
    /records\[2\]: .* over the 1000-byte record limit/,
  );
  assert.deepEqual(await log.endOffsets('events'), new Map([[0, 0n]]));
});

test('one process per data directory: a second open fails naming the directory and the holder', async (t) => {
  const dataDir = await tempDir(t);
  const first = openLog(t, dataDir);
  await first.ensureTopics([{ name: 'events', partitions: 1 }]);
  const second = createEmbeddedEventLog({ dataDir, logger });
  await rejectsWith(
    second.endOffsets('events'),
    Code.FAILED_PRECONDITION,
    new RegExp(`${escapeRegExp(dataDir)} is in use by process ${process.pid} \\(this process\\)`),
  );
  await second.close();
  await first.close();
  // Released on close; a lock left by a process that is gone is taken over.
  await writeFile(join(dataDir, 'LOCK'), JSON.stringify({ pid: await deadPid(), hostname: hostname() }));
  const third = openLog(t, dataDir);
  assert.deepEqual(await third.endOffsets('events'), new Map([[0, 0n]]));
});

test('send() resolves only once its records are in the partition files', async (t) => {
  const dataDir = await tempDir(t);
  const log = openLog(t, dataDir);
  await log.ensureTopics([{ name: 'events', partitions: 2 }]);
  const fileOf = (partition: number) =>
    readFile(join(dataDir, 'topics', 'events', String(partition), `${'0'.repeat(20)}.log`));
  for (let i = 0; i < 20; i++) {
    const marker = new TextEncoder().encode(`marker-${i}-${randomUUID()}`);
    const key = `key-${i}`;
    await log.producer().send('events', [{ key, value: marker }]);
    const file = await fileOf(partitionForKey(key, 2));
    assert.ok(file.includes(Buffer.from(marker)), `record ${i} is in the file when send() resolves`);
  }
});

test('a torn tail is truncated on open; damage before the last segment is refused', async (t) => {
  const dataDir = await tempDir(t);
  const partitionDir = join(dataDir, 'topics', 'events', '0');
  let log = createEmbeddedEventLog({ dataDir, logger, segmentBytes: 1_000 });
  await log.ensureTopics([{ name: 'events', partitions: 1 }]);
  for (const batch of chunks(records('a', 40, 100), 4)) await log.producer().send('events', batch);
  await log.close();
  const segments = (await readdir(partitionDir)).filter((n) => n.endsWith('.log')).sort();
  assert.ok(segments.length >= 3, `several segments (${segments.length})`);
  const last = join(partitionDir, segments.at(-1)!);
  const goodSize = (await stat(last)).size;

  // A crash mid-write: a frame whose length promises more than the file holds, after a frame with a bad CRC.
  const frame = Buffer.alloc(60);
  frame.writeUInt32BE(52, 0);
  frame.writeUInt32BE(0xdeadbeef, 4);
  const torn = Buffer.alloc(12);
  torn.writeUInt32BE(500, 0);
  await appendFile(last, Buffer.concat([frame, torn]));
  log = openLog(t, dataDir, { segmentBytes: 1_000 });
  assert.deepEqual(await log.endOffsets('events'), new Map([[0, 40n]]));
  assert.equal((await stat(last)).size, goodSize, 'the tail is cut back to the last whole record');
  await log.producer().send('events', records('b', 2));
  const batches = await consumeUntil(log, 'g', 'events', (b) => recordCount(b) >= 42);
  const offsets = batches.flatMap((b) => b.records.map((r) => r.offset));
  assert.deepEqual(
    offsets,
    Array.from({ length: 42 }, (_, i) => BigInt(i)),
  );
  await log.close();

  // The same damage inside an older segment is not a torn tail: refuse rather than lose records silently.
  const older = join(partitionDir, segments[0]!);
  const bytes = await readFile(older);
  bytes[20] = (bytes[20] ?? 0) ^ 0xff;
  await writeFile(older, bytes);
  await rm(older.replace(/\.log$/, '.index'), { force: true });
  const damaged = createEmbeddedEventLog({ dataDir, logger, segmentBytes: 1_000 });
  await rejectsWith(damaged.endOffsets('events'), Code.DATA_LOSS, /is damaged at byte 0 \(CRC mismatch\)/);
  await damaged.close();
});

test('retention deletes old segments; a group starts at the oldest record left', async (t) => {
  const dataDir = await tempDir(t);
  const options = { segmentBytes: 2_000, retentionBytes: 6_000 };
  let log = openLog(t, dataDir, options);
  await log.ensureTopics([{ name: 'events', partitions: 1 }]);
  for (const batch of chunks(records('a', 200, 100), 5)) await log.producer().send('events', batch);
  const partitionDir = join(dataDir, 'topics', 'events', '0');
  const logFiles = async () => (await readdir(partitionDir)).filter((n) => n.endsWith('.log')).sort();
  const remaining = await logFiles();
  assert.ok(remaining.length <= 5, `old segments deleted (${remaining.length} left)`);
  const logStart = BigInt(remaining[0]!.slice(0, 20));
  assert.ok(logStart > 0n);
  assert.deepEqual(await log.endOffsets('events'), new Map([[0, 200n]]));

  // Reopened, the closed segments' saved indexes are used: every retained record still reads back.
  await log.close();
  log = openLog(t, dataDir, options);
  const batches = await consumeUntil(log, 'g', 'events', (b) => b.at(-1)?.records.at(-1)?.offset === 199n);
  const offsets = batches.flatMap((b) => b.records.map((r) => r.offset));
  assert.deepEqual(
    offsets,
    Array.from({ length: 200 - Number(logStart) }, (_, i) => logStart + BigInt(i)),
  );
  await log.close();

  // By age: every closed segment goes, the active one stays.
  log = openLog(t, dataDir, { ...options, retentionMs: 1, retentionCheckIntervalMs: 20 });
  await log.endOffsets('events');
  const deadline = Date.now() + 10_000;
  while ((await logFiles()).length > 1) {
    assert.ok(Date.now() < deadline, 'segments older than retentionMs are deleted');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.deepEqual(await log.endOffsets('events'), new Map([[0, 200n]]));
});

test('a partition changes hands only after the batch in hand is committed', async (t) => {
  const log = openLog(t, await tempDir(t));
  const topic = `t-${randomUUID()}`;
  await log.ensureTopics([{ name: topic, partitions: 2 }]);
  const batchOf = (from: number) =>
    Array.from({ length: 40 }, (_, i) => ({ key: `k-${from + i}`, value: new Uint8Array([i]) }));
  await log.producer().send(topic, batchOf(0));

  const handled: { consumer: string; partition: number; offsets: bigint[] }[] = [];
  let holding = true;
  let sawInactive = false;
  // a holds a batch of each partition (they run concurrently) when b joins.
  const inHand = new Set<number>();
  let bothInHand: () => void = () => {};
  const aBusy = new Promise<void>((resolve) => {
    bothInHand = resolve;
  });
  const a = log.consumer({ groupId: 'g', topics: [topic], maxWaitMs: 100 });
  t.after(() => a.stop());
  await a.run(async (batch, context) => {
    inHand.add(batch.partition);
    if (inHand.size === 2) bothInHand();
    // Hold the first batches until b has joined: partition 1 moves to b while a still has its batch.
    const until = Date.now() + 5_000;
    while (holding && context.isActive() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    if (!context.isActive()) sawInactive = true;
    handled.push({ consumer: 'a', partition: batch.partition, offsets: batch.records.map((r) => r.offset) });
  });
  await aBusy;
  const b = log.consumer({ groupId: 'g', topics: [topic], maxWaitMs: 100 });
  t.after(() => b.stop());
  await b.run(async (batch) => {
    handled.push({ consumer: 'b', partition: batch.partition, offsets: batch.records.map((r) => r.offset) });
  });
  holding = false;
  await log.producer().send(topic, batchOf(40));

  const ends = await log.endOffsets(topic);
  const total = Number((ends.get(0) ?? 0n) + (ends.get(1) ?? 0n));
  const deadline = Date.now() + 20_000;
  while (handled.reduce((n, h) => n + h.offsets.length, 0) < total) {
    assert.ok(Date.now() < deadline, 'every record handled');
    await new Promise((r) => setTimeout(r, 20));
  }
  await Promise.all([a.stop(), b.stop()]);

  assert.ok(sawInactive, "a's batch saw isActive() turn false when its partition moved");
  assert.ok(
    handled.some((h) => h.consumer === 'b'),
    'b got the partition',
  );
  for (const partition of [0, 1]) {
    const offsets = handled.filter((h) => h.partition === partition).flatMap((h) => h.offsets);
    assert.deepEqual(
      offsets,
      Array.from({ length: Number(ends.get(partition)) }, (_, i) => BigInt(i)),
      `partition ${partition}: each record once, in order, across the handover`,
    );
  }
  assert.deepEqual(await log.committedOffsets('g', topic), ends);
});

test('kill -9 mid-stream: every acknowledged record survives, commits survive, the rest is redelivered', async (t) => {
  const dataDir = await tempDir(t);
  const child = spawnWriter(dataDir);
  t.after(() => child.process.kill('SIGKILL'));

  // Let it write and commit for a while, then check the lock while it is alive, then kill it.
  await child.waitFor(() => child.acked.size >= 3_000 && child.committedTotal() > 0n);
  const meanwhile = createEmbeddedEventLog({ dataDir, logger });
  await rejectsWith(
    meanwhile.endOffsets('events'),
    Code.FAILED_PRECONDITION,
    new RegExp(`in use by process ${child.process.pid}:`),
  );
  await meanwhile.close();
  const exited = new Promise((resolve) => child.process.once('exit', resolve));
  child.process.kill('SIGKILL');
  await exited;
  const acked = new Set(child.acked);
  const lastCommitted = child.lastCommitted;

  const log = openLog(t, dataDir); // takes over the dead process's lock; truncates any torn tail
  const ends = await log.endOffsets('events');
  const total = [...ends.values()].reduce((a, b) => a + b, 0n);
  assert.ok(total >= BigInt(acked.size), `${total} records on disk, ${acked.size} acknowledged`);

  // Every record reads back once, each on its key's partition; every acknowledged one is there.
  const audit = await consumeUntil(log, 'audit', 'events', (b) => BigInt(recordCount(b)) >= total);
  const seen = new Set<number>();
  for (const batch of audit)
    for (const record of batch.records) {
      const n = Number(record.headers.n);
      assert.ok(!seen.has(n), `record ${n} appears twice`);
      seen.add(n);
      assert.equal(batch.partition, partitionForKey(record.key!, 3));
      assert.deepEqual(record.value, new TextEncoder().encode(`value-${n}`));
    }
  const lost = [...acked].filter((n) => !seen.has(n));
  assert.deepEqual(lost, [], 'acknowledged records lost');

  // The group's commits survived; it resumes there and gets everything after, once.
  const committed = await log.committedOffsets('g', 'events');
  for (const [partition, offset] of lastCommitted)
    assert.ok((committed.get(partition) ?? 0n) >= offset, `partition ${partition} commit survived`);
  const resumed = await consumeUntil(log, 'g', 'events', (batches) =>
    [...ends].every(
      ([p, end]) =>
        (committed.get(p) ?? 0n) === end ||
        batches.some((b) => b.partition === p && b.records.at(-1)!.offset === end - 1n),
    ),
  );
  for (const [partition, end] of ends) {
    const offsets = resumed
      .filter((b) => b.partition === partition)
      .flatMap((b) => b.records.map((r) => r.offset));
    const from = committed.get(partition) ?? 0n;
    assert.deepEqual(
      offsets,
      Array.from({ length: Number(end - from) }, (_, i) => from + BigInt(i)),
      `partition ${partition}: redelivered from the commit`,
    );
  }
});

/** A child process appending to `events` (4 concurrent senders) and consuming it as group `g`, until killed. */
function spawnWriter(dataDir: string) {
  const moduleUrl = (path: string) => pathToFileURL(join(import.meta.dirname, path)).href;
  const script = `
    import { createEmbeddedEventLog } from ${JSON.stringify(moduleUrl('embedded-event-log.ts'))};
    import { createLogger } from ${JSON.stringify(moduleUrl('../logger.ts'))};
    const log = createEmbeddedEventLog({ dataDir: process.env.DATA_DIR, logger: createLogger('error') });
    await log.ensureTopics([{ name: 'events', partitions: 3 }]);
    const out = (line) => process.stdout.write(JSON.stringify(line) + '\\n');
    const consumer = log.consumer({ groupId: 'g', topics: ['events'], maxWaitMs: 100 });
    await consumer.run(async () => { await new Promise((r) => setTimeout(r, 2)); });
    setInterval(async () => {
      const committed = await log.committedOffsets('g', 'events');
      out({ committed: [...committed].map(([p, o]) => [p, o.toString()]) });
    }, 5);
    let next = 0;
    const sender = async () => {
      for (;;) {
        const from = next;
        next += 25;
        const records = Array.from({ length: 25 }, (_, i) => ({
          key: 'user-' + ((from + i) % 101),
          value: new TextEncoder().encode('value-' + (from + i)),
          headers: { n: String(from + i) },
        }));
        await log.producer().send('events', records);
        out({ acked: [from, from + 25] });
      }
    };
    for (let i = 0; i < 4; i++) sender();
  `;
  const process_ = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acked = new Set<number>();
  let lastCommitted = new Map<number, bigint>();
  let stderr = '';
  let buffered = '';
  let wake = () => {};
  process_.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  process_.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const message = JSON.parse(line) as { acked?: [number, number]; committed?: [number, string][] };
      if (message.acked) for (let n = message.acked[0]; n < message.acked[1]; n++) acked.add(n);
      if (message.committed) lastCommitted = new Map(message.committed.map(([p, o]) => [p, BigInt(o)]));
    }
    wake();
  });
  return {
    process: process_ as ChildProcess,
    acked,
    get lastCommitted() {
      return lastCommitted;
    },
    committedTotal: () => [...lastCommitted.values()].reduce((a, b) => a + b, 0n),
    async waitFor(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!condition()) {
        if (process_.exitCode !== null) throw new Error(`the writer exited: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`timed out; writer stderr: ${stderr}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200);
        });
      }
    },
  };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) =>
    items.slice(i * size, i * size + size),
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}
