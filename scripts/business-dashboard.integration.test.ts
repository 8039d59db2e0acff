/**
 * The business dashboard's SQL (observability/dashboards/business.ts) against a real PostgreSQL:
 * a schema migrated with Tally's migrations, seeded with known hourly summaries, and each
 * PostgreSQL panel's and variable's query, as Grafana would send it (observability/grafana-sql.ts
 * substitutes its macros and variables, and fails on any it does not reproduce), returns exactly
 * the rows the seed implies. `now()` is pinned to a fixed instant (a `now()` of the test's schema,
 * ahead of pg_catalog on the search path) just after midnight UTC on the 2nd of a month, and the
 * queries run in several session time zones: days and months are UTC whatever the data source's
 * zone. Every query reads event_summary through an index on hour, never by a sequential scan.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TOP_TARGETS } from '../observability/dashboards/business.ts';
import { POSTGRES } from '../observability/dashboards/panels.ts';
import { type GrafanaSqlContext, interpolateGrafanaSql } from '../observability/grafana-sql.ts';
import { type DashboardSqlQuery, sqlQueries } from '../observability/inspect.ts';
import { OBSERVABILITY_DIR } from '../observability/render.ts';
import type { SqlExecutor } from '../services/infra/sql/sql-database.ts';
import { type MigratedSql, migratedPostgresSchema } from '../services/testing/migrated-sql.ts';

/** The instant `now()` returns: 01:30 UTC on 2 March, 20:30 on 1 March in New York. */
const NOW = '2025-03-02T01:30:00Z';
/** The dashboard's time range: its first hour (22:00) begins before it, so is left out. */
const RANGE = { from: new Date('2025-02-28T22:30:00Z'), to: new Date(NOW) };
/** The types picked in the dashboard: `share` is summarized too, but not picked. */
const PICKED = ['like', 'view'];
/** Session time zones the queries must not depend on. */
const ZONES = ['UTC', 'America/New_York', 'Asia/Kolkata'];

type Summary = [target: string, hour: string, type: string, count: number, sumValue: number];
const SEED: Summary[] = [
  ['page/old', '2025-01-15T12:00:00Z', 'old', 1, 0], // a type seen only long ago: not offered
  ['page/a', '2025-02-28T22:00:00Z', 'view', 4, 0.5], // its hour begins before the range
  ['page/a', '2025-02-28T23:00:00Z', 'view', 5, 1.5], // last month, in the range
  ['page/a', '2025-03-01T00:00:00Z', 'view', 7, 0], // the month's first UTC hour (28 Feb in New York)
  ['page/b', '2025-03-01T00:00:00Z', 'view', 9, 2],
  ['page/f', '2025-03-01T05:00:00Z', 'like', 2, 0],
  // Eight targets counted once: with page/a, b and c, 11 views this month, one more than the top.
  ...Array.from({ length: 8 }, (_, i): Summary => [`page/v${i + 1}`, '2025-03-01T10:00:00Z', 'view', 1, 0]),
  ['page/b', '2025-03-01T23:00:00Z', 'like', 2, 0], // yesterday in UTC, today in New York
  ['page/c', '2025-03-02T00:00:00Z', 'view', 3, 0], // the day's first UTC hour
  ['page/a', '2025-03-02T01:00:00Z', 'view', 1, 0.25], // the current hour
  ['page/c', '2025-03-02T01:00:00Z', 'like', 6, 2.5],
  ['page/d', '2025-03-02T01:00:00Z', 'share', 8, 0], // not picked
];

const at = (iso: string) => new Date(iso);
const top = (type: string, rank: number, target: string, events: number) => ({ type, rank, target, events });

/** The rows each query must return, by panel title (`variable <name>` for a variable). */
const EXPECTED: Record<string, object[]> = {
  'variable type': [{ type: 'like' }, { type: 'share' }, { type: 'view' }],
  'Events today, by type': [
    { time: at('2025-03-02T00:00:00Z'), metric: 'like', events: 6 },
    { time: at('2025-03-02T00:00:00Z'), metric: 'view', events: 3 + 1 },
  ],
  'Events this month, by type': [
    { time: at('2025-03-01T00:00:00Z'), metric: 'like', events: 2 + 2 + 6 },
    { time: at('2025-03-01T00:00:00Z'), metric: 'view', events: 7 + 9 + 8 + 3 + 1 },
  ],
  [`Top ${TOP_TARGETS} targets today, by type`]: [
    top('like', 1, 'page/c', 6),
    top('view', 1, 'page/c', 3),
    top('view', 2, 'page/a', 1),
  ],
  [`Top ${TOP_TARGETS} targets this month, by type`]: [
    top('like', 1, 'page/c', 6),
    // Equal counts: the target later in code unit order first, as TopTargets ranks them.
    top('like', 2, 'page/f', 2),
    top('like', 3, 'page/b', 2),
    top('view', 1, 'page/b', 9),
    top('view', 2, 'page/a', 7 + 1),
    top('view', 3, 'page/c', 3),
    // page/v8 … page/v2; page/v1 is the 11th.
    ...Array.from({ length: 7 }, (_, i) => top('view', 4 + i, `page/v${8 - i}`, 1)),
  ],
  'Events per hour, by type': [
    { time: at('2025-02-28T23:00:00Z'), metric: 'view', events: 5 },
    { time: at('2025-03-01T00:00:00Z'), metric: 'view', events: 7 + 9 },
    { time: at('2025-03-01T05:00:00Z'), metric: 'like', events: 2 },
    { time: at('2025-03-01T10:00:00Z'), metric: 'view', events: 8 },
    { time: at('2025-03-01T23:00:00Z'), metric: 'like', events: 2 },
    { time: at('2025-03-02T00:00:00Z'), metric: 'view', events: 3 },
    { time: at('2025-03-02T01:00:00Z'), metric: 'like', events: 6 },
    { time: at('2025-03-02T01:00:00Z'), metric: 'view', events: 1 },
  ],
  'Sum of event values per hour, by type': [
    { time: at('2025-02-28T23:00:00Z'), metric: 'view', 'sum of values': 1.5 },
    { time: at('2025-03-01T00:00:00Z'), metric: 'view', 'sum of values': 2 },
    { time: at('2025-03-01T05:00:00Z'), metric: 'like', 'sum of values': 0 },
    { time: at('2025-03-01T10:00:00Z'), metric: 'view', 'sum of values': 0 },
    { time: at('2025-03-01T23:00:00Z'), metric: 'like', 'sum of values': 0 },
    { time: at('2025-03-02T00:00:00Z'), metric: 'view', 'sum of values': 0 },
    { time: at('2025-03-02T01:00:00Z'), metric: 'like', 'sum of values': 2.5 },
    { time: at('2025-03-02T01:00:00Z'), metric: 'view', 'sum of values': 0.25 },
  ],
};

const dashboard = JSON.parse(
  readFileSync(join(OBSERVABILITY_DIR, 'dashboards', 'json', 'tally-business.json'), 'utf8'),
);
const queries: DashboardSqlQuery[] = sqlQueries(dashboard, POSTGRES.type!);
const context: GrafanaSqlContext = { ...RANGE, variables: { type: PICKED } };

let db: MigratedSql;
let schema: string;

before(async () => {
  db = await migratedPostgresSchema();
  [{ schema }] = (await db.sql.query<{ schema: string }>('SELECT current_schema() AS schema')) as [
    { schema: string },
  ];
  // The fixed clock: found before pg_catalog.now() when the schema comes first on the search path.
  await db.sql.exec(
    `CREATE FUNCTION "${schema}".now() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT timestamptz '${NOW}' $$`,
  );
  await db.sql.query(
    `INSERT INTO event_summary (target, hour, type, count, sum_value)
     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bigint[], $5::float8[])`,
    [0, 1, 2, 3, 4].map((column) => SEED.map((row) => row[column])),
  );
  await db.sql.exec('ANALYZE event_summary');
});

after(async () => {
  await db?.cleanup();
});

/** Runs `work` in a transaction with the fixed clock and the session time zone `zone`. */
function atNow<T>(zone: string, work: (tx: SqlExecutor) => Promise<T>, settings: string[] = []): Promise<T> {
  return db.sql.transaction(async (tx) => {
    await tx.query(`SET LOCAL search_path = "${schema}", pg_catalog`);
    await tx.query(`SET LOCAL TimeZone = '${zone}'`);
    for (const setting of settings) await tx.query(`SET LOCAL ${setting}`);
    return work(tx);
  });
}

test('the clock is fixed and the seed is in place', async () => {
  const [row] = await atNow('America/New_York', (tx) =>
    tx.query<{ now: Date; summaries: number }>(
      'SELECT now() AS now, (SELECT count(*)::int FROM event_summary) AS summaries',
    ),
  );
  assert.deepEqual(row, { now: new Date(NOW), summaries: SEED.length });
});

test('every PostgreSQL query of the business dashboard has the rows it must return here', () => {
  assert.deepEqual(queries.map((q) => q.panel).sort(), Object.keys(EXPECTED).sort());
});

for (const zone of ZONES)
  test(`each PostgreSQL query returns exactly the rows of the seed (session time zone ${zone})`, async () => {
    for (const q of queries) {
      const sql = interpolateGrafanaSql(q.sql, context);
      const rows = await atNow(zone, (tx) => tx.query(sql)).catch((error: Error) => {
        throw new Error(`${q.panel}: ${error.message}\n${sql}`);
      });
      assert.deepEqual(rows, EXPECTED[q.panel], `${q.panel}\n${sql}`);
    }
  });

/** The plan nodes of an EXPLAIN (FORMAT JSON) that read `relation`. */
function scansOf(plan: PlanNode, relation: string): PlanNode[] {
  const own = plan['Relation Name'] === relation ? [plan] : [];
  return [...own, ...(plan.Plans ?? []).flatMap((p) => scansOf(p, relation))];
}
interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  Plans?: PlanNode[];
}

test('each query reads event_summary by an index led by hour, bounded by hour, never a sequential scan', async () => {
  // The indexes whose first column is hour (migration 0006: event_summary_hour).
  const byHour = (
    await db.sql.query<{ name: string }>(
      `SELECT i.relname AS name
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_attribute a
           ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
        WHERE x.indrelid = 'event_summary'::regclass AND a.attname = 'hour'`,
    )
  ).map((r) => r.name);
  assert.deepEqual(byHour, ['event_summary_hour']);
  for (const q of queries) {
    const sql = interpolateGrafanaSql(q.sql, context);
    // With sequential scans priced out, the planner takes an index whenever the query allows one.
    const [
      {
        'QUERY PLAN': [{ Plan: plan }],
      },
    ] = (await atNow('UTC', (tx) => tx.query(`EXPLAIN (FORMAT JSON) ${sql}`), ['enable_seqscan = off'])) as [
      { 'QUERY PLAN': [{ Plan: PlanNode }] },
    ];
    const scans = scansOf(plan, 'event_summary');
    assert.ok(scans.length > 0, `${q.panel}: no scan of event_summary in ${JSON.stringify(plan)}`);
    for (const scan of scans)
      assert.ok(
        byHour.includes(scan['Index Name'] ?? '') && /\bhour\b/.test(scan['Index Cond'] ?? ''),
        `${q.panel}: reads event_summary by ${scan['Node Type']} ${scan['Index Name'] ?? ''} ${scan['Index Cond'] ?? ''}`,
      );
  }
});
