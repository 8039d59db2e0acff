import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { createPgliteDatabase } from './pglite-database.ts';
import { sqlDatabaseContract } from './sql-database.contract.ts';

// initdb takes seconds: do it once, and give each test a copy.
const template = mkdtempSync(join(tmpdir(), 'tally-pglite-template-'));
await (await createPgliteDatabase({ dataDir: template, schema: 'tally' })).close();
after(() => rmSync(template, { recursive: true, force: true }));

sqlDatabaseContract('PGlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-pglite-'));
  cpSync(template, dir, { recursive: true });
  return {
    schema: 'tally',
    open: () => createPgliteDatabase({ dataDir: dir, schema: 'tally' }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
