/**
 * Rate limits on the real servers: the contract (rate-limits.contract.ts) with two gateway
 * processes sharing Kafka, PostgreSQL and Redis — standalone, and again with the limiter on the
 * 3-master Redis Cluster — and the failure tests with the limiter pointed at a closed port (the
 * shared Redis is never stopped).
 */
import { before } from 'node:test';
import { rateLimitContract } from './rate-limits.contract.ts';
import { realServers, requireRealServers, testNamespace } from './testing/real-servers.ts';
import { freePort } from './testing/tally-process.ts';

before(async () => {
  await requireRealServers();
});

for (const on of ['standalone', 'cluster'] as const)
  rateLimitContract(`real servers, Redis ${on}`, {
    roles: ['gateway', 'ingest', 'query'],
    gateways: 2,
    async place() {
      const { env } = testNamespace(2);
      if (on === 'standalone') return env;
      const { TALLY_REDIS_URL: _, ...rest } = env;
      return { ...rest, TALLY_REDIS_CLUSTER_NODES: realServers.redisClusterNodes.join(',') };
    },
    unreachableRedis: async () => ({ TALLY_RATE_LIMIT_REDIS_URL: `redis://127.0.0.1:${await freePort()}` }),
  });
