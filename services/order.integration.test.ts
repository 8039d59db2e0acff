/**
 * Per-user order through a consumer crash: each user's events, sent one after
 * another with a per-user sequence, are stored once each, in one partition, in
 * the order they were ingested, although the sink process is killed with
 * SIGKILL mid-stream and restarted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AppError, Code } from './infra/app-error.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, ingestClient } from './testing/tally-client.ts';
import { freePort, startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

/**
 * The groups of the sinks this test starts and reads (not the alerter: it keeps nothing per user;
 * not the router: router.integration.test.ts checks its order).
 */
const SINK_GROUPS = ['group_persistence', 'group_realtimecounter', 'group_aggregation'];

test('one user’s events are stored in ingest order, through a SIGKILL of the consumers', async (t) => {
  const ns = testNamespace(4);
  const backends = new Backends(ns);
  const grpcPort = await freePort();
  const edge = await startTally(['ingest'], { ...ns.env, TALLY_GRPC_PORT: String(grpcPort) });
  let sinks: TallyProcess = await startTally(['persister', 'counter', 'aggregator'], ns.env);
  t.after(async () => {
    await sinks.kill('SIGKILL');
    await edge.kill('SIGKILL');
    await backends.cleanup();
  });
  const ingest = ingestClient(grpcPort);
  t.after(() => ingest.close());

  const USERS = 20;
  const PER_USER = 150;
  let acknowledged = 0;
  const user = async (u: number) => {
    for (let seq = 0; seq < PER_USER; seq++) {
      const event = {
        id: `${ns.id}-u${u}-${seq}`,
        type: 'transaction',
        target: `merchant-${(u * 7 + seq) % 5}`,
        userId: `user-${u}`,
        value: 1,
        attributes: { seq: String(seq) },
      };
      // The next event goes only once this one is acknowledged: ingest order is seq order.
      for (;;) {
        try {
          await ingest.publish({ event }, { timeoutMs: 5_000 });
          break;
        } catch (error) {
          if (
            (error as AppError).code !== Code.UNAVAILABLE &&
            (error as AppError).code !== Code.DEADLINE_EXCEEDED
          )
            throw error;
        }
      }
      acknowledged++;
    }
  };
  const crash = (async () => {
    await waitFor(
      () => acknowledged > (USERS * PER_USER) / 3,
      () => `${acknowledged} acknowledged`,
    );
    sinks.child.kill('SIGKILL');
    await sinks.exited;
    sinks = await startTally(['persister', 'counter', 'aggregator'], ns.env);
  })();
  await Promise.all(Array.from({ length: USERS }, (_, u) => user(u)));
  await crash;
  await waitFor(
    () => backends.caughtUp(SINK_GROUPS),
    () => 'consumers behind',
    120_000,
  );

  const rows = await backends.rows<{
    user_id: string;
    seq: number;
    log_partition: number;
    log_offset: number;
  }>(
    `SELECT user_id, (attributes->>'seq')::int AS seq, log_partition, log_offset FROM event ORDER BY log_partition, log_offset`,
  );
  assert.equal(rows.length, USERS * PER_USER, 'every event stored once');
  const byUser = new Map<string, typeof rows>();
  for (const row of rows) byUser.set(row.user_id, [...(byUser.get(row.user_id) ?? []), row]);
  assert.equal(byUser.size, USERS);
  for (const [userId, events] of byUser) {
    assert.equal(new Set(events.map((e) => e.log_partition)).size, 1, `${userId} stays in one partition`);
    assert.deepEqual(
      events.map((e) => e.seq),
      Array.from({ length: PER_USER }, (_, i) => i),
      `${userId}'s events in ingest order`,
    );
  }
  const [sums] = await backends.rows<{ n: number }>('SELECT sum(count)::int AS n FROM event_summary');
  assert.equal(sums?.n, USERS * PER_USER, 'the summaries count each event once');
});
