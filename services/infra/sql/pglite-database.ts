/**
 * PostgreSQL in the process, for the embedded mode: PGlite (Postgres compiled
 * to WebAssembly), file-backed under `dataDir`. Same SQL as the server; one
 * connection, so statements and transactions run one at a time.
 */
import { mkdirSync } from 'node:fs';
import { PGlite, types } from '@electric-sql/pglite';
import type { SqlDatabase, SqlExecutor } from './sql-database.ts';

export interface PgliteDatabaseOptions {
  dataDir: string;
  /** Schema every statement uses (search_path); created if missing. */
  schema: string;
}

export async function createPgliteDatabase(options: PgliteDatabaseOptions): Promise<SqlDatabase> {
  mkdirSync(options.dataDir, { recursive: true });
  const db = new PGlite(options.dataDir, {
    // Counts fit in a double, as with the pg adapter.
    parsers: { [types.INT8]: (value: string) => Number(value) },
  });
  await db.waitReady;
  await db.exec(`CREATE SCHEMA IF NOT EXISTS "${options.schema}"; SET search_path TO "${options.schema}"`);

  const query: SqlExecutor['query'] = async (text, params) =>
    (await db.query(text, params as unknown[] | undefined)).rows as never;

  const exec = async (script: string) => void (await db.exec(script));
  return {
    description: `embedded (PGlite in ${options.dataDir}, schema ${options.schema})`,
    query,
    exec,
    reader: { query, exec },
    transaction: (work) =>
      db.transaction((tx) =>
        work({
          query: async (text, params) =>
            (await tx.query(text, params as unknown[] | undefined)).rows as never,
          exec: async (script) => void (await tx.exec(script)),
        }),
      ),
    async close() {
      await db.close();
    },
  };
}
