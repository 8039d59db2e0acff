import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { buildDayReport, HOUR_MS, type HourTypeTotal } from '../domain/report.ts';
import { createEmbeddedCounterStore } from '../infra/counters/embedded-counter-store.ts';
import { migrate } from '../infra/sql/migrate.ts';
import { createPgliteDatabase } from '../infra/sql/pglite-database.ts';
import { queryContract } from './query.contract.ts';

// initdb and the migrations take seconds: once, and each test gets a copy.
const template = mkdtempSync(join(tmpdir(), 'tally-query-template-'));
{
  const db = await createPgliteDatabase({ dataDir: template, schema: 'tally' });
  await migrate(db, 'tally');
  await db.close();
}
after(() => rmSync(template, { recursive: true, force: true }));

queryContract('embedded (PGlite, in-memory counters)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-query-'));
  cpSync(template, join(dir, 'pg'), { recursive: true });
  const sql = await createPgliteDatabase({ dataDir: join(dir, 'pg'), schema: 'tally' });
  const counters = createEmbeddedCounterStore({ dataDir: join(dir, 'counters') });
  return {
    sql,
    counters,
    cleanup: async () => {
      await Promise.all([sql.close(), counters.close()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

/** The day report by its definition, one lookup per (hour, type): what GetReport must answer. */
function dayReportByDefinition(dayStartMs: number, rows: readonly HourTypeTotal[]) {
  const types = [...new Set(rows.map((r) => r.type))].sort();
  const byHourType = new Map<string, { count: number; sum: number }>();
  for (const row of rows) {
    const hour = Math.floor((row.hourStartMs - dayStartMs) / HOUR_MS);
    if (hour < 0 || hour > 23) continue;
    const key = `${hour}\u0000${row.type}`;
    const seen = byHourType.get(key);
    byHourType.set(key, seen ? { count: seen.count + row.count, sum: seen.sum + row.sum } : row);
  }
  return {
    hours: Array.from({ length: 24 }, (_, hour) => ({
      hour,
      counts: types.map((type) => {
        const total = byHourType.get(`${hour}\u0000${type}`);
        return { type, count: total?.count ?? 0, sum: total?.sum ?? 0 };
      }),
    })),
  };
}

test('the day report is its definition, for any rows (several per cell, outside the day, any order)', () => {
  const day = Date.UTC(2026, 10, 22);
  const row = fc.record({
    hourStartMs: fc.oneof(
      fc.integer({ min: -2, max: 25 }).map((h) => day + h * HOUR_MS),
      fc.integer({ min: -HOUR_MS, max: 25 * HOUR_MS }).map((ms) => day + ms),
    ),
    type: fc.constantFrom('VIEW', 'CLICK', 'like', 'Like', 'a', 'b10', 'b2', 'transaction'),
    count: fc.integer({ min: 0, max: 2 ** 40 }),
    sum: fc.oneof(fc.constant(0), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e9, max: 1e9 })),
  });
  fc.assert(
    fc.property(fc.array(row, { maxLength: 120 }), (rows) => {
      assert.deepEqual(buildDayReport(day, rows), dayReportByDefinition(day, rows));
    }),
    { numRuns: 500 },
  );
});
