import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { type AppError, Code } from '../app-error.ts';
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

test('a connection ended by the server inside a transaction fails that transaction, not the process', async () => {
  const { pgSchema: schema } = testNamespace();
  const db = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema, poolSize: 2 });
  const admin = new pg.Client({ connectionString: realServers.pgUrl });
  await admin.connect();
  try {
    let uncaught: unknown;
    const onUncaught = (error: unknown) => {
      uncaught = error;
    };
    process.on('uncaughtException', onUncaught);
    try {
      const failed = db.transaction(async (tx) => {
        const [me] = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        // The server ends this session while it sits idle in the transaction, as a restart would.
        await admin.query('SELECT pg_terminate_backend($1)', [me!.pid]);
        await new Promise((resolve) => setTimeout(resolve, 200));
        await tx.query('SELECT 1');
      });
      await assert.rejects(failed, (error: AppError) => error.code === Code.UNAVAILABLE);
      assert.equal(uncaught, undefined, 'no error escaped as uncaught');
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    // The pool replaced the broken connection.
    assert.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
  } finally {
    await admin.end();
    await db.close();
  }
});
