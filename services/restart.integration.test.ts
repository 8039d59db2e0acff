/**
 * kill -9 and an immediate restart of `tally all` on the real servers: the edge (REST and gRPC)
 * answers at once, while the consumer roles are still waiting for their groups to let the dead
 * member go (its session timeout); readiness says which roles are still joining, and once they have
 * joined every event — those sent before the crash and those sent while joining — is counted once.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, http } from './testing/tally-client.ts';
import { freePort, startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

test('after kill -9, a restarted tally all serves REST before its consumers have rejoined their groups', async (t) => {
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  const httpPort = await freePort();
  // A session timeout far longer than the edge may take: a restart that waited for the groups
  // (the old start order) would answer REST only after it.
  const env = {
    ...ns.env,
    TALLY_HTTP_PORT: String(httpPort),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_KAFKA_SESSION_TIMEOUT_MS: '45000',
  };
  const running = new Set<TallyProcess>();
  after(async () => {
    for (const p of running) await p.kill('SIGKILL');
    await backends.cleanup();
  });
  const target = `https://restart.example/${ns.id}`;
  const send = (i: number) =>
    http(httpPort, 'POST', '/v1/events', { id: `${ns.id}-${i}`, type: 'CLICK', target, userId: `u${i % 7}` });
  const countOf = async () => {
    const res = await http(httpPort, 'GET', `/v1/counters?target=${encodeURIComponent(target)}`);
    const body = res.body as { counts: { type: string; count: string }[] };
    return Number(body.counts.find((c) => c.type === 'CLICK')?.count ?? 0);
  };
  const readiness = async () => {
    const res = await http(httpPort, 'GET', '/readyz');
    return { status: res.status, report: res.body as { ready: boolean; joining: string[] } };
  };

  const first = await startTally(['all'], env);
  running.add(first);
  // The first run's consumers are members of their groups once they have counted an event.
  for (let i = 0; i < 20; i++) assert.equal((await send(i)).status, 200);
  await waitFor(
    async () => (await countOf()) === 20,
    async () => `the first run counts its 20 events (counted ${await countOf()})`,
  );

  await first.kill('SIGKILL');
  running.delete(first);
  const startedAt = performance.now();
  const second = await startTally(['all'], env, 60_000, { untilServing: true });
  running.add(second);

  // REST answers (an event acknowledged by Kafka) ...
  const res = await send(20);
  assert.equal(res.status, 200, res.text);
  const answeredMs = performance.now() - startedAt;
  // ... while the consumer roles are still joining: the edge did not wait for them.
  const { status, report } = await readiness();
  assert.equal(status, 200, 'the edge is ready while consumers join');
  assert.ok(
    report.joining.length > 0,
    `the consumers were still joining when REST answered (${Math.round(answeredMs)} ms after the restart): ${JSON.stringify(report)}`,
  );
  t.diagnostic(
    `REST answered ${Math.round(answeredMs)} ms after the restart; joining: ${report.joining.join(', ')}`,
  );

  for (let i = 21; i < 40; i++) assert.equal((await send(i)).status, 200);
  await waitFor(
    async () => (await readiness()).report.joining.length === 0,
    async () => `the consumers rejoin their groups: ${JSON.stringify((await readiness()).report)}`,
    120_000,
  );
  await waitFor(
    async () => (await countOf()) === 40,
    async () => `every event counted once after the rejoin (counted ${await countOf()})`,
    60_000,
  );
  assert.equal(await countOf(), 40);
});
