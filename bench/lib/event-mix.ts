/**
 * The load tests' event mix (loadtest/lib/events.js) for the harness's own writers: shop pages
 * (VIEW, CLICK), social posts (like, comment, share) and merchants (transaction, with an amount),
 * Zipf-popular targets, users as partition keys. Encoded exactly as ingest encodes an event.
 */

import type { Event } from '../../services/gen/tally/v1/event_pb.js';
import type { LogRecord } from '../../services/infra/log/event-log.ts';
import { encodeEvent, msToTimestamp, newEvent, partitionKey } from '../../services/pipeline/event-codec.ts';
import { createOrders } from '../../services/simulator/orders.ts';
import { ZipfSampler } from '../../services/simulator/zipf.ts';

/** The mix is not seeded: each run draws afresh. */
const unseeded = { float: Math.random };

interface Family {
  share: number;
  target: (k: number) => string;
  types: [string, number][];
}

/** The families of the mix, as in loadtest/lib/events.js. */
export const FAMILIES: readonly Family[] = [
  {
    share: 50,
    target: (k) => `https://shop.example/p/${k}`,
    types: [
      ['VIEW', 80],
      ['CLICK', 20],
    ],
  },
  {
    share: 35,
    target: (k) => `post/${k}`,
    types: [
      ['like', 75],
      ['comment', 17],
      ['share', 8],
    ],
  },
  { share: 15, target: (k) => `merchant/${k}`, types: [['transaction', 1]] },
];

function weighted<T>(pairs: readonly (readonly [T, number])[]): T {
  let total = 0;
  for (const [, w] of pairs) total += w;
  let r = Math.random() * total;
  for (const [value, w] of pairs) {
    r -= w;
    if (r < 0) return value;
  }
  return pairs[pairs.length - 1]![0];
}

const CITIES = ['Berlin', 'Paris', 'Madrid', 'Rome', 'Lisbon', 'Vienna', 'Warsaw', 'Dublin'];
const ELEMENTS = ['add_to_cart', 'image', 'related_product', 'reviews', 'buy_now'];
const REFERRERS = ['search', 'direct', 'social'];

/** `count` log records of the mix as ingest writes them (id, received_at and ip filled in). */
export function mixRecords(count: number, runId: string, targets = 1000, users = 100_000): LogRecord[] {
  return mixEvents(count, (i) => `${runId}-raw-${i}`, targets, users).map(toRecord);
}

/** A log record of `event` as ingest writes it: keyed by user (else target), encoded. */
export function toRecord(event: Event): LogRecord {
  return { key: partitionKey(event), value: encodeEvent(event) };
}

/**
 * `count` events of the mix, the i-th with id `idOf(i)`, on `targets` Zipf-popular targets of
 * each family (so up to 3 × `targets` in all) from `users` users.
 */
export function mixEvents(
  count: number,
  idOf: (i: number) => string,
  targets = 1000,
  users = 100_000,
): Event[] {
  const targetRanks = new ZipfSampler(targets, 1.1);
  const userRanks = new ZipfSampler(users, 0.7);
  const families = FAMILIES.map((f) => [f, f.share] as const);
  const now = Date.now();
  const events: Event[] = [];
  for (let i = 0; i < count; i++) {
    const family = weighted(families);
    const type = weighted(family.types);
    const user = userRanks.sample(unseeded);
    const h = Math.imul(user, 0x9e3779b1) >>> 0;
    const transaction = type === 'transaction';
    const event = newEvent({
      id: idOf(i),
      type,
      target: family.target(targetRanks.sample(unseeded)),
      userId: `user-${user}`,
      ip: `198.${18 + (h & 1)}.${(h >>> 8) & 255}.${(h >>> 16) & 255}`,
      occurredAt: msToTimestamp(now - Math.floor(Math.random() * 2000)),
      receivedAt: msToTimestamp(now),
      ...(transaction ? { value: Math.round(25 * Math.exp(0.9 * gaussian()) * 100) / 100 } : {}),
      attributes: transaction
        ? { currency: 'EUR', city: CITIES[i % CITIES.length]! }
        : type === 'CLICK'
          ? { element: ELEMENTS[i % ELEMENTS.length]! }
          : family.share === 50
            ? { referrer: REFERRERS[i % REFERRERS.length]! }
            : {},
    });
    events.push(event);
  }
  return events;
}

function gaussian(): number {
  const u = 1 - Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}

/**
 * `count` events of the orders scenario (services/simulator/orders.ts: each order's lifecycle from
 * created to delivered, in order per customer) as ingest writes them, their event times the
 * model's from an hour ago: the projector's backlog.
 */
export function orderRecords(count: number, runId: string): LogRecord[] {
  const source = createOrders({
    seed: 17,
    ratePerSecond: 1000,
    targets: 200,
    users: 20_000,
    idPrefix: runId.replace(/[^A-Za-z0-9]/g, ''),
  });
  const now = Date.now();
  const start = now - 3_600_000;
  const records: LogRecord[] = [];
  for (let i = 0; i < count; i++) {
    const e = source.next();
    records.push(
      toRecord(
        newEvent({
          id: e.id,
          type: e.type,
          target: e.target,
          userId: e.userId,
          occurredAt: msToTimestamp(start + e.modelTimeMs),
          receivedAt: msToTimestamp(now),
          ...(e.value === undefined ? {} : { value: e.value }),
          attributes: e.attributes,
        }),
      ),
    );
  }
  return records;
}
