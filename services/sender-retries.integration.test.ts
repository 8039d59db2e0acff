/**
 * The sender's retries and circuit breaker on the real servers (Kafka, PostgreSQL, Redis Cluster),
 * on a test clock: the sender's `now` is moved by the test, so schedules of hours run in seconds.
 * An endpoint on 127.0.0.1 answers as each test scripts it.
 *
 * - Retry-After is honoured, as seconds and as an HTTP date, over the schedule's own delay; the
 *   schedule's jitter is the configured one; the schedule exhausted dead-letters the delivery with
 *   every attempt kept, and lets its user's next record go.
 * - The breaker opens on failures (records not started yet are parked, not attempted), stays open
 *   for its wait, gives one probe at a time across two senders when half-open (a failed probe
 *   opens it again for twice as long), closes after three successes, and disables the destination
 *   after the configured time failing; enabled again, it starts closed and delivers what waited.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BreakerConfig } from './domain/circuit-breaker.ts';
import { handleProcessWarnings } from './infra/node-warnings.ts';
import { type SenderHarness, senderHarness, startScriptedEndpoint } from './sender-harness.ts';
import { plannedRecords, webhookTo, writeRecords } from './testing/delivery-run.ts';
import { requireRealServers, waitFor } from './testing/real-servers.ts';

await requireRealServers();
handleProcessWarnings();

const HOUR = 3_600_000;
/** Long enough for several of the sender's polls (100 ms) and drains. */
const QUIET_MS = 600;

interface Row {
  message_id: string;
  state: string;
  attempts: number;
  next_ms: number | null;
  last_status: number | null;
  has_body: boolean;
}

async function rows(h: SenderHarness, destinationId: string): Promise<Row[]> {
  return h.sql.query<Row>(
    `SELECT message_id, state, attempts, (extract(epoch FROM next_attempt_at) * 1000)::float8 AS next_ms,
            last_status, body IS NOT NULL AS has_body
       FROM delivery WHERE destination_id = $1 ORDER BY seq`,
    [destinationId],
  );
}

test('Retry-After in seconds and as an HTTP date honoured, the schedule exhausted: dead-lettered with every attempt, the user’s next record delivered', async (t) => {
  const h = await senderHarness(t);
  const t0 = Date.now();
  let clock = t0;
  const endpoint = await startScriptedEndpoint(t, (_, index) => {
    if (index === 0) return { status: 503, headers: { 'retry-after': '7200' } };
    if (index === 1)
      return { status: 429, headers: { 'retry-after': new Date(Date.now() + 3 * HOUR).toUTCString() } };
    if (index <= 3) return { status: 503 };
    return { status: 200 };
  });
  // Four attempts: at once, then 60 s, 10 min and 1 h (nominal).
  const { d, topic } = await h.destination(
    webhookTo(`${endpoint.url}/hook`, { retryDelaysSeconds: [0, 60, 600, 3600] }),
  );
  await h.startSender({}, { now: () => clock, random: () => 0.5 });
  const [first, second] = plannedRecords(d.id, 1, 2);
  await writeRecords(h.log.producer(), topic, [first!, second!]);

  const rowOf = async (messageId: string) => (await rows(h, d.id)).find((r) => r.message_id === messageId);
  const attempted = async (n: number, attempts: number, state = 'pending') => {
    await waitFor(
      async () => {
        const row = await rowOf(first!.record.messageId);
        return endpoint.requests.length >= n && row?.attempts === attempts && row.state === state;
      },
      async () => `${endpoint.requests.length} requests, rows ${JSON.stringify(await rows(h, d.id))}`,
      30_000,
    );
    return (await rowOf(first!.record.messageId))!;
  };

  // Attempt 1 at t0: 503 with Retry-After 7200 s, later than the step's 30 s (jitter 0.5 of 0–60 s).
  let row = await attempted(1, 1);
  assert.equal(row.next_ms, t0 + 2 * HOUR, 'Retry-After in seconds wins over the schedule');
  const secondRow = await rowOf(second!.record.messageId);
  assert.equal(secondRow?.state, 'pending', 'the user’s next record waits behind the retry');
  assert.equal(secondRow?.attempts, 0);

  // Not before its time.
  clock = t0 + 2 * HOUR - 1_000;
  await sleep(QUIET_MS);
  assert.equal(endpoint.requests.length, 1, 'no attempt before Retry-After');

  // Attempt 2: 429 with Retry-After as an HTTP date three hours ahead (whole seconds).
  const t1 = t0 + 2 * HOUR;
  clock = t1;
  row = await attempted(2, 2);
  assert.ok(
    row.next_ms! > t1 + 3 * HOUR - 3_000 && row.next_ms! <= t1 + 3 * HOUR,
    `the HTTP date is honoured: next attempt ${row.next_ms! - t1} ms later`,
  );

  // Attempt 3: 503 without Retry-After: the schedule's step, jittered in [10 min, 1 h] at 0.5.
  const t2 = row.next_ms!;
  clock = t2;
  row = await attempted(3, 3);
  assert.equal(row.next_ms, t2 + 2_100_000, 'the schedule’s fourth step, jittered');

  // Attempt 4 fails too: the schedule is exhausted, the delivery dead-lettered.
  const t3 = row.next_ms!;
  clock = t3;
  row = await attempted(4, 4, 'dead');
  assert.equal(row.last_status, 503);
  assert.equal(row.next_ms, null);
  assert.ok(row.has_body, 'a dead letter keeps its body, to be redelivered');

  // Every attempt is kept: when, outcome, status, latency, error.
  const log = await h.sql.query<{
    attempt: number;
    at_ms: number;
    outcome: string;
    status: number;
    latency_ms: number;
    error: string;
  }>(
    `SELECT attempt, (extract(epoch FROM attempted_at) * 1000)::float8 AS at_ms, outcome, status, latency_ms, error
       FROM delivery_attempt WHERE destination_id = $1 AND message_id = $2 ORDER BY attempt`,
    [d.id, first!.record.messageId],
  );
  assert.deepEqual(
    log.map((a) => [a.attempt, a.at_ms, a.outcome, a.status]),
    [
      [1, t0, 'retry', 503],
      [2, t1, 'retry', 429],
      [3, t2, 'retry', 503],
      [4, t3, 'dead', 503],
    ],
  );
  assert.ok(log.every((a) => a.latency_ms >= 0 && a.error.includes('503') === (a.status === 503)));
  assert.match(log[3]!.error, /^out of attempts: /);

  // The dead letter lets the user's next record go.
  await waitFor(
    async () => (await rowOf(second!.record.messageId))?.state === 'delivered',
    async () => `rows ${JSON.stringify(await rows(h, d.id))}`,
  );
  assert.equal(endpoint.requests.length, 5);
  const ids = endpoint.requests.map((r) => r.headers['webhook-id']);
  assert.deepEqual(ids, [...new Array(4).fill(first!.record.messageId), second!.record.messageId]);
});

const BREAKER: BreakerConfig = {
  windowMs: 60_000,
  bucketMs: 10_000,
  minAttempts: 4,
  failureRate: 0.5,
  consecutiveTimeouts: 5,
  openBaseMs: 600_000,
  openMaxMs: HOUR,
  probeLeaseMs: 60_000,
  probeSuccesses: 3,
  disableAfterMs: 2 * HOUR,
};

const MANY_RETRIES = Array.from({ length: 20 }, (_, i) => (i === 0 ? 0 : 1));

test('breaker: opens after failures and parks the rest, waits, one probe at a time across two senders, a failed probe doubles the wait, three successes close it', async (t) => {
  const h = await senderHarness(t, { breaker: BREAKER });
  const t0 = Date.now();
  let clock = t0;
  let healthy = false;
  const endpoint = await startScriptedEndpoint(t, () =>
    healthy ? { status: 200, delayMs: 200 } : { status: 503 },
  );
  const { d, topic } = await h.destination(
    webhookTo(`${endpoint.url}/`, { ordering: 'none', concurrency: 1, retryDelaysSeconds: MANY_RETRIES }),
  );
  const now = () => clock;
  await h.startSender({}, { now });
  const planned = plannedRecords(d.id, 12, 1);
  await writeRecords(h.log.producer(), topic, planned);

  // Four failures in the window open it: the other eight records are parked unattempted.
  await waitFor(
    async () => (await rows(h, d.id)).length === planned.length,
    async () => `${(await rows(h, d.id)).length} rows, ${endpoint.requests.length} requests`,
    30_000,
  );
  assert.equal(endpoint.requests.length, 4, 'no attempt once the breaker opened');
  const opened = await h.breakers.inspect(d.id, clock);
  assert.equal(opened.snapshot.phase, 'open');
  assert.equal(opened.snapshot.openUntilMs, t0 + BREAKER.openBaseMs);

  // Open: the retries are due, but nothing goes before the wait is over.
  clock = t0 + 5 * 60_000;
  await sleep(QUIET_MS);
  assert.equal(endpoint.requests.length, 4, 'nothing attempted while open');

  // A second sender shares the breaker (Redis): one probe between them.
  await h.startSender({}, { now });
  // The wait is over: one probe, failing: open again for twice the wait.
  clock = t0 + BREAKER.openBaseMs;
  await waitFor(
    async () => (await h.breakers.inspect(d.id, clock)).snapshot.opens === 2,
    () => `${endpoint.requests.length} requests`,
  );
  await sleep(QUIET_MS);
  assert.equal(endpoint.requests.length, 5, 'one probe');
  const reopened = await h.breakers.inspect(d.id, clock);
  assert.equal(reopened.snapshot.phase, 'open');
  assert.equal(reopened.snapshot.openUntilMs, clock + 2 * BREAKER.openBaseMs);

  // Healthy again: three probes one at a time (each answered in 200 ms), then closed.
  healthy = true;
  clock = reopened.snapshot.openUntilMs;
  await waitFor(
    async () => (await h.breakers.inspect(d.id, clock)).snapshot.phase === 'closed',
    () => `${endpoint.requests.length} requests`,
    30_000,
  );
  const probes = endpoint.requests.slice(5, 8);
  assert.equal(probes.length, 3);
  for (let i = 1; i < probes.length; i++)
    assert.ok(
      probes[i]!.startedMs >= probes[i - 1]!.endedMs,
      `probe ${i + 1} started after probe ${i} ended`,
    );
  // Deliveries a sender was refused a probe for were set to the probe's lease end: past it, all go.
  clock += BREAKER.probeLeaseMs;
  const delivered = () =>
    new Set(
      endpoint.requests
        .filter((r) => r.endedMs > 0 && r.startedMs >= probes[0]!.startedMs)
        .map((r) => r.headers['webhook-id']),
    );
  await waitFor(
    () => delivered().size === planned.length,
    () => `${delivered().size} of ${planned.length} delivered`,
    30_000,
  );
  // The receiver has answered every one; each is finished in the store once its sender hears it.
  await waitFor(
    async () => (await rows(h, d.id)).every((r) => r.state === 'delivered'),
    async () => JSON.stringify(await rows(h, d.id)),
    10_000,
  );
});

test('breaker: not closed for the auto-disable time disables the destination, nothing lost; enabled again it starts closed and delivers', async (t) => {
  const h = await senderHarness(t, { breaker: BREAKER });
  const t0 = Date.now();
  let clock = t0;
  let healthy = false;
  const endpoint = await startScriptedEndpoint(t, () => (healthy ? { status: 200 } : { status: 503 }));
  const { d, topic } = await h.destination(
    webhookTo(`${endpoint.url}/`, { ordering: 'none', concurrency: 1, retryDelaysSeconds: MANY_RETRIES }),
  );
  await h.startSender({}, { now: () => clock });
  const planned = plannedRecords(d.id, 6, 1);
  await writeRecords(h.log.producer(), topic, planned);
  await waitFor(
    async () => (await rows(h, d.id)).length === planned.length,
    async () => `${(await rows(h, d.id)).length} rows, ${endpoint.requests.length} requests`,
    30_000,
  );
  assert.equal((await h.breakers.inspect(d.id, clock)).snapshot.phase, 'open');

  // An hour failing: a probe fails, the destination stays enabled.
  clock = t0 + HOUR;
  await waitFor(
    () => endpoint.requests.length === 5,
    () => `${endpoint.requests.length} requests`,
  );
  await sleep(QUIET_MS);
  assert.equal((await h.destinations.get(d.id))?.enabled, true, 'enabled while failing less than 2 h');

  // Two hours not closed: the sender disables it at its next probe, without attempting it.
  clock = t0 + BREAKER.disableAfterMs;
  await waitFor(
    async () => (await h.destinations.get(d.id))?.enabled === false,
    () => 'not disabled',
  );
  const disabled = (await h.destinations.get(d.id))!;
  assert.match(disabled.disabledReason, /circuit breaker/);
  assert.equal(endpoint.requests.length, 5);
  assert.equal((await h.store.pendingCounts()).get(d.id), planned.length, 'every delivery still pending');

  // Enabled again (the receiver is back): its breaker starts closed and everything is delivered.
  healthy = true;
  await h.destinations.update(
    d.id,
    {
      name: disabled.name,
      enabled: true,
      disabledReason: '',
      endpoint: disabled.endpoint,
      filter: disabled.filter,
      transform: disabled.transform,
      ordering: disabled.ordering,
      retryDelaysSeconds: disabled.retryDelaysSeconds,
      concurrency: disabled.concurrency,
    },
    disabled.revision,
  );
  await waitFor(
    async () => (await rows(h, d.id)).every((r) => r.state === 'delivered'),
    async () => `rows ${JSON.stringify(await rows(h, d.id))}`,
    30_000,
  );
  assert.equal((await h.breakers.inspect(d.id, clock)).snapshot.phase, 'closed');
  const ids = new Set(endpoint.requests.filter((_, i) => i >= 5).map((r) => r.headers['webhook-id']));
  assert.equal(ids.size, planned.length);
});
