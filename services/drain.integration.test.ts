/**
 * SIGTERM during a steady stream: each process drains and exits 0, and after
 * restarts every acknowledged event is counted exactly once in every sink.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { HOUR_MS, hourStart } from './domain/report.ts';
import { type AppError, Code } from './infra/app-error.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, ingestClient, mapLimit, queryClient } from './testing/tally-client.ts';
import { freePort, startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

test('SIGTERM mid-stream drains ingest and consumers; after restarts nothing is missing or doubled', async (t) => {
  const ns = testNamespace(4);
  const backends = new Backends(ns);
  const grpcPort = await freePort();
  const edgeEnv = { ...ns.env, TALLY_GRPC_PORT: String(grpcPort) };
  const running = new Set<TallyProcess>();
  const start = async (roles: string[], env: Record<string, string>) => {
    const p = await startTally(roles, env);
    running.add(p);
    return p;
  };
  after(async () => {
    for (const p of running) await p.kill('SIGKILL');
    await backends.cleanup();
  });

  let edge = await start(['ingest'], edgeEnv);
  // Every consumer role in one process, as the drain stops them together.
  const SINKS = ['persister', 'counter', 'aggregator', 'alerter', 'router', 'projector'];
  let sinks = await start(SINKS, ns.env);

  const TOTAL = 6_000;
  const hour = hourStart(Date.now()) - HOUR_MS;
  const targets = ['https://drain.example/a', 'https://drain.example/b'];
  const ingest = ingestClient(grpcPort);
  t.after(() => ingest.close());
  let acknowledged = 0;
  let retries = 0;

  /** A well-behaved client: retries UNAVAILABLE with the same id until acknowledged. */
  const publish = async (i: number) => {
    const event = {
      id: `${ns.id}-${i}`,
      type: 'CLICK',
      target: targets[i % 2]!,
      userId: `u${i % 31}`,
      occurredAt: timestampFromMs(hour + (i % 3600) * 1000),
    };
    for (;;) {
      try {
        await ingest.publish({ event }, { timeoutMs: 5_000 });
        acknowledged++;
        return;
      } catch (error) {
        const code = (error as AppError).code;
        if (code !== Code.UNAVAILABLE && code !== Code.DEADLINE_EXCEEDED) throw error;
        retries++;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };

  const faults = (async () => {
    await waitFor(
      () => acknowledged > TOTAL / 4,
      () => `only ${acknowledged} acknowledged`,
    );
    assert.equal(await sinks.kill('SIGTERM'), 0, 'the consumers drain and exit 0');
    running.delete(sinks);
    assert.ok(
      sinks.lines.some((l) => l.includes('"consumer stopped"')),
      'the consumers reported stopping',
    );
    sinks = await start(SINKS, ns.env);

    await waitFor(
      () => acknowledged > TOTAL / 2,
      () => `only ${acknowledged} acknowledged`,
    );
    assert.equal(await edge.kill('SIGTERM'), 0, 'ingest drains and exits 0');
    running.delete(edge);
    edge = await start(['ingest'], edgeEnv);
  })();

  await mapLimit(
    Array.from({ length: TOTAL }, (_, i) => i),
    8,
    publish,
  );
  await faults;
  assert.equal(acknowledged, TOTAL);

  await waitFor(
    () => backends.caughtUp(),
    () => 'consumers behind',
    120_000,
  );
  // The edge process serves ingest only: read the counters through a query role.
  const reader = await start(['query'], { ...ns.env });
  const readerClient = queryClient(reader.grpcPort!);
  t.after(() => readerClient.close());
  for (const target of targets) {
    const counters = await readerClient.getCounters({ target });
    assert.deepEqual(
      counters.counts.map((c) => [c.type, c.count]),
      [['CLICK', BigInt(TOTAL / 2)]],
      `Redis counter of ${target}`,
    );
  }
  const [rows] = await backends.rows<{ n: number; distinct_ids: number }>(
    'SELECT count(*)::int AS n, count(DISTINCT id)::int AS distinct_ids FROM event',
  );
  assert.deepEqual(rows, { n: TOTAL, distinct_ids: TOTAL }, 'event rows');
  const summary = await backends.rows<{ target: string; count: number }>(
    'SELECT target, sum(count)::int AS count FROM event_summary GROUP BY target ORDER BY target',
  );
  assert.deepEqual(
    summary.map((r) => [r.target, r.count]),
    targets.map((target) => [target, TOTAL / 2]),
    'event_summary',
  );
  t.diagnostic(`${retries} client retries during the restarts`);
});

test('SIGTERM while the group waits on a dead member: the consumer does not wait for the coordinator, exits 0', async (t) => {
  const ns = testNamespace(2);
  const backends = new Backends(ns);
  const env = { ...ns.env, TALLY_DRAIN_TIMEOUT_MS: '4000' };
  const dead = await startTally(['persister'], env);
  const draining = await startTally(['persister'], env);
  let joining: Promise<TallyProcess> | undefined;
  t.after(async () => {
    await Promise.all([dead.kill('SIGKILL'), draining.kill('SIGKILL')]);
    await joining?.then((p) => p.kill('SIGKILL')).catch(() => {});
    await backends.cleanup();
  });
  // A member dies without leaving; a new one asks to join. The group now waits for the dead
  // member until its session times out (30 s), and every live member's rejoin waits with it.
  await dead.kill('SIGKILL');
  const killedAt = Date.now();
  joining = startTally(['persister'], env, 120_000);
  joining.catch(() => {});
  // The live member learns of the rebalance at its next heartbeat and logs that it re-joins: from
  // then on its rejoin waits on the dead member. SIGTERM comes in that wait, well before the dead
  // member's session (30 s) runs out.
  await waitFor(
    () => draining.lines.some((line) => line.includes('The group is rebalancing, re-joining')),
    () => `the live member did not start to re-join:\n${draining.lines.slice(-6).join('\n')}`,
    20_000,
    50,
  );
  assert.ok(Date.now() - killedAt < 25_000, 'the dead member is still in the group');
  const code = await draining.kill('SIGTERM');
  assert.equal(code, 0, `exit ${code}:\n${draining.lines.slice(-6).join('\n')}`);
  assert.ok(
    !draining.lines.some((line) => line.includes('drain timed out')),
    'the drain finished before its deadline',
  );
  assert.ok(
    draining.lines.some((line) => line.includes('left without waiting for the group coordinator')),
    'the stop found the rejoin waiting on the coordinator, and went on without it',
  );
});

test('TALLY_KAFKA_SESSION_TIMEOUT_MS: a SIGKILLed member’s partitions move to the others within that timeout', async (t) => {
  const ns = testNamespace(4);
  const backends = new Backends(ns);
  const env = { ...ns.env, TALLY_KAFKA_SESSION_TIMEOUT_MS: '6000' };
  const edge = await startTally(['ingest'], { ...env, TALLY_GRPC_PORT: String(await freePort()) });
  const [survivor, victim] = await Promise.all([
    startTally(['persister'], env),
    startTally(['persister'], env),
  ]);
  t.after(async () => {
    await Promise.all([edge.kill('SIGKILL'), survivor.kill('SIGKILL'), victim.kill('SIGKILL')]);
    await backends.cleanup();
  });
  await victim.kill('SIGKILL');
  const killedAt = Date.now();
  const ingest = ingestClient(edge.grpcPort!);
  t.after(() => ingest.close());
  // Events for every partition, some of them the dead member's until the group notices.
  await ingest.publishBatch({
    events: Array.from({ length: 200 }, (_, i) => ({
      id: `${ns.id}-s${i}`,
      type: 'VIEW',
      target: 't',
      userId: `u${i}`,
    })),
  });
  await waitFor(
    () => backends.caughtUp(['group_persistence']),
    () => 'the persister group did not catch up',
    25_000,
  );
  const tookMs = Date.now() - killedAt;
  // kafkajs's default session (30 s) could not have handed the partitions over this soon.
  assert.ok(tookMs < 25_000, `caught up ${tookMs} ms after the kill`);
  const [rows] = await backends.rows<{ n: number }>('SELECT count(*)::int AS n FROM event');
  assert.equal(rows?.n, 200);
});
