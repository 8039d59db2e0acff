/**
 * Applies the SQL files of ./migrations in name order, each once, under an
 * advisory lock so that concurrent starts do not race.
 */
import { readdir, readFile } from 'node:fs/promises';
import type { SqlDatabase } from './sql-database.ts';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);
const LOCK_KEY = 7_245_001; // arbitrary, constant: "tally migrations"

/**
 * Creates `schema` if needed and applies pending migrations; returns the names applied. `until`
 * (a file name) stops after that migration: tests of a later migration's conversion use it.
 */
export async function migrate(db: SqlDatabase, schema: string, until?: string): Promise<string[]> {
  const files = (await readdir(MIGRATIONS_DIR))
    .filter((f) => f.endsWith('.sql') && (until === undefined || f <= until))
    .sort();
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await tx.query(`SET LOCAL search_path TO "${schema}"`);
    await tx.query(
      'CREATE TABLE IF NOT EXISTS schema_migration (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set(
      (await tx.query<{ name: string }>('SELECT name FROM schema_migration')).map((r) => r.name),
    );
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      await tx.exec(await readFile(new URL(file, MIGRATIONS_DIR), 'utf8'));
      await tx.query('INSERT INTO schema_migration (name) VALUES ($1)', [file]);
      applied.push(file);
    }
    return applied;
  });
}
