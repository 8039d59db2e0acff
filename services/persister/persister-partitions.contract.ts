/**
 * The `event` table by day (migration 0015), on every SQL adapter: the persister stores an id
 * once across day partitions (a redelivery, a retry whose event time differs, a late or far-future
 * event), and the retention drops only whole days past it, with their ids, never today.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  DAY_MS,
  dayOf,
  ensureEventDays,
  ensureEventDaysOnce,
  eventDays,
  firstKeptDay,
  maintainEventPartitions,
  partitionName,
} from '../infra/events/event-partitions.ts';
import type { ConsumedRecord } from '../infra/log/event-log.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { encodeEvent, newEvent } from '../pipeline/event-codec.ts';
import type { EventBatch } from '../pipeline/event-consumer.ts';
import { persistBatches } from './persister.ts';

export interface PartitionsEnvironment {
  sql: SqlDatabase;
  cleanup(): Promise<void>;
}

interface Spec {
  id: string;
  /** The event's own time; without it, its event time is its received time. */
  occurredMs?: number;
  receivedMs: number;
  target?: string;
}

/** Events at offsets from `first` of `partition`, as the consumer hands them to the persister. */
function batch(partition: number, first: number, specs: Spec[]): EventBatch {
  return {
    topic: 'events',
    partition,
    lastOffset: BigInt(first + specs.length - 1),
    events: specs.map((s, i) => {
      const offset = BigInt(first + i);
      const event = newEvent({
        id: s.id,
        type: 'like',
        target: s.target ?? 'post/1',
        userId: 'u1',
        ...(s.occurredMs === undefined ? {} : { occurredAt: timestampFromMs(s.occurredMs) }),
        receivedAt: timestampFromMs(s.receivedMs),
      });
      const record: ConsumedRecord = {
        key: 'u1',
        value: encodeEvent(event),
        headers: {},
        offset,
        timestampMs: 0,
      };
      return { event, partition, offset, position: offset, record };
    }),
  };
}

const summary = (o: Awaited<ReturnType<typeof persistBatches>>) => ({
  accepted: o.accepted.map((e) => `${e.event.id}@${e.partition}:${e.offset}`),
  duplicates: o.duplicates.map((d) => `${d.kind} ${d.id}@${d.partition}:${d.offset}`),
});

/** Each stored row of `ids`: its partition (by the table it is in) and event time. */
async function rowsOf(sql: SqlDatabase, ids: string[]) {
  return sql.query<{ id: string; part: string; occurred_ms: number }>(
    `SELECT id, tableoid::regclass::text AS part, (extract(epoch FROM occurred_at) * 1000)::float8 AS occurred_ms
       FROM event WHERE id = ANY($1) ORDER BY id, occurred_at`,
    [ids],
  );
}

export function eventPartitionsContract(
  adapter: string,
  environment: () => Promise<PartitionsEnvironment>,
): void {
  describe(`event partitions: ${adapter}`, () => {
    const withSql = async (t: { after(fn: () => Promise<void>): void }) => {
      const env = await environment();
      t.after(() => env.cleanup());
      return env.sql;
    };
    const now = Date.now();
    const today = dayOf(now);

    test('an id is stored once across days: redelivered, resent with another event time, late, far ahead', async (t) => {
      const sql = await withSql(t);
      const late = now - 6 * DAY_MS;
      const ahead = now + 40 * DAY_MS;
      const first = await persistBatches(sql, [
        batch(0, 0, [
          { id: 'a', receivedMs: now },
          { id: 'late', occurredMs: late, receivedMs: now },
          { id: 'ahead', occurredMs: ahead, receivedMs: now },
        ]),
      ]);
      assert.deepEqual(summary(first).accepted, ['a@0:0', 'late@0:1', 'ahead@0:2']);
      // The days late and ahead had no partition: made for the batch, each row in its day's.
      assert.deepEqual(
        (await rowsOf(sql, ['a', 'late', 'ahead'])).map((r) => `${r.id} ${r.part}`),
        [
          `a ${partitionName(today)}`,
          `ahead ${partitionName(dayOf(ahead))}`,
          `late ${partitionName(dayOf(late))}`,
        ],
      );
      // The same records again (a redelivery): accepted again, stored once.
      const again = await persistBatches(sql, [
        batch(0, 0, [
          { id: 'a', receivedMs: now },
          { id: 'late', occurredMs: late, receivedMs: now },
          { id: 'ahead', occurredMs: ahead, receivedMs: now },
        ]),
      ]);
      assert.deepEqual(summary(again), { accepted: ['a@0:0', 'late@0:1', 'ahead@0:2'], duplicates: [] });
      // Resent by the client two days later, without an event time of its own: its event time
      // (the new received time) is another day, yet the id is stored: a retry, not a second row.
      // So is the late one sent again with another event time (time is not part of the content
      // that tells a retry from a conflict): the first stored is kept.
      const resent = await persistBatches(sql, [
        batch(1, 7, [
          { id: 'a', receivedMs: now + 2 * DAY_MS },
          { id: 'late', occurredMs: late - 3 * DAY_MS, receivedMs: now },
        ]),
      ]);
      assert.deepEqual(summary(resent), { accepted: [], duplicates: ['retry a@1:7', 'retry late@1:8'] });
      const rows = await rowsOf(sql, ['a', 'late', 'ahead']);
      assert.deepEqual(
        rows.map((r) => r.id),
        ['a', 'ahead', 'late'],
      );
      assert.equal(rows.find((r) => r.id === 'late')?.occurred_ms, late, 'the first stored time is kept');
      const [ids] = await sql.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM event_id WHERE id IN ('a', 'late', 'ahead')`,
      );
      assert.equal(ids?.n, 3);
    });

    test('one write holding an id twice on two days keeps the first sight', async (t) => {
      const sql = await withSql(t);
      const outcome = await persistBatches(sql, [
        batch(0, 0, [{ id: 'x', occurredMs: now - DAY_MS, receivedMs: now }]),
        batch(1, 0, [{ id: 'x', occurredMs: now + DAY_MS, receivedMs: now }]),
      ]);
      assert.deepEqual(summary(outcome), { accepted: ['x@0:0'], duplicates: ['retry x@1:0'] });
      assert.deepEqual(
        (await rowsOf(sql, ['x'])).map((r) => r.part),
        [partitionName(today - 1)],
      );
    });

    test('retention drops only whole days past it, with their ids, never today; later days are made ahead', async (t) => {
      const sql = await withSql(t);
      const retentionDays = 3;
      const keepFrom = firstKeptDay(now, retentionDays);
      assert.equal(keepFrom, dayOf(now - 3 * DAY_MS));
      // An event on each of the 10 days before today, and today.
      const specs = Array.from({ length: 11 }, (_, i) => ({
        id: `d${i}`,
        occurredMs: (today - i) * DAY_MS + 3_600_000,
        receivedMs: now,
      }));
      await persistBatches(sql, [batch(0, 0, specs)]);
      const outcome = await maintainEventPartitions(sql, { nowMs: now, retentionDays });
      assert.equal(outcome.ran, true);
      const kept = await eventDays(sql);
      assert.ok(kept.includes(today), 'today is kept');
      assert.ok(
        kept.every((d) => d >= keepFrom),
        `kept ${kept}`,
      );
      for (const d of [today + 1, today + 2, today + 3]) assert.ok(kept.includes(d), `day ${d} made ahead`);
      assert.deepEqual(
        outcome.dropped,
        Array.from({ length: keepFrom - (today - 10) }, (_, i) => today - 10 + i),
      );
      const stored = await sql.query<{ id: string }>('SELECT id FROM event ORDER BY id');
      const ids = await sql.query<{ id: string }>('SELECT id FROM event_id ORDER BY id');
      const expected = specs
        .filter((s) => dayOf(s.occurredMs) >= keepFrom)
        .map((s) => s.id)
        .sort();
      assert.deepEqual(
        stored.map((r) => r.id),
        expected,
      );
      assert.deepEqual(
        ids.map((r) => r.id),
        expected,
      );
      assert.equal(outcome.idsDeleted, specs.length - expected.length);
      // Again: nothing more to drop.
      const second = await maintainEventPartitions(sql, { nowMs: now, retentionDays });
      assert.deepEqual([second.dropped, second.idsDeleted], [[], 0]);
      // Without a retention, nothing is dropped.
      const forever = await maintainEventPartitions(sql, { nowMs: now + 400 * DAY_MS, retentionDays: 0 });
      assert.deepEqual(forever.dropped, []);
      assert.equal((await sql.query('SELECT id FROM event')).length, expected.length);
    });

    test('a retention of one day keeps yesterday and today whole', async (t) => {
      const sql = await withSql(t);
      const justAfterMidnight = today * DAY_MS + 1;
      await persistBatches(sql, [
        batch(0, 0, [
          { id: 'y', occurredMs: justAfterMidnight - 2, receivedMs: justAfterMidnight },
          { id: 't', occurredMs: justAfterMidnight, receivedMs: justAfterMidnight },
          { id: 'old', occurredMs: justAfterMidnight - DAY_MS - 2, receivedMs: justAfterMidnight },
        ]),
      ]);
      const outcome = await maintainEventPartitions(sql, { nowMs: justAfterMidnight, retentionDays: 1 });
      assert.ok(outcome.dropped.includes(today - 2) && !outcome.dropped.includes(today - 1));
      assert.deepEqual(
        (await sql.query<{ id: string }>('SELECT id FROM event ORDER BY id')).map((r) => r.id),
        ['t', 'y'],
      );
    });

    test('an event of a day dropped meanwhile is stored again in that day, made anew', async (t) => {
      const sql = await withSql(t);
      const old = now - 20 * DAY_MS;
      // The persister knows the day (it made it), then the retention drops it.
      await ensureEventDaysOnce(sql, [dayOf(old)]);
      await maintainEventPartitions(sql, { nowMs: now, retentionDays: 10 });
      assert.ok(!(await eventDays(sql)).includes(dayOf(old)));
      const outcome = await persistBatches(sql, [
        batch(0, 0, [{ id: 'o', occurredMs: old, receivedMs: now }]),
      ]);
      assert.deepEqual(summary(outcome).accepted, ['o@0:0']);
      assert.deepEqual(
        (await rowsOf(sql, ['o'])).map((r) => r.part),
        [partitionName(dayOf(old))],
      );
    });

    test('a page of the event log reads only the days of its range', async (t) => {
      const sql = await withSql(t);
      await ensureEventDays(
        sql,
        Array.from({ length: 10 }, (_, i) => today - i),
      );
      const from = (today - 1) * DAY_MS * 1000;
      const plan = await sql.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN SELECT id FROM event
          WHERE user_id = $1 AND occurred_at >= (timestamptz 'epoch' + $2::int8 * interval '1 microsecond')
          ORDER BY occurred_at DESC, id COLLATE "C" DESC LIMIT 100`,
        ['u1', from.toString()],
      );
      const text = plan.map((r) => r['QUERY PLAN']).join('\n');
      const scanned = [...new Set(text.match(/event_p\d{8}/g))].sort();
      // Yesterday's, today's and the days made ahead: none before the range.
      const inRange = (await eventDays(sql)).filter((d) => d >= today - 1).map(partitionName);
      assert.deepEqual(scanned, inRange, text);
      assert.match(text, /Subplans Removed: [1-9]/);
    });
  });
}
