/**
 * The delivery admin API (ListDeliveries, ListAttempts, Redeliver, Recover) over a running
 * sender on the real servers: what was dead-lettered while an endpoint failed is listed, newest
 * first in pages, with its attempts; recovered from a time, exactly those messages are delivered,
 * once each, under their webhook-ids and in each user's order, and a second recovery finds none;
 * a redelivery sends one message again under the same webhook-id, its attempts numbered on.
 * Bad requests name their field; unknown ids are NOT_FOUND naming `id`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  ListAttemptsRequestSchema,
  ListDeliveriesRequestSchema,
  RecoverRequestSchema,
  RedeliverRequestSchema,
} from './gen/tally/v1/destinations_pb.js';
import { AppError, Code } from './infra/app-error.ts';
import { createSqlDeliveryLog } from './infra/delivery/sql-delivery-log.ts';
import { handleProcessWarnings } from './infra/node-warnings.ts';
import { deliveryAdmin } from './query/delivery-admin.ts';
import { senderHarness, startScriptedEndpoint } from './sender-harness.ts';
import { plannedRecords, webhookTo, writeRecords } from './testing/delivery-run.ts';
import { requireRealServers, waitFor } from './testing/real-servers.ts';

await requireRealServers();
handleProcessWarnings();

/** Rejects with an AppError of `code` whose field violations name `field`. */
async function refused(work: Promise<unknown>, code: Code, field: string): Promise<void> {
  await assert.rejects(work, (error) => {
    assert.ok(error instanceof AppError, String(error));
    assert.equal(error.code, code, error.message);
    assert.deepEqual(
      error.fieldViolations.map((v) => v.field),
      [field],
    );
    return true;
  });
}

test('dead letters listed and recovered once, exactly what failed; a redelivery under the same webhook-id; field-named errors', async (t) => {
  const h = await senderHarness(t);
  const startedMs = Date.now();
  let down = true;
  const failing = new Set(['user-3', 'user-7']);
  const userOf = (body: Buffer) => (JSON.parse(body.toString()) as { user_id: string }).user_id;
  const endpoint = await startScriptedEndpoint(t, (request) =>
    down && failing.has(userOf(request.body)) ? { status: 503 } : { status: 200 },
  );
  const { d, topic } = await h.destination(webhookTo(`${endpoint.url}/`, { retryDelaysSeconds: [0, 1] }));
  const admin = deliveryAdmin({ log: createSqlDeliveryLog({ sql: h.sql }), destinations: h.destinations });
  await h.startSender();
  const planned = plannedRecords(d.id, 10, 3);
  await writeRecords(h.log.producer(), topic, planned);

  const delivered = () =>
    endpoint.requests.filter((r) => r.endedMs > 0 && !(down && failing.has(userOf(r.body))));
  const list = (init: Parameters<typeof create<typeof ListDeliveriesRequestSchema>>[1]) =>
    admin.listDeliveries(create(ListDeliveriesRequestSchema, init));
  // The two failing users' records, each tried twice, are dead; the others' delivered.
  await waitFor(
    async () => (await list({ destinationId: d.id, state: 'dead' })).deliveries.length === 6,
    () => `${endpoint.requests.length} requests`,
    30_000,
  );
  await waitFor(
    () => delivered().length === 24,
    () => `${delivered().length} delivered`,
  );

  // Listing: newest first, in pages, by state and user; a token only with its own filters.
  const page1 = await list({ destinationId: d.id, state: 'dead', pageSize: 4 });
  assert.equal(page1.deliveries.length, 4);
  assert.notEqual(page1.nextPageToken, '');
  const page2 = await list({
    destinationId: d.id,
    state: 'dead',
    pageSize: 4,
    pageToken: page1.nextPageToken,
  });
  assert.equal(page2.deliveries.length, 2);
  assert.equal(page2.nextPageToken, '');
  const dead = [...page1.deliveries, ...page2.deliveries];
  const deadIds = planned.filter((p) => failing.has(p.user)).map((p) => p.record.messageId);
  assert.deepEqual(new Set(dead.map((x) => x.id)), new Set(deadIds));
  const created = dead.map((x) => Number(x.createdAt?.seconds) * 1000 + (x.createdAt?.nanos ?? 0) / 1e6);
  assert.deepEqual(
    created,
    [...created].sort((a, b) => b - a),
    'newest first',
  );
  for (const x of dead) {
    assert.equal(x.state, 'dead');
    assert.equal(x.attempts, 2);
    assert.equal(x.lastStatus, 503);
    assert.ok(x.finishedAt);
  }
  const user3 = await list({ destinationId: d.id, userId: 'user-3' });
  assert.deepEqual(
    user3.deliveries.map((x) => x.eventId),
    ['ev-3-3', 'ev-3-2', 'ev-3-1'],
  );
  assert.equal(
    (await list({ destinationId: d.id, since: timestampFromMs(Date.now() + 60_000) })).deliveries.length,
    0,
  );
  await refused(list({ destinationId: d.id, state: 'lost' }), Code.INVALID_ARGUMENT, 'state');
  await refused(list({ pageSize: 501 }), Code.INVALID_ARGUMENT, 'page_size');
  await refused(
    list({ destinationId: d.id, state: 'delivered', pageToken: page1.nextPageToken }),
    Code.INVALID_ARGUMENT,
    'page_token',
  );
  await refused(
    list({ since: timestampFromMs(startedMs), until: timestampFromMs(startedMs) }),
    Code.INVALID_ARGUMENT,
    'until',
  );
  await refused(list({ destinationId: 'ds_NOSUCH0000' }), Code.NOT_FOUND, 'destination_id');

  // A dead letter's attempts.
  const attempts = await admin.listAttempts(create(ListAttemptsRequestSchema, { id: deadIds[0]! }));
  assert.deepEqual(
    attempts.attempts.map((a) => [a.attempt, a.outcome, a.status]),
    [
      [1, 'retry', 503],
      [2, 'dead', 503],
    ],
  );
  assert.match(attempts.attempts[1]?.error ?? '', /^out of attempts: HTTP 503/);
  await refused(
    admin.listAttempts(create(ListAttemptsRequestSchema, { id: 'msg_nosuch' })),
    Code.NOT_FOUND,
    'id',
  );

  // Recovery from the test's start, the endpoint healthy: exactly the six, once each, in order.
  down = false;
  const before = endpoint.requests.length;
  await refused(admin.recover(create(RecoverRequestSchema, { id: d.id })), Code.INVALID_ARGUMENT, 'since');
  await refused(
    admin.recover(create(RecoverRequestSchema, { id: 'ds_NOSUCH0000', since: timestampFromMs(startedMs) })),
    Code.NOT_FOUND,
    'id',
  );
  const recovered = await admin.recover(
    create(RecoverRequestSchema, { id: d.id, since: timestampFromMs(startedMs) }),
  );
  assert.equal(recovered.recovered, 6);
  await waitFor(
    async () => (await list({ destinationId: d.id, state: 'delivered' })).deliveries.length === 6,
    () => `${endpoint.requests.length - before} requests since the recovery`,
    30_000,
  );
  const again = endpoint.requests.slice(before);
  assert.deepEqual(
    again.map((r) => r.headers['webhook-id']).sort(),
    [...deadIds].sort(),
    'exactly the dead letters, once each',
  );
  for (const user of failing)
    assert.deepEqual(
      again
        .filter((r) => userOf(r.body) === user)
        .map((r) => (JSON.parse(r.body.toString()) as { seq: number }).seq),
      [1, 2, 3],
      `${user}'s records in order`,
    );
  const second = await admin.recover(
    create(RecoverRequestSchema, { id: d.id, since: timestampFromMs(startedMs) }),
  );
  assert.equal(second.recovered, 0, 'nothing dead is left to recover');

  // Redelivery of one delivered message: sent again under its webhook-id, attempts numbered on.
  const id = deadIds[1]!;
  const redelivered = await admin.redeliver(create(RedeliverRequestSchema, { id }));
  assert.equal(redelivered.delivery?.state, 'pending');
  await waitFor(
    () => endpoint.requests.filter((r) => r.headers['webhook-id'] === id && r.endedMs > 0).length === 3,
    () => `${id} not sent again`,
  );
  await waitFor(
    async () => (await admin.listAttempts(create(ListAttemptsRequestSchema, { id }))).attempts.length === 4,
    () => `${id}'s redelivery not finished`,
  );
  const log = await admin.listAttempts(create(ListAttemptsRequestSchema, { id }));
  assert.deepEqual(
    log.attempts.map((a) => [a.attempt, a.outcome]),
    [
      [1, 'retry'],
      [2, 'dead'],
      [3, 'delivered'],
      [4, 'delivered'],
    ],
  );
  assert.equal(endpoint.requests.length, before + 7, 'nothing else was sent');
  await refused(admin.redeliver(create(RedeliverRequestSchema, { id: 'msg_nosuch' })), Code.NOT_FOUND, 'id');
  // A pending delivery (of a disabled destination: no sender takes it) is not redelivered.
  const { d: off } = await h.destination(webhookTo(`${endpoint.url}/`, { enabled: false }));
  const [waiting] = plannedRecords(off.id, 1, 1);
  const r = waiting!.record;
  await h.store.settle(
    off.id,
    0,
    [{ ...r, userKey: r.userId, state: 'pending', attempts: 0, nextAttemptAtMs: Date.now(), log: [] }],
    new Map(),
    Date.now(),
  );
  await refused(
    admin.redeliver(create(RedeliverRequestSchema, { id: r.messageId })),
    Code.FAILED_PRECONDITION,
    'id',
  );
  await refused(admin.redeliver(create(RedeliverRequestSchema, { id: '' })), Code.INVALID_ARGUMENT, 'id');
});
