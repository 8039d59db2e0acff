/**
 * One meaning of "duplicate", end to end: an event id reused for another target (a conflict) and
 * an event sent twice (a retry) are counted, stored and summarised once — the first event with the
 * id, everywhere — on Redis standalone, on a Redis Cluster and on the embedded mode; and a replay
 * of everything from the earliest offset (as after the expiry of a group's offsets) counts nothing
 * twice, with no dedup window to outlive.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { realServers, requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, CONSUMER_GROUPS, http, queryClient, topicOfGroup } from './testing/tally-client.ts';
import { freePort, startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

const DAY = new Date().toISOString().slice(0, 10);

/** The events of the scenario: 40 plain ones, a conflict and a retry; what each target should hold. */
function scenario(prefix: string) {
  const a = `https://dup.example/${prefix}/a`;
  const b = `https://dup.example/${prefix}/b`;
  const plain = Array.from({ length: 40 }, (_, i) => ({
    id: `${prefix}-p${i}`,
    type: 'CLICK',
    target: a,
    userId: `u${i % 7}`,
    value: 1,
  }));
  const reused = { id: `${prefix}-reused`, type: 'CLICK', target: a, userId: 'u1', value: 10 };
  const conflict = { ...reused, target: b }; // the same id, another target
  const retried = { id: `${prefix}-retried`, type: 'CLICK', target: a, userId: 'u2', value: 100 };
  return {
    a,
    b,
    /** Each element is one request, in this order. */
    requests: [[reused], plain.slice(0, 20), [conflict], [retried], plain.slice(20), [retried]],
    expected: { a: { count: 42, sum: 150 }, b: { count: 0, sum: 0 } },
  };
}

async function send(tally: TallyProcess, requests: Record<string, unknown>[][]): Promise<void> {
  for (const events of requests) {
    const r = await http(tally.httpPort!, 'POST', '/v1/events:batch', { events });
    assert.equal(r.status, 200, r.text);
  }
}

async function scrapeCounter(tally: TallyProcess, kind: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${tally.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`tally_duplicate_events_total{kind="${kind}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** Counters and the day's report of `target`: count and sum of CLICK in each. */
async function sinksOf(tally: TallyProcess, target: string) {
  const query = queryClient(tally.grpcPort!);
  try {
    const counters = await query.getCounters({ target });
    const report = await query.getReport({ target, date: DAY });
    const click = counters.counts.find((c) => c.type === 'CLICK');
    let reportCount = 0;
    for (const hour of report.hours)
      for (const c of hour.counts) if (c.type === 'CLICK') reportCount += Number(c.count);
    return {
      counter: { count: Number(click?.count ?? 0n), sum: click?.sum ?? 0 },
      report: reportCount,
    };
  } finally {
    query.close();
  }
}

async function assertExactlyOnce(
  tally: TallyProcess,
  s: ReturnType<typeof scenario>,
  caughtUp: () => Promise<boolean>,
) {
  await waitFor(
    async () => (await scrapeCounter(tally, 'conflict')) >= 1 && (await scrapeCounter(tally, 'retry')) >= 1,
    async () =>
      `duplicates seen: conflict ${await scrapeCounter(tally, 'conflict')}, retry ${await scrapeCounter(tally, 'retry')}`,
    60_000,
  );
  await waitFor(caughtUp, () => 'consumer groups behind', 60_000);
  await waitFor(
    async () => (await sinksOf(tally, s.a)).counter.count === s.expected.a.count,
    async () => JSON.stringify(await sinksOf(tally, s.a)),
    60_000,
  );
  assert.deepEqual(await sinksOf(tally, s.a), { counter: s.expected.a, report: s.expected.a.count });
  assert.deepEqual(await sinksOf(tally, s.b), { counter: s.expected.b, report: 0 });
  assert.equal(await scrapeCounter(tally, 'conflict'), 1);
  assert.equal(await scrapeCounter(tally, 'retry'), 1);
  const logged = tally.lines.filter((l) => l.includes('event ids reused for different events'));
  assert.equal(logged.length, 1, 'the conflict is logged');
  assert.match(logged[0]!, /"differs":\["target"\]/);
  assert.doesNotMatch(logged[0]!, /dup\.example/, 'the log names the field, not its value');
}

/** Resets every sink group to the earliest offset of its topic, as the expiry of its offsets does. */
async function resetGroupsToEarliest(backends: Backends): Promise<void> {
  const admin = new Kafka({
    brokers: realServers.kafkaBrokers.split(','),
    clientId: 'tally-test-reset',
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    for (const group of CONSUMER_GROUPS)
      await admin.resetOffsets({
        groupId: backends.ns.groupPrefix + group,
        topic: topicOfGroup(backends.ns, group),
        earliest: true,
      });
  } finally {
    await admin.disconnect();
  }
}

describe('one meaning of duplicate on the real servers', () => {
  for (const store of ['redis', 'redis cluster'] as const) {
    test(`${store}: a conflict and a retry are applied once by every sink; a replay from the earliest offset counts nothing twice`, async (t) => {
      const ns = testNamespace(3);
      const backends = new Backends(ns);
      const env =
        store === 'redis'
          ? ns.env
          : {
              ...ns.env,
              TALLY_REDIS_URL: '',
              TALLY_REDIS_CLUSTER_NODES: realServers.redisClusterNodes.join(','),
            };
      let tally = await startTally(['all'], env);
      t.after(async () => {
        await tally.kill('SIGKILL');
        await backends.cleanup();
      });
      const s = scenario(ns.id);
      await send(tally, s.requests);
      await assertExactlyOnce(tally, s, () => backends.caughtUp());
      const [stored] = await backends.rows<{ target: string; value: number }>(
        'SELECT target, value FROM event WHERE id = $1',
        [`${ns.id}-reused`],
      );
      assert.deepEqual(stored, { target: s.a, value: 10 }, 'the first event with the id is the one stored');

      // Every group back to the earliest offset: the persister forwards everything again (its own
      // rows), the accepted topic then holds each event twice, and the marks skip the second sight.
      assert.equal(await tally.kill('SIGTERM'), 0);
      await resetGroupsToEarliest(backends);
      const forwardedBefore = await backends.log.endOffsets(ns.acceptedTopic);
      tally = await startTally(['all'], env);
      await waitFor(
        async () => {
          const now = await backends.log.endOffsets(ns.acceptedTopic);
          let more = 0n;
          for (const [p, end] of now) more += end - (forwardedBefore.get(p) ?? 0n);
          let before = 0n;
          for (const end of forwardedBefore.values()) before += end;
          return more === before && (await backends.caughtUp());
        },
        () => 'the replay forwarded and consumed',
        120_000,
      );
      assert.deepEqual(await sinksOf(tally, s.a), { counter: s.expected.a, report: s.expected.a.count });
      assert.deepEqual(await sinksOf(tally, s.b), { counter: s.expected.b, report: 0 });
      // The replay meets the retry and the conflict again and judges them the same way.
      assert.equal(await scrapeCounter(tally, 'conflict'), 1);
      assert.equal(await scrapeCounter(tally, 'retry'), 1);
      const [rows] = await backends.rows<{ n: number }>('SELECT count(*)::int AS n FROM event');
      assert.equal(rows?.n, 42);
    });
  }
});

test('embedded mode: a conflict and a retry are applied once by every sink', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-dup-'));
  const env = {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '3',
  };
  const tally = await startTally(['all'], env);
  t.after(async () => {
    await tally.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  const s = scenario('embedded');
  await send(tally, s.requests);
  await assertExactlyOnce(tally, s, async () => true);
});
