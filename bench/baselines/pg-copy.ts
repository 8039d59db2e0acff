/**
 * Baseline: PostgreSQL's COPY of the very rows the persister wrote to `event`, into a table of
 * the same definition (`LIKE event INCLUDING ALL`: a plain table with the key (id, occurred_at) and
 * the event log's four indexes; neither the day partitions nor `event_id`), through psql's \copy
 * (client side, as an application would stream it).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';

const run = promisify(execFile);

export interface PgCopyResult {
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  bytes: number;
}

/** psql on PATH, else the newest PostgreSQL's. */
export function psqlPath(): string {
  for (const dir of (process.env.PATH ?? '').split(':'))
    if (dir && existsSync(join(dir, 'psql'))) return join(dir, 'psql');
  const root = '/usr/lib/postgresql';
  if (existsSync(root))
    for (const v of readdirSync(root).sort((a, b) => Number(b) - Number(a)))
      if (existsSync(join(root, v, 'bin', 'psql'))) return join(root, v, 'bin', 'psql');
  throw new Error('psql not found: install PostgreSQL client tools (scripts/install-deps.sh)');
}

/** Copies up to `maxRows` rows of `<schema>.event` out and back into a twin table; times the copy in. */
export async function runPgCopy(
  pool: pg.Pool,
  pgUrl: string,
  schema: string,
  maxRows: number,
): Promise<PgCopyResult | undefined> {
  const psql = psqlPath();
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-copy-'));
  const file = join(dir, 'event.copy');
  const sql = (command: string) =>
    run(psql, [pgUrl, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', command], { maxBuffer: 1 << 20 });
  try {
    const [{ n }] = (await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM event')).rows as [
      { n: string },
    ];
    const rows = Math.min(Number(n), maxRows);
    if (rows === 0) return undefined;
    await sql(`\\copy (SELECT * FROM ${schema}.event LIMIT ${rows}) TO '${file}'`);
    await pool.query(`DROP TABLE IF EXISTS ${schema}.event_copy`);
    await pool.query(`CREATE TABLE ${schema}.event_copy (LIKE ${schema}.event INCLUDING ALL)`);
    // psql's own start and connection, subtracted from the copy's wall time.
    const t0 = performance.now();
    await sql('SELECT 1');
    const overhead = performance.now() - t0;
    const t1 = performance.now();
    await sql(`\\copy ${schema}.event_copy FROM '${file}'`);
    const seconds = Math.max(0.001, (performance.now() - t1 - overhead) / 1000);
    const [{ copied }] = (
      await pool.query<{ copied: string }>(`SELECT count(*)::text AS copied FROM ${schema}.event_copy`)
    ).rows as [{ copied: string }];
    await pool.query(`DROP TABLE ${schema}.event_copy`);
    return {
      rows: Number(copied),
      seconds,
      rowsPerSecond: Number(copied) / seconds,
      bytes: statSync(file).size,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
