/**
 * Seeds the hourly summaries GetReport reads (`event_summary`) with past days of the load tests'
 * targets, in bulk: generate_series into the table without its primary key, then the key is
 * built once (a sorted build instead of millions of index insertions), then VACUUM ANALYZE.
 * Run it before anything else writes to the schema.
 */
import type pg from 'pg';

export interface SeedOptions {
  /** Targets of each family (pages, posts, merchants), as the k6 mix names them. */
  targetsPerFamily: number;
  /** Whole UTC days before today. */
  days: number;
}

export interface SeedResult {
  rows: number;
  /** Events the rows summarise (sum of their counts). */
  events: number;
  seconds: number;
  /** First and last seeded dates, YYYY-MM-DD. */
  firstDate: string;
  lastDate: string;
  targetsPerFamily: number;
  tableBytes: number;
}

/**
 * Per family: target name prefix and (type, weight) pairs; the weight scales the counts of
 * popular targets (count = 1..4, plus 24·weight/√rank).
 */
const FAMILY_SQL = `(VALUES
  ('https://shop.example/p/', 'VIEW', 0.8, false), ('https://shop.example/p/', 'CLICK', 0.2, false),
  ('post/', 'like', 0.75, false), ('post/', 'comment', 0.17, false), ('post/', 'share', 0.08, false),
  ('merchant/', 'transaction', 1.0, true)) AS f(prefix, type, weight, valued)`;

export async function seedReportTable(pool: pg.Pool, options: SeedOptions): Promise<SeedResult> {
  const started = performance.now();
  const today = new Date();
  const todayMs = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate());
  const firstMs = todayMs - options.days * 86_400_000;
  const client = await pool.connect();
  try {
    await client.query('SET synchronous_commit = off');
    // The key as the migrations define it (it carries count and sum_value), to be rebuilt as is.
    const [key] = (
      await client.query<{ conname: string; definition: string }>(
        `SELECT conname, pg_get_constraintdef(oid) AS definition
           FROM pg_constraint WHERE conrelid = 'event_summary'::regclass AND contype = 'p'`,
      )
    ).rows;
    if (key) await client.query(`ALTER TABLE event_summary DROP CONSTRAINT ${key.conname}`);
    await client.query(
      `INSERT INTO event_summary (target, hour, type, count, sum_value, last_update)
       SELECT f.prefix || k, to_timestamp($1 / 1000.0) + h * interval '1 hour', f.type, c.n,
              CASE WHEN f.valued THEN round((c.n * (10 + random() * 30))::numeric, 2)::float8 ELSE 0 END,
              now()
         FROM ${FAMILY_SQL}
        CROSS JOIN generate_series(1, $2::int) AS k
        CROSS JOIN generate_series(0, $3::int * 24 - 1) AS h
        CROSS JOIN LATERAL (SELECT 1 + floor(random() * 4)::int + floor(24 * f.weight / sqrt(k))::int AS n) c`,
      [firstMs, options.targetsPerFamily, options.days],
    );
    await client.query(
      `ALTER TABLE event_summary ADD CONSTRAINT ${key?.conname ?? 'event_summary_pkey'} ${
        key?.definition ?? 'PRIMARY KEY (target, hour, type)'
      }`,
    );
    // VACUUM marks the pages all-visible, so a report is the index-only scan it is in production.
    await client.query('VACUUM ANALYZE event_summary');
    const [stats] = (
      await client.query<{ rows: string; events: string; bytes: string }>(
        `SELECT count(*)::text AS rows, coalesce(sum(count), 0)::text AS events,
                pg_total_relation_size('event_summary')::text AS bytes FROM event_summary`,
      )
    ).rows;
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    return {
      rows: Number(stats!.rows),
      events: Number(stats!.events),
      seconds: (performance.now() - started) / 1000,
      firstDate: day(firstMs),
      lastDate: day(todayMs - 86_400_000),
      targetsPerFamily: options.targetsPerFamily,
      tableBytes: Number(stats!.bytes),
    };
  } finally {
    client.release();
  }
}
