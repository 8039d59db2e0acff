/**
 * The SQL port contract: every adapter (PostgreSQL, PGlite) runs the same
 * statements with the same results. `environment()` gives a fresh schema;
 * `open` may be called again on it (a restart).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { migrate } from './migrate.ts';
import type { SqlDatabase } from './sql-database.ts';

/** Resolves once `condition` holds (checked every 10 ms; the test's timeout bounds it). */
async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}

export interface SqlEnvironment {
  schema: string;
  open(): Promise<SqlDatabase>;
  cleanup(): Promise<void>;
}

export function sqlDatabaseContract(adapter: string, environment: () => Promise<SqlEnvironment>): void {
  describe(`SQL contract: ${adapter}`, () => {
    const withDb = async (t: { after(fn: () => Promise<void>): void }) => {
      const env = await environment();
      const db = await env.open();
      t.after(async () => {
        await db.close();
        await env.cleanup();
      });
      await migrate(db, env.schema);
      return { db, env };
    };

    test('ping answers', async (t) => {
      const { db } = await withDb(t);
      await db.ping();
    });

    test('migrations create the tables once; running them again applies nothing', async (t) => {
      const { db, env } = await withDb(t);
      assert.deepEqual(await migrate(db, env.schema), []);
      // Tables, without the day partitions of `event` (migration 0015).
      const tables = await db.query<{ table_name: string }>(
        `SELECT c.relname AS table_name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname`,
        [env.schema],
      );
      assert.deepEqual(
        tables.map((r) => r.table_name),
        [
          'alert_rule',
          'alert_rule_clock',
          'api_key',
          'consumer_offset',
          'delivery',
          'delivery_attempt',
          'delivery_position',
          'destination',
          'destination_clock',
          'entity',
          'entity_count',
          'event',
          'event_id',
          'event_summary',
          'notification',
          'notification_read',
          'projection',
          'schema_migration',
        ],
      );
    });

    test('migration 0015 turns an unpartitioned event table with rows into days, keeping every row', async (t) => {
      const env = await environment();
      const db = await env.open();
      t.after(async () => {
        await db.close();
        await env.cleanup();
      });
      await migrate(db, env.schema, '0014_order_projection.sql');
      // 3,000 events over 30 days (one id twice would have been refused by the old key too).
      const day = 86_400_000;
      const base = Date.UTC(2025, 0, 1);
      await db.query(
        `INSERT INTO event (id, type, target, user_id, value, occurred_at, received_at, attributes, log_partition, log_offset)
         SELECT 'e' || i, 'like', 'post/' || (i % 7), 'u' || (i % 11), CASE WHEN i % 3 = 0 THEN NULL ELSE i END,
                to_timestamp(($1::float8 + (i % 30) * $2::float8 + i * 1000) / 1000), now(),
                jsonb_build_object('n', i::text), i % 4, i
           FROM generate_series(1, 3000) AS i`,
        [base, day],
      );
      const before = await db.query<{ digest: string; n: number }>(
        `SELECT count(*)::int AS n, md5(string_agg(e::text, ',' ORDER BY id)) AS digest FROM event e`,
      );
      assert.deepEqual(await migrate(db, env.schema, '0015_event_partitions.sql'), [
        '0015_event_partitions.sql',
      ]);
      const after = await db.query<{ digest: string; n: number }>(
        `SELECT count(*)::int AS n, md5(string_agg(e::text, ',' ORDER BY id)) AS digest FROM event e`,
      );
      assert.deepEqual(after, before, 'every row, every column');
      const [ids] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM event_id');
      assert.equal(ids?.n, 3000);
      // Each row in its day's partition, 30 of them for the rows (and the days around today).
      const parts = await db.query<{ part: string; n: number; first: string; last: string }>(
        `SELECT tableoid::regclass::text AS part, count(*)::int AS n,
                to_char(min(occurred_at) AT TIME ZONE 'UTC', 'YYYYMMDD') AS first,
                to_char(max(occurred_at) AT TIME ZONE 'UTC', 'YYYYMMDD') AS last
           FROM event GROUP BY 1 ORDER BY 1`,
      );
      assert.equal(parts.length, 30);
      for (const p of parts)
        assert.ok(p.part === `event_p${p.first}` && p.first === p.last, JSON.stringify(p));
      // The event log's indexes and the key are on the partitioned table.
      const indexes = await db.query<{ name: string }>(
        `SELECT indexname AS name FROM pg_indexes WHERE schemaname = $1 AND tablename = 'event' ORDER BY 1`,
        [env.schema],
      );
      assert.deepEqual(
        indexes.map((i) => i.name),
        [
          'event_pkey',
          'event_target_time_id',
          'event_target_type_time_id',
          'event_user_time_id',
          'event_user_type_time_id',
        ],
      );
      // Stored again, an id is refused by event_id whatever its time.
      const [fresh] = await db.query<{ n: number }>(
        `WITH f AS (INSERT INTO event_id (id, occurred_at) VALUES ('e1', now()) ON CONFLICT (id) DO NOTHING RETURNING 1)
         SELECT count(*)::int AS n FROM f`,
      );
      assert.equal(fresh?.n, 0);
    });

    test('array parameters, unnest, upserts and value types round-trip', async (t) => {
      const { db } = await withDb(t);
      const upsert = `INSERT INTO event_summary (target, hour, type, count, sum_value)
         SELECT t, to_timestamp(h / 1000.0), ty, c, s
           FROM unnest($1::text[], $2::float8[], $3::text[], $4::int8[], $5::float8[]) AS u(t, h, ty, c, s)
         ON CONFLICT (target, hour, type) DO UPDATE SET count = event_summary.count + EXCLUDED.count`;
      // Two rows for one key in one statement are refused by DO UPDATE, on every adapter.
      await assert.rejects(
        db.query(upsert, [
          ['a', 'a'],
          [0, 0],
          ['X', 'X'],
          [1, 1],
          [0, 0],
        ]),
        (error: Error & { code?: string }) => error.code === '21000',
      );
      await db.query(
        `INSERT INTO event_summary (target, hour, type, count, sum_value)
         SELECT t, to_timestamp(h / 1000.0), ty, c, s
           FROM unnest($1::text[], $2::float8[], $3::text[], $4::int8[], $5::float8[]) AS u(t, h, ty, c, s)`,
        [
          ['a', 'b'],
          [3_600_000, 0],
          ['X', 'Y'],
          [2, 4_000_000_000],
          [1.5, -2],
        ],
      );
      const rows = await db.query<{
        target: string;
        hour: Date;
        count: number;
        sum_value: number;
        n: string;
      }>(`SELECT target, hour, count, sum_value, 'x' || count AS n FROM event_summary ORDER BY target`);
      assert.deepEqual(rows, [
        { target: 'a', hour: new Date(3_600_000), count: 2, sum_value: 1.5, n: 'x2' },
        { target: 'b', hour: new Date(0), count: 4_000_000_000, sum_value: -2, n: 'x4000000000' },
      ]);
    });

    test('a transaction commits as a whole or not at all', async (t) => {
      const { db } = await withDb(t);
      await db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES ('kept', 't', 0, 0)`,
        );
      });
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query(
            `INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES ('gone', 't', 0, 0)`,
          );
          throw new Error('abort');
        }),
        /abort/,
      );
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query(
            `INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES ('gone-too', 't', 0, 0)`,
          );
          await tx.query(
            `INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES ('kept', 't', 0, 0)`,
          ); // unique violation
        }),
        (error: Error & { code?: string }) => error.code === '23505',
      );
      const ids = await db.query<{ id: string }>(
        'SELECT group_id AS id FROM consumer_offset ORDER BY group_id',
      );
      assert.deepEqual(ids, [{ id: 'kept' }]);
    });

    test('concurrent transactions locking one row serialize: every increment lands', async (t) => {
      const { db } = await withDb(t);
      await db.query(
        `INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES ('g', 't', 0, 0)`,
      );
      await Promise.all(
        Array.from({ length: 20 }, () =>
          db.transaction(async (tx) => {
            const [row] = await tx.query<{ next_offset: number }>(
              `SELECT next_offset FROM consumer_offset WHERE group_id = 'g' FOR UPDATE`,
            );
            await tx.query(`UPDATE consumer_offset SET next_offset = $1 WHERE group_id = 'g'`, [
              (row?.next_offset ?? 0) + 1,
            ]);
          }),
        ),
      );
      const [row] = await db.reader.query<{ next_offset: number }>(`SELECT next_offset FROM consumer_offset`);
      assert.equal(row?.next_offset, 20);
    });

    test('a reopened database keeps what was committed', async (t) => {
      const env = await environment();
      t.after(() => env.cleanup());
      const first = await env.open();
      await migrate(first, env.schema);
      await first.query(
        `INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES ('durable', 't', 0, 0)`,
      );
      await first.close();
      const second = await env.open();
      t.after(() => second.close());
      assert.deepEqual(await second.query('SELECT group_id AS id FROM consumer_offset'), [{ id: 'durable' }]);
    });

    test('notify reaches the listeners of its channel, in order, until they stop', async (t) => {
      const { db } = await withDb(t);
      const got: string[] = [];
      const other: string[] = [];
      let arrived: () => void = () => {};
      const stop = await db.listen('appended', (payload) => {
        got.push(payload);
        if (got.length === 3) arrived();
      });
      const stopOther = await db.listen('elsewhere', (payload) => other.push(payload));
      t.after(stopOther);
      const all = new Promise<void>((resolve) => {
        arrived = resolve;
      });
      await db.notify('appended', ['a', 'b']);
      await db.notify('appended', []);
      await db.notify('appended', ['x'.repeat(7_900)]);
      await all;
      assert.deepEqual(got, ['a', 'b', 'x'.repeat(7_900)]);
      assert.deepEqual(other, []);
      await stop();
      await db.notify('appended', ['late']);
      await db.notify('elsewhere', ['here']);
      await waitFor(() => other.length === 1);
      assert.deepEqual(got.length, 3, 'a stopped listener gets nothing');
    });

    test('a bad statement rejects with the database error', async (t) => {
      const { db } = await withDb(t);
      await assert.rejects(db.query('SELECT * FROM no_such_table'), (error: Error & { code?: string }) => {
        assert.equal(error.code, '42P01');
        return true;
      });
    });
  });
}
