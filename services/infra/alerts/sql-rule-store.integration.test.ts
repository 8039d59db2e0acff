import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { migrate } from '../sql/migrate.ts';
import { createPgDatabase } from '../sql/pg-database.ts';
import { ruleStoreContract } from './rule-store.contract.ts';

await requireRealServers();

ruleStoreContract('PostgreSQL', async () => {
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
});
