/**
 * A PostgreSQL outage pauses the persister, and with it every sink downstream of it (the counter
 * and the aggregator read what the persister accepted), without skipping anything: events keep
 * being ingested (acknowledged once in Kafka), and once PostgreSQL returns the `event` rows, the
 * summaries and the live counters catch up to exactly the events sent.
 * Runs its own PostgreSQL, so stopping it disturbs no other test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { createPrivatePostgres } from './testing/private-postgres.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, countOf, http } from './testing/tally-client.ts';
import { startTally } from './testing/tally-process.ts';

await requireRealServers();

test('PostgreSQL stopped: ingest goes on, the sinks pause, then hold every event once when it returns', async (t) => {
  const server = await createPrivatePostgres();
  t.after(() => server.cleanup());
  await server.start();
  const ns = testNamespace(3);
  const backends = new Backends(ns); // Kafka and Redis clean-up; its PostgreSQL pool is the shared server's
  const tally = await startTally(['all'], { ...ns.env, TALLY_PG_URL: server.url });
  t.after(async () => {
    await tally.kill('SIGKILL');
    await backends.cleanup();
  });
  const target = `https://pg-outage.example/${ns.id}`;
  const send = async (prefix: string) => {
    const events = Array.from({ length: 300 }, (_, i) => ({
      id: `${ns.id}-${prefix}${i}`,
      type: 'post',
      target,
      userId: `u${i % 11}`,
    }));
    const r = await http(tally.httpPort!, 'POST', '/v1/events:batch', { events });
    assert.equal(r.status, 200, r.text);
  };
  const sql = async () => {
    const client = new pg.Client({ connectionString: server.url, options: `-c search_path=${ns.pgSchema}` });
    await client.connect();
    try {
      const [events] = (await client.query('SELECT count(*)::int AS n FROM event')).rows as { n: number }[];
      const [summary] = (await client.query('SELECT coalesce(sum(count), 0)::int AS n FROM event_summary'))
        .rows as { n: number }[];
      return { events: events?.n, summary: summary?.n };
    } finally {
      await client.end();
    }
  };
  const counted = () => countOf(tally.grpcPort!, target);

  await send('a');
  await waitFor(
    async () => JSON.stringify(await sql()) === JSON.stringify({ events: 300, summary: 300 }),
    async () => JSON.stringify(await sql()),
  );
  await waitFor(
    async () => (await counted()) === 300,
    async () => `counted ${await counted()}`,
  );
  await server.stop();
  await send('b'); // ingest does not need PostgreSQL
  // Nothing the persister has not stored is counted: the counter waits for it.
  await new Promise((r) => setTimeout(r, 2_000));
  assert.equal(await counted(), 300, 'counted only what the event store holds');
  await server.start();
  await waitFor(
    async () => JSON.stringify(await sql()) === JSON.stringify({ events: 600, summary: 600 }),
    async () => `after the outage: ${JSON.stringify(await sql())}`,
    120_000,
  );
  await waitFor(
    () => backends.caughtUp(),
    () => 'consumers behind',
  );
  assert.deepEqual(await sql(), { events: 600, summary: 600 }, 'every event once in each SQL sink');
  assert.equal(await counted(), 600, 'every event counted once');
  assert.equal(tally.child.exitCode, null, 'the process stayed up');
});
