/**
 * A Redis outage pauses the counter consumer without skipping anything: events
 * keep being ingested, and once Redis returns the counters catch up to exactly
 * the events sent. Runs its own Redis, so stopping it disturbs no other test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPrivateRedis } from './testing/private-redis.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, countOf, http } from './testing/tally-client.ts';
import { startTally } from './testing/tally-process.ts';

await requireRealServers();

test('Redis stopped: the counter consumer pauses, then counts every event once when it returns', async (t) => {
  const redis = await createPrivateRedis();
  t.after(() => redis.cleanup());
  await redis.start();
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], { ...ns.env, TALLY_REDIS_URL: redis.url });
  t.after(async () => {
    await tally.kill('SIGKILL');
    await backends.cleanup();
  });
  const target = `https://redis-outage.example/${ns.id}`;
  const send = async (prefix: string) => {
    const events = Array.from({ length: 300 }, (_, i) => ({
      id: `${ns.id}-${prefix}${i}`,
      type: 'like',
      target,
      userId: `u${i % 9}`,
    }));
    const r = await http(tally.httpPort!, 'POST', '/v1/events:batch', { events });
    assert.equal(r.status, 200, r.text);
  };
  // Redis away: the query answers UNAVAILABLE.
  const counted = () => countOf(tally.grpcPort!, target).catch(() => -1);

  await send('a');
  await waitFor(
    async () => (await counted()) === 300,
    async () => `counted ${await counted()}`,
  );
  await redis.stop();
  await send('b'); // ingest does not need Redis
  await waitFor(
    async () => (await backends.rows<{ n: number }>('SELECT count(*)::int AS n FROM event'))[0]?.n === 600,
    () => 'the persister did not keep going',
  );
  assert.equal(await counted(), -1, 'counters are unavailable while Redis is away');
  await redis.start();
  await waitFor(
    async () => (await counted()) === 600,
    async () => `counted ${await counted()} of 600`,
    120_000,
  );
  await waitFor(
    () => backends.caughtUp(),
    () => 'consumers behind',
  );
  assert.equal(await counted(), 600, 'every event counted once');
  assert.equal(tally.child.exitCode, null, 'the process stayed up');
});
