/**
 * The rate limiter contract on a real Redis and on the 3-master Redis Cluster, plus what only
 * Redis has: the script against the domain's GCRA, the key layout and expiry, and the failure
 * policy with Redis out of reach.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Cluster, Redis } from 'ioredis';
import { burstOf, emissionIntervalUs, gcraTake } from '../../domain/gcra.ts';
import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { deleteRedisKeys } from '../../testing/redis-keys.ts';
import type { Logger } from '../logger.ts';
import { createMetricsRegistry } from '../metrics.ts';
import { rateLimiterContract } from './rate-limiter.contract.ts';
import { failurePolicy, quotaFailurePolicy, type RateLimitPolicy } from './rate-limiter.ts';
import { bucketKey, createRedisRateLimiter, GCRA_SCRIPT, quotaKey } from './redis-rate-limiter.ts';

await requireRealServers();

const clusterNodes = () =>
  realServers.redisClusterNodes.map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) }));

/** Keys under `prefix` on the standalone server, or on every Cluster master. */
async function keysUnder(prefix: string, on: 'standalone' | 'cluster'): Promise<string[]> {
  if (on === 'standalone') {
    const redis = new Redis(realServers.redisUrl);
    try {
      return await redis.keys(`${prefix}:*`);
    } finally {
      await redis.quit();
    }
  }
  const cluster = new Cluster(clusterNodes());
  try {
    if (cluster.status !== 'ready') await new Promise((resolve) => cluster.once('ready', resolve));
    const keys: string[] = [];
    for (const node of cluster.nodes('master')) keys.push(...(await node.keys(`${prefix}:*`)));
    return keys;
  } finally {
    await cluster.quit();
  }
}

for (const on of ['standalone', 'cluster'] as const) {
  const where =
    on === 'standalone' ? { url: realServers.redisUrl } : { clusterNodes: realServers.redisClusterNodes };
  rateLimiterContract(on === 'standalone' ? 'redis' : 'redis cluster', async () => {
    const ns = testNamespace();
    return {
      // Each open is a client of its own: another gateway.
      open: async (options) => createRedisRateLimiter({ ...where, keyPrefix: ns.redisPrefix, ...options }),
      stored: async () => (await keysUnder(ns.redisPrefix, on)).length,
      cleanup: () => deleteRedisKeys(ns.redisPrefix, on),
    };
  });
}

test('the script decides and takes as gcraTake does, on any sequence of takes', async (t) => {
  const redis = new Redis(realServers.redisUrl);
  const ns = testNamespace();
  t.after(async () => {
    await redis.quit();
    await deleteRedisKeys(ns.redisPrefix);
  });
  // The same script with the time given rather than read from Redis.
  const line = 'local now = tonumber(time[1]) * 1000000 + tonumber(time[2])';
  assert.ok(GCRA_SCRIPT.includes(line));
  const script = GCRA_SCRIPT.replace(line, 'local now = tonumber(ARGV[5])');
  const T0 = 1_900_000_000_000_000;
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        limit: fc.integer({ min: 1, max: 2000 }),
        periodMs: fc.constantFrom(100, 1_000, 7_000, 60_000, 3_600_000),
        burst: fc.option(fc.integer({ min: 1, max: 3000 }), { nil: undefined }),
      }),
      fc.array(
        fc.record({
          gapUs: fc.nat(5_000_000),
          least: fc.nat(300),
          extra: fc.oneof(fc.constant(0), fc.nat(400)),
        }),
        {
          minLength: 1,
          maxLength: 40,
        },
      ),
      async (policy, checks) => {
        const key = `${ns.redisPrefix}:diff:${run++}`;
        let now = T0;
        for (const { gapUs, least, extra } of checks) {
          now += gapUs;
          const args = [emissionIntervalUs(policy), burstOf(policy), least, least + extra, now].map(String);
          const [admitted, taken, scriptNow, stored] = (await redis.eval(script, 1, key, ...args)) as [
            number,
            number,
            number,
            string | null,
          ];
          assert.equal(scriptNow, now);
          // (A stored TAT may have expired meanwhile: its expiry runs on Redis's real clock.)
          const expected = gcraTake(
            policy,
            stored === null ? undefined : Number(stored),
            now,
            least,
            least + extra,
          );
          assert.equal(admitted === 1, expected.allowed);
          assert.equal(taken, expected.taken);
          // The script keeps the new TAT; a refused check or a read leaves the key as it was.
          const kept = await redis.get(key);
          if (kept !== null) assert.equal(Number(kept), expected.taken > 0 ? expected.tatUs : Number(stored));
        }
        await redis.del(key);
      },
    ),
    { numRuns: 60 },
  );
});

test('a bucket is one key in one hash slot, gone when full again; a month is one key, gone a day after the month', async (t) => {
  const ns = testNamespace();
  const nowMs = Date.UTC(2030, 11, 15);
  const { limiter, quotas } = createRedisRateLimiter({
    url: realServers.redisUrl,
    keyPrefix: ns.redisPrefix,
    now: () => nowMs,
  });
  const redis = new Redis(realServers.redisUrl);
  t.after(async () => {
    await limiter.close();
    await quotas.close();
    await redis.quit();
    await deleteRedisKeys(ns.redisPrefix);
  });
  const policy: RateLimitPolicy = { name: 'ingest', limit: 1000, periodMs: 60_000 };
  await limiter.check('a}{weird{', policy, 500);
  const keys = await redis.keys(`${ns.redisPrefix}:*`);
  assert.deepEqual(keys, [bucketKey(ns.redisPrefix, 'ingest', 'a}{weird{')]);
  assert.match(keys[0]!, new RegExp(`^${ns.redisPrefix}:rl:\\{[A-Za-z0-9_-]{22}\\}$`));
  // Expires at the TAT: half the bucket is 30 s away.
  const ttl = await redis.pttl(keys[0]!);
  assert.ok(ttl > 29_000 && ttl <= 30_000, `${ttl}`);
  // A TAT in µs, near Redis's clock.
  const [seconds] = await redis.time();
  assert.ok(Math.abs(Number(await redis.get(keys[0]!)) - (Number(seconds) + 30) * 1e6) < 2e6);
  // What Redis holds for an active key.
  const bytes = await redis.call('MEMORY', 'USAGE', keys[0]!);
  assert.ok(typeof bytes === 'number' && bytes < 120, `${bytes} bytes`);

  await quotas.consume('a}{weird{', { name: 'monthly', limit: 10 }, 3);
  const month = quotaKey(ns.redisPrefix, 'monthly', 'a}{weird{', '2030-12');
  assert.match(month, /:q:\{[A-Za-z0-9_-]{22}\}:2030-12$/);
  assert.equal(await redis.get(month), '3');
  assert.equal(await redis.pexpiretime(month), Date.UTC(2031, 0, 2));
});

test('a skewed gateway clock does not matter: the time is Redis’s', async (t) => {
  const ns = testNamespace();
  // Two gateways whose own clocks are an hour apart (only the quotas read them).
  const a = createRedisRateLimiter({
    url: realServers.redisUrl,
    keyPrefix: ns.redisPrefix,
    now: () => Date.now() - 3_600_000,
  });
  const b = createRedisRateLimiter({
    url: realServers.redisUrl,
    keyPrefix: ns.redisPrefix,
    now: () => Date.now() + 3_600_000,
  });
  t.after(async () => {
    for (const x of [a, b]) {
      await x.limiter.close();
      await x.quotas.close();
    }
    await deleteRedisKeys(ns.redisPrefix);
  });
  const policy: RateLimitPolicy = { name: 'read', limit: 10, periodMs: 60_000 };
  assert.equal((await a.limiter.check('k', policy, 6)).remaining, 4);
  const d = await b.limiter.check('k', policy, 5);
  assert.equal(d.allowed, false);
  assert.equal(d.remaining, 4);
  assert.ok(d.retryAfterMs > 5_000 && d.retryAfterMs <= 6_000, `${d.retryAfterMs}`);
});

describe('Redis out of reach', () => {
  const policy: RateLimitPolicy = { name: 'ingest', limit: 10, periodMs: 60_000 };
  for (const on of ['standalone', 'cluster'] as const) {
    const where = on === 'standalone' ? { url: 'redis://127.0.0.1:1' } : { clusterNodes: ['127.0.0.1:1'] };
    test(`${on}: failing open admits, failing closed refuses; neither throws; counted and logged once`, async (t) => {
      const { limiter, quotas } = createRedisRateLimiter({
        ...where,
        keyPrefix: 'unreachable',
        timeoutMs: 200,
      });
      t.after(async () => {
        await limiter.close();
        await quotas.close();
      });
      // The adapter itself rejects with UNAVAILABLE.
      await assert.rejects(limiter.check('k', policy, 1), (e: Error & { code?: number }) => e.code === 14);
      for (const mode of ['open', 'closed'] as const) {
        const registry = createMetricsRegistry({ defaultMetrics: false });
        const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
        const logger = {
          warn: (msg: string, fields?: Record<string, unknown>) => lines.push({ msg, fields }),
        } as unknown as Logger;
        const guarded = failurePolicy(limiter, { mode, logger, metrics: registry });
        const guardedQuotas = quotaFailurePolicy(quotas, { mode, logger, metrics: registry });
        const started = performance.now();
        const decisions = await Promise.all(
          Array.from({ length: 20 }, (_, i) => guarded.check(`k${i}`, policy, 1)),
        );
        const quota = await guardedQuotas.consume('k', { name: 'monthly', limit: 10 }, 1);
        const elapsedMs = performance.now() - started;
        assert.ok(elapsedMs < 2_000, `answered within ${elapsedMs} ms`);
        for (const d of [...decisions, quota]) {
          assert.equal(d.allowed, mode === 'open');
          assert.equal(d.reason, 'unavailable');
          assert.equal(d.retryAfterMs, mode === 'open' ? 0 : 5_000);
        }
        const errors = await registry.getSingleMetric('tally_rate_limit_backend_errors_total')!.get();
        assert.equal(errors.values[0]?.value, 21);
        const limited = await registry.getSingleMetric('tally_rate_limited_total')!.get();
        assert.deepEqual(
          limited.values.map((v) => [v.labels.limit, v.value]),
          mode === 'open'
            ? []
            : [
                ['ingest', 20],
                ['monthly', 1],
              ],
        );
        // One line for the rate limits, one for the quotas; not one per request.
        assert.equal(lines.length, 2, JSON.stringify(lines.map((l) => l.msg)));
        assert.match(lines[0]!.msg, mode === 'open' ? /admitting/ : /refusing/);
      }
    });
  }
});
