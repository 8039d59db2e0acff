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

/**
 * Opens the database in the background and returns at once: a first start initialises a data
 * directory, which takes seconds, and the roles that need no SQL should not wait for it. Each
 * call waits for the opening; a failed opening fails every call with its error.
 */
export async function createPgliteDatabase(options: PgliteDatabaseOptions): Promise<SqlDatabase> {
  mkdirSync(options.dataDir, { recursive: true });
  const db = new PGlite(options.dataDir, {
    // Counts fit in a double, as with the pg adapter.
    parsers: { [types.INT8]: (value: string) => Number(value) },
  });
  const opening = (async () => {
    await db.waitReady;
    await db.exec(`CREATE SCHEMA IF NOT EXISTS "${options.schema}"; SET search_path TO "${options.schema}"`);
  })();
  opening.catch(() => {}); // reported by every call

  const query: SqlExecutor['query'] = async (text, params) => {
    await opening;
    return (await db.query(text, params as unknown[] | undefined)).rows as never;
  };

  const exec = async (script: string) => {
    await opening;
    await db.exec(script);
  };
  return {
    description: `embedded (PGlite in ${options.dataDir}, schema ${options.schema})`,
    query,
    exec,
    reader: { query, exec },
    transaction: async (work) => {
      await opening;
      return db.transaction((tx) =>
        work({
          query: async (text, params) =>
            (await tx.query(text, params as unknown[] | undefined)).rows as never,
          exec: async (script) => void (await tx.exec(script)),
        }),
      );
    },
    async close() {
      await opening.catch(() => {});
      await db.close();
    },
  };
}
