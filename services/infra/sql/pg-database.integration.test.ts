import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { createPgDatabase } from './pg-database.ts';
import { sqlDatabaseContract } from './sql-database.contract.ts';

await requireRealServers();

sqlDatabaseContract('PostgreSQL', async () => {
  const { pgSchema: schema } = testNamespace();
  const open = async () => createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema, poolSize: 4 });
  return {
    schema,
    open,
    cleanup: async () => {
      const db = await open();
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await db.close();
    },
  };
});
