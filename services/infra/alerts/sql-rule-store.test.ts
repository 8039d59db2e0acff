import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { migrate } from '../sql/migrate.ts';
import { createPgliteDatabase } from '../sql/pglite-database.ts';
import { ruleStoreContract } from './rule-store.contract.ts';

// initdb and the migrations take seconds: do them once, and give each test a copy.
const template = mkdtempSync(join(tmpdir(), 'tally-alerts-template-'));
const first = await createPgliteDatabase({ dataDir: template, schema: 'tally' });
await migrate(first, 'tally');
await first.close();
after(() => rmSync(template, { recursive: true, force: true }));

ruleStoreContract('PGlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-alerts-'));
  cpSync(template, dir, { recursive: true });
  const sql = await createPgliteDatabase({ dataDir: dir, schema: 'tally' });
  return {
    sql,
    cleanup: async () => {
      await sql.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
