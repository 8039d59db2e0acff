/**
 * Migrated SQL databases for the stores' contracts: a PGlite copy of a template migrated once per
 * test file (initdb and the migrations take seconds), or a fresh schema on the real PostgreSQL.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { migrate } from '../infra/sql/migrate.ts';
import { createPgDatabase } from '../infra/sql/pg-database.ts';
import { createPgliteDatabase } from '../infra/sql/pglite-database.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { realServers, testNamespace } from './real-servers.ts';

export interface MigratedSql {
  sql: SqlDatabase;
  cleanup(): Promise<void>;
}

/**
 * A function giving each call its own copy of a PGlite database migrated once, at the first
 * call; the template is removed after the file's tests. `name` marks the temporary directories.
 */
export function migratedPgliteCopies(name: string): () => Promise<MigratedSql> {
  // Made and its removal registered now, at the file's top level (an `after` registered inside a
  // test would run when that test ends); migrated at the first call.
  const dir = mkdtempSync(join(tmpdir(), `tally-${name}-template-`));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let template: Promise<string> | undefined;
  const migrated = async () => {
    const first = await createPgliteDatabase({ dataDir: dir, schema: 'tally' });
    await migrate(first, 'tally');
    await first.close();
    return dir;
  };
  return async () => {
    template ??= migrated();
    const copy = mkdtempSync(join(tmpdir(), `tally-${name}-`));
    cpSync(await template, copy, { recursive: true });
    const sql = await createPgliteDatabase({ dataDir: copy, schema: 'tally' });
    return {
      sql,
      cleanup: async () => {
        await sql.close();
        rmSync(copy, { recursive: true, force: true });
      },
    };
  };
}

/** A migrated schema of its own on the real PostgreSQL, dropped by `cleanup`. */
export async function migratedPostgresSchema(): Promise<MigratedSql> {
  const { pgSchema: schema } = testNamespace();
  const sql = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema, poolSize: 4 });
  await migrate(sql, schema);
  return {
    sql,
    cleanup: async () => {
      await sql.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await sql.close();
    },
  };
}
