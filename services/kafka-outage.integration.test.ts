/**
 * Backpressure, not loss: with Kafka stopped, every ingest call answers 503 /
 * UNAVAILABLE within the configured bound (never OK-then-lost, never a hang);
 * when Kafka returns, Tally recovers by itself and everything acknowledged —
 * before the outage, and retried after it — is counted exactly once.
 * Runs its own broker, so stopping it disturbs no other test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError, Code } from './infra/app-error.ts';
import { createPrivateKafka } from './testing/private-kafka.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, countOf, http, ingestClient } from './testing/tally-client.ts';
import { startTally } from './testing/tally-process.ts';

await requireRealServers();

const PRODUCE_TIMEOUT_MS = 2_000;
/** The bound each call must answer within: the produce timeout plus room for a busy machine. */
const ANSWER_BOUND_MS = PRODUCE_TIMEOUT_MS + 4_000;

test('Kafka stopped: 503/UNAVAILABLE in bounded time; after it returns every acknowledged event counts once', async (t) => {
  const kafka = await createPrivateKafka();
  t.after(() => kafka.cleanup());
  await kafka.start();
  const ns = testNamespace(3);
  const backends = new Backends(ns); // PostgreSQL and Redis only: its Kafka admin points at the shared broker
  const tally = await startTally(['all'], {
    ...ns.env,
    TALLY_KAFKA_BROKERS: kafka.brokers,
    TALLY_PRODUCE_TIMEOUT_MS: String(PRODUCE_TIMEOUT_MS),
  });
  t.after(async () => {
    await tally.kill('SIGKILL');
    await backends.cleanup();
  });
  const target = `https://outage.example/${ns.id}`;
  const event = (id: string) => ({ id, type: 'VIEW', target, userId: `u-${id.length % 7}` });
  const counted = () => countOf(tally.grpcPort!, target);

  const before = Array.from({ length: 300 }, (_, i) => event(`${ns.id}-a${i}`));
  const batch = await http(tally.httpPort!, 'POST', '/v1/events:batch', { events: before });
  assert.equal(batch.status, 200, batch.text);
  await waitFor(
    async () => (await counted()) === 300,
    async () => `counted ${await counted()} of 300`,
  );

  await kafka.stop();
  const during = Array.from({ length: 20 }, (_, i) => event(`${ns.id}-o${i}`));
  const ingest = ingestClient(tally.grpcPort!);
  t.after(() => ingest.close());
  const answers = await Promise.all(
    during.map(async (e, i) => {
      const started = Date.now();
      if (i % 2 === 0) {
        const r = await http(tally.httpPort!, 'POST', '/v1/events', e);
        return {
          ms: Date.now() - started,
          status: r.status,
          retryAfter: r.headers.get('retry-after'),
          text: r.text,
        };
      }
      try {
        await ingest.publish({ event: e }, { timeoutMs: 30_000 });
        return { ms: Date.now() - started, status: 200, retryAfter: null, text: 'OK' };
      } catch (error) {
        return {
          ms: Date.now() - started,
          status: (error as AppError).code === Code.UNAVAILABLE ? 503 : 500,
          retryAfter: '-',
          text: String(error),
        };
      }
    }),
  );
  for (const a of answers) {
    assert.equal(a.status, 503, `refused while Kafka is away: ${a.text}`);
    assert.ok(a.retryAfter !== null, 'REST answers carry Retry-After');
    assert.ok(a.ms < ANSWER_BOUND_MS, `answered in ${a.ms} ms (bound ${ANSWER_BOUND_MS} ms)`);
  }
  assert.equal(tally.child.exitCode, null, 'the process stays up');

  await kafka.start();
  // A well-behaved client retries what was refused, with the same ids, until acknowledged.
  const after = Array.from({ length: 300 }, (_, i) => event(`${ns.id}-b${i}`));
  for (const e of [...during, ...after]) {
    await waitFor(
      async () => {
        try {
          await ingest.publish({ event: e }, { timeoutMs: 10_000 });
          return true;
        } catch (error) {
          if (
            error instanceof AppError &&
            (error.code === Code.UNAVAILABLE || error.code === Code.DEADLINE_EXCEEDED)
          )
            return false;
          throw error;
        }
      },
      () => `ingest did not recover for ${e.id}`,
      120_000,
      250,
    );
  }
  const total = before.length + during.length + after.length;
  await waitFor(
    async () => (await counted()) === total,
    async () => `counted ${await counted()} of ${total}`,
    120_000,
  );
  await waitFor(
    async () => (await backends.rows<{ n: number }>('SELECT count(*)::int AS n FROM event'))[0]?.n === total,
    async () =>
      `event rows: ${(await backends.rows<{ n: number }>('SELECT count(*)::int AS n FROM event'))[0]?.n}`,
    120_000,
  );
  await waitFor(
    async () =>
      (await backends.rows<{ n: number }>('SELECT coalesce(sum(count), 0)::int AS n FROM event_summary'))[0]
        ?.n === total,
    () => 'summaries behind',
    120_000,
  );
  // Settled: nothing more arrives, nothing is counted twice.
  assert.equal(await counted(), total);
});
