/**
 * Poison records: a hand-made record that cannot be decoded, and one that breaks
 * the event rules, land in the dead-letter topic with headers saying why, from
 * where and when, while the events around them are counted; `tally dlq-replay`
 * sends them back once per source position.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { ConsumedRecord } from './infra/log/event-log.ts';
import { encodeEvent, newEvent } from './pipeline/event-codec.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, ingestClient, queryClient } from './testing/tally-client.ts';
import { startTally } from './testing/tally-process.ts';

await requireRealServers();

test('poison records go to the dead-letter topic with their headers; the partition keeps flowing', async (t) => {
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], ns.env);
  t.after(async () => {
    await tally.kill('SIGTERM');
    await backends.cleanup();
  });
  const target = `https://poison.example/${ns.id}`;
  const ingest = ingestClient(tally.grpcPort!);
  t.after(() => ingest.close());
  const send = (from: number) =>
    ingest.publishBatch({
      events: Array.from({ length: 10 }, (_, i) => ({
        id: `${ns.id}-${from + i}`,
        type: 'CLICK',
        target,
        userId: 'u1',
      })),
    });

  await send(0);
  // Same key as the good events: same partition, between them.
  const undecodable = Uint8Array.from([0x0a, 0xff, 0x01]);
  const invalid = encodeEvent(
    newEvent({ id: 'bad-type', type: '', target, userId: 'u1', receivedAt: timestampFromMs(Date.now()) }),
  );
  await backends.log.producer().send(ns.eventsTopic, [
    { key: 'u1', value: undecodable, headers: { origin: 'hand-made' } },
    { key: 'u1', value: invalid, headers: { origin: 'hand-made' } },
  ]);
  await send(10);

  await waitFor(
    () => backends.caughtUp(),
    () => 'consumers behind',
  );
  const query = queryClient(tally.grpcPort!);
  t.after(() => query.close());
  assert.deepEqual(
    (await query.getCounters({ target })).counts.map((c) => [c.type, c.count]),
    [['CLICK', 20n]],
  );
  const [rows] = await backends.rows<{ n: number }>('SELECT count(*)::int AS n FROM event');
  assert.equal(rows?.n, 20);

  // The persister, the one group that reads the events topic, dead-letters each poison record once;
  // it forwards only what it stored, so the groups downstream never see them.
  const dlqSize = async () =>
    [...(await backends.log.endOffsets(ns.dlqTopic)).values()].reduce((a, b) => a + b, 0n);
  assert.equal(await dlqSize(), 2n, 'one copy of each poison record');
  const dead = await readAll(backends, ns.dlqTopic, 2);
  const groups = new Set([`${ns.groupPrefix}group_persistence`]);
  for (const record of dead) {
    const h = record.headers;
    assert.equal(h.origin, 'hand-made', 'the original headers are kept');
    assert.equal(h['tally-source-topic'], ns.eventsTopic);
    assert.match(h['tally-source-partition'] ?? '', /^\d+$/);
    assert.match(h['tally-source-offset'] ?? '', /^\d+$/);
    assert.ok(groups.has(h['tally-group'] ?? ''), h['tally-group']);
    assert.ok(Math.abs(Date.parse(h['tally-failed-at'] ?? '') - Date.now()) < 120_000, h['tally-failed-at']);
    assert.equal(record.key, 'u1');
  }
  const reasons = dead.map((r) => r.headers['tally-error'] ?? '').sort();
  assert.equal(reasons.filter((r) => r.startsWith('undecodable')).length, 1, reasons.join('\n'));
  assert.equal(reasons.filter((r) => r === 'invalid: type: is required').length, 1, reasons.join('\n'));
  assert.deepEqual(
    new Set(dead.map((r) => Buffer.from(r.value).toString('hex'))),
    new Set([Buffer.from(undecodable).toString('hex'), Buffer.from(invalid).toString('hex')]),
  );

  // Replay: once per source position, back onto the events topic.
  const before = await backends.totalEndOffset();
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
    ...ns.env,
    TALLY_LOG_LEVEL: 'warn',
  };
  const { stdout } = await promisify(execFile)(
    join(import.meta.dirname, '..', 'bin', 'tally'),
    ['dlq-replay'],
    { env },
  );
  const summary = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  assert.deepEqual(
    { read: summary.read, replayed: summary.replayed, skipped: summary.skipped },
    { read: 2, replayed: 2, skipped: 0 },
  );
  assert.equal(await backends.totalEndOffset(), before + 2n, 'the two records are back on the events topic');
  // Still poison: they are dead-lettered again, and nothing is counted twice.
  await waitFor(
    () => backends.caughtUp(),
    () => 'consumers behind after the replay',
  );
  assert.equal(await dlqSize(), 4n);
  assert.deepEqual(
    (await query.getCounters({ target })).counts.map((c) => [c.type, c.count]),
    [['CLICK', 20n]],
  );
});

/** Reads a topic from the beginning with a fresh group until `count` records arrived. */
async function readAll(backends: Backends, topic: string, count: number): Promise<ConsumedRecord[]> {
  const records: ConsumedRecord[] = [];
  const consumer = backends.log.consumer({
    groupId: `${backends.ns.groupPrefix}reader-${records.length}-${Date.now()}`,
    topics: [topic],
    fromBeginning: true,
    maxWaitMs: 100,
  });
  await consumer.run(async (batch) => {
    records.push(...batch.records);
  });
  try {
    await waitFor(
      () => records.length >= count,
      () => `${records.length} of ${count} records on ${topic}`,
    );
  } finally {
    await consumer.stop();
  }
  return records;
}
