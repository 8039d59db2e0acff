/**
 * Test support for the router: destinations made over REST, a stream of events with a sequence
 * per user, a destination topic read back, and the check a sender would make — every expected
 * event there, and a user's events in order by their source position once the records the router
 * wrote twice are recognised (pipeline/delivery-record.ts).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { EventLog } from '../infra/log/event-log.ts';
import { type DeliveryRecord, decodeDeliveryRecord } from '../pipeline/delivery-record.ts';
import type { RestEvent } from './milestone-run.ts';
import { waitFor } from './real-servers.ts';
import { http } from './tally-client.ts';

/** Makes a destination through `POST /v1/destinations`; answers its id. */
export async function createDestination(
  httpPort: number,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<string> {
  const made = await http(
    httpPort,
    'POST',
    '/v1/destinations',
    { webhook: { url: 'https://hooks.example.com/tally' }, ...body },
    headers,
  );
  assert.equal(made.status, 200, made.text);
  return (made.body as { destination: { id: string } }).destination.id;
}

/** Disables a destination (`PUT`, the same fields with `enabled: false`). */
export async function disableDestination(
  httpPort: number,
  id: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<void> {
  const put = await http(
    httpPort,
    'PUT',
    `/v1/destinations/${id}`,
    { webhook: { url: 'https://hooks.example.com/tally' }, ...body, enabled: false },
    headers,
  );
  assert.equal(put.status, 200, put.text);
}

export async function deleteDestination(
  httpPort: number,
  id: string,
  headers: Record<string, string> = {},
): Promise<void> {
  const deleted = await http(httpPort, 'DELETE', `/v1/destinations/${id}`, undefined, headers);
  assert.equal(deleted.status, 200, deleted.text);
}

/** True once a process logged routing to exactly `count` destinations. */
export function routesTo(lines: readonly string[], count: number): boolean {
  // The router's lines name how many it routes to; the senders log the same messages without it.
  const last = lines.findLast(
    (l) =>
      (l.includes('"msg":"destinations changed"') || l.includes('"msg":"destinations loaded"')) &&
      l.includes('"routed":'),
  );
  return last?.includes(`"routed":${count},`) === true || last?.includes(`"routed":${count}}`) === true;
}

/**
 * `count` events from `users` users, each with its sequence number in the `seq` attribute, types
 * and targets alternating: `purchase` on `shop/…` and `view` on `blog/…`.
 */
export function routedEvents(runId: string, phase: string, count: number, users = 12): RestEvent[] {
  return Array.from({ length: count }, (_, i) => {
    const purchase = i % 3 !== 2;
    return {
      id: `${runId}-${phase}-${i}`,
      type: purchase ? 'purchase' : 'view',
      target: purchase ? `shop/item-${i % 7}` : `blog/post-${i % 5}`,
      userId: `${runId}-u${i % users}`,
      attributes: { seq: String(i), plan: i % 2 === 0 ? 'pro' : 'free' },
    };
  });
}

/** A destination topic's records, decoded (each must be a delivery), in offset order per partition. */
export async function readDeliveries(
  log: EventLog,
  topic: string,
  groupPrefix: string,
): Promise<Delivered[]> {
  let total = 0n;
  for (const end of (await log.endOffsets(topic)).values()) total += end;
  const records: Delivered[] = [];
  if (total === 0n) return records;
  const consumer = log.consumer({
    groupId: `${groupPrefix}reader-${randomUUID()}`,
    topics: [topic],
    fromBeginning: true,
    maxWaitMs: 100,
  });
  await consumer.run(async (batch) => {
    for (const r of batch.records) {
      const decoded = decodeDeliveryRecord(r);
      assert.ok(typeof decoded === 'object', `${topic}: ${decoded}`);
      records.push({ ...decoded, partition: batch.partition, key: r.key });
    }
  });
  try {
    await waitFor(
      () => BigInt(records.length) >= total,
      () => `read ${records.length} of the ${total} records of ${topic}`,
      30_000,
    );
  } finally {
    await consumer.stop();
  }
  return records;
}

/** A record of a destination topic, decoded, with where it was read. */
export type Delivered = DeliveryRecord & { partition: number; key: string | null };

/**
 * What a sender would deliver of `records` (one topic, read in offset order per partition): a
 * record whose source position is not past the last delivered one of its source partition, in
 * its destination partition, is one the router wrote again, and skipped.
 */
export function delivered(records: readonly Delivered[]): Delivered[] {
  const marks = new Map<string, bigint>();
  return records.filter((r) => {
    const key = `${r.partition}/${r.sourcePartition}`;
    const mark = marks.get(key);
    if (mark !== undefined && r.sourceOffset <= mark) return false;
    marks.set(key, r.sourceOffset);
    return true;
  });
}

/**
 * Asserts that `records` hold each of `expected` (by event id), none other, and each user's in the
 * order sent; with `exactlyOnce`, that no record repeats. Answers how many records were repeats.
 */
export function assertRouted(
  name: string,
  records: readonly Delivered[],
  expected: readonly RestEvent[],
  options: { exactlyOnce: boolean },
): number {
  const kept = delivered(records);
  if (options.exactlyOnce) assert.equal(records.length, kept.length, `${name}: no record written twice`);
  assert.deepEqual(
    [...new Set(records.map((r) => r.eventId))].sort(),
    expected.map((e) => e.id).sort(),
    `${name}: every matching event, and no other`,
  );
  assert.equal(kept.length, expected.length, `${name}: each event once after the repeats are recognised`);
  const sentOrder = (events: readonly { id: string; userId: string }[]) => {
    const byUser = new Map<string, string[]>();
    for (const e of events) byUser.set(e.userId, [...(byUser.get(e.userId) ?? []), e.id]);
    return byUser;
  };
  for (const r of kept) assert.equal(r.key, r.userId, `${name}: keyed by user`);
  assert.deepEqual(
    sentOrder(kept.map((r) => ({ id: r.eventId, userId: r.userId }))),
    sentOrder(expected),
    `${name}: each user's events in the order sent`,
  );
  return records.length - kept.length;
}
