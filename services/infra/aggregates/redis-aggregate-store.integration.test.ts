/**
 * The aggregate store contract on a standalone Redis and on the 3-master Redis Cluster, and on
 * the embedded adapter, each with every window also checked against a SQL aggregate over the
 * events' rows in the real PostgreSQL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migratedPostgresSchema } from '../../testing/migrated-sql.ts';
import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { deleteRedisKeys } from '../../testing/redis-keys.ts';
import { aggregateStoreContract } from './aggregate-store.contract.ts';
import { createEmbeddedAggregateStore } from './embedded-aggregate-store.ts';
import { createRedisAggregateStore } from './redis-aggregate-store.ts';

await requireRealServers();

aggregateStoreContract('redis', async () => {
  const ns = testNamespace();
  const pg = await migratedPostgresSchema();
  return {
    open: async (options = {}) =>
      createRedisAggregateStore({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix, ...options }),
    cleanup: async () => {
      await deleteRedisKeys(ns.redisPrefix);
      await pg.cleanup();
    },
    sql: pg.sql,
  };
});

// Each series' keys share one slot (its hash tag), so a 3-master Cluster runs the same contract.
aggregateStoreContract('redis cluster', async () => {
  const ns = testNamespace();
  const pg = await migratedPostgresSchema();
  return {
    open: async (options = {}) =>
      createRedisAggregateStore({
        clusterNodes: realServers.redisClusterNodes,
        keyPrefix: ns.redisPrefix,
        ...options,
      }),
    cleanup: async () => {
      await deleteRedisKeys(ns.redisPrefix, 'cluster');
      await pg.cleanup();
    },
    sql: pg.sql,
  };
});

aggregateStoreContract('embedded, against PostgreSQL', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-aggregates-'));
  const pg = await migratedPostgresSchema();
  return {
    open: async (options = {}) => createEmbeddedAggregateStore({ dataDir, ...options }),
    cleanup: async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await pg.cleanup();
    },
    sql: pg.sql,
  };
});
