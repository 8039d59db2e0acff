/**
 * The counter store contract on a real Redis, plus what only Redis has: the
 * hash-slot layout that keeps each target's script valid on Redis Cluster.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { deleteRedisKeys } from '../../testing/redis-keys.ts';
import { counterStoreContract, inPartition } from './counter-store.contract.ts';
import { UNIQUES_RETENTION_MS, WINDOW_RETENTION_MS } from './counter-store.ts';
import { createRedisCounterStore } from './redis-counter-store.ts';

await requireRealServers();

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

counterStoreContract('redis', async () => {
  const ns = testNamespace();
  return {
    open: async (options) =>
      createRedisCounterStore({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix, ...options }),
    cleanup: () => deleteRedisKeys(ns.redisPrefix),
  };
});

/** A store in a namespace of its own, a plain client beside it, and their clean-up after `t`. */
function storeAndClient(t: { after(fn: () => Promise<void>): void }) {
  const ns = testNamespace();
  const store = createRedisCounterStore({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix });
  const redis = new Redis(realServers.redisUrl);
  t.after(async () => {
    await store.close();
    await redis.quit();
    await deleteRedisKeys(ns.redisPrefix);
  });
  return { ns, store, redis };
}

test('every key of a target shares one hash slot, whatever the target contains', async (t) => {
  const { ns, store, redis } = storeAndClient(t);
  // A thousand events: still three keys (counts, sums, marks), not one per event.
  await store.apply(
    inPartition(
      0,
      Array.from({ length: 1000 }, (_, i) => ({
        position: BigInt(i),
        target: 'a}{weird{',
        type: 'X',
        value: 1,
      })),
    ),
  );
  assert.equal(
    await store.apply(inPartition(3, [{ position: 5n, target: 'a}{weird{', type: 'X', value: 1 }])),
    1,
  );
  const keys = (await redis.keys(`${ns.redisPrefix}:*`)).filter(
    (k) => !k.includes(':top:') && !k.endsWith(':types'),
  );
  assert.equal(keys.length, 3, keys.join(' '));
  const tags = new Set(keys.map((k) => /\{([^}]*)\}/.exec(k)?.[1]));
  assert.equal(tags.size, 1);
  assert.match([...tags][0] ?? '', /^[A-Za-z0-9_-]{22}$/);
});

test('a leaderboard whose write was lost catches up when the batch is redelivered', async (t) => {
  const { ns, store, redis } = storeAndClient(t);
  const batch = [
    { position: 1n, target: 'post/1', type: 'like', value: undefined },
    { position: 2n, target: 'post/1', type: 'like', value: undefined },
    { position: 3n, target: 'post/2', type: 'like', value: undefined },
  ];
  assert.equal(await store.apply(inPartition(0, batch)), 3);
  // The counters' scripts ran, then the leaderboard's write was lost (a crash, Redis going away).
  await redis.del(`${ns.redisPrefix}:top:{like}`);
  assert.deepEqual(await store.top(['like'], 10), [{ type: 'like', targets: [] }]);
  // The uncommitted batch comes again: nothing is counted twice, and the leaderboard is whole.
  assert.equal(await store.apply(inPartition(0, batch)), 0);
  assert.deepEqual(await store.top(['like'], 10), [
    {
      type: 'like',
      targets: [
        { target: 'post/1', count: 2 },
        { target: 'post/2', count: 1 },
      ],
    },
  ]);
  assert.deepEqual(
    (await store.read('post/1')).map((c) => [c.type, c.count]),
    [['like', 2]],
  );
});

// The same contract on a 3-master Redis Cluster: each target's script stays within one slot.
counterStoreContract('redis cluster', async () => {
  const ns = testNamespace();
  return {
    open: async (options) =>
      createRedisCounterStore({
        clusterNodes: realServers.redisClusterNodes,
        keyPrefix: ns.redisPrefix,
        ...options,
      }),
    cleanup: () => deleteRedisKeys(ns.redisPrefix, 'cluster'),
  };
});

test('hour windows and days of unique users expire by their own time; all time does not', async (t) => {
  const { ns, store, redis } = storeAndClient(t);
  const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - 3 * HOUR_MS;
  const day = Math.floor(hour / DAY_MS) * DAY_MS;
  await store.apply(
    inPartition(0, [
      { position: 1n, target: 'ttl', type: 'VIEW', value: undefined, timeMs: hour + 5, userId: 'ann' },
    ]),
  );
  const keys = await redis.keys(`${ns.redisPrefix}:*`);
  const ttlOf = async (pattern: RegExp) => {
    const key = keys.find((k) => pattern.test(k));
    assert.ok(key, `${pattern} in ${keys.join(' ')}`);
    return redis.pexpiretime(key);
  };
  assert.equal(await ttlOf(/:top:\{VIEW\}:h:\d+$/), hour + HOUR_MS + WINDOW_RETENTION_MS);
  assert.equal(await ttlOf(/:u:d:\d+:VIEW$/), day + DAY_MS + UNIQUES_RETENTION_MS);
  assert.equal(await ttlOf(/:u:a:VIEW$/), -1);
  assert.equal(await ttlOf(/:top:\{VIEW\}:o$/), -1);
  assert.equal(await ttlOf(/:top:\{VIEW\}$/), -1);
});
