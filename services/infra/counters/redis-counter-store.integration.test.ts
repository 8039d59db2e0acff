/**
 * The Redis counter store on a real Redis: counts and sums per (target, type),
 * each event id applied once within the dedup window.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { createRedisCounterStore } from './redis-counter-store.ts';

await requireRealServers();

const ns = testNamespace();
const store = createRedisCounterStore({
  url: realServers.redisUrl,
  keyPrefix: ns.redisPrefix,
  dedupWindowMs: 60_000,
});
after(async () => {
  const redis = new Redis(realServers.redisUrl);
  const keys = await redis.keys(`${ns.redisPrefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
  await store.close();
});

test('counts and sums per (target, type); a repeated event id is applied once', async () => {
  const incs = [
    { eventId: 'e1', target: 't{1}', type: 'CLICK', value: undefined },
    { eventId: 'e2', target: 't{1}', type: 'CLICK', value: 2.5 },
    { eventId: 'e3', target: 't{1}', type: 'VIEW', value: undefined },
    { eventId: 'e4', target: 't2', type: 'CLICK', value: 1 },
  ];
  assert.equal(await store.apply(incs), 4);
  assert.equal(
    await store.apply([...incs, { eventId: 'e5', target: 't{1}', type: 'CLICK', value: undefined }]),
    1,
  );
  assert.equal(
    await store.apply([
      { eventId: 'e6', target: 't2', type: 'CLICK', value: 1 },
      { eventId: 'e6', target: 't2', type: 'CLICK', value: 1 },
    ]),
    1,
  );
  assert.deepEqual(await store.read('t{1}'), [
    { type: 'CLICK', count: 3, sum: 2.5 },
    { type: 'VIEW', count: 1, sum: 0 },
  ]);
  assert.deepEqual(await store.read('t2'), [{ type: 'CLICK', count: 2, sum: 2 }]);
  assert.deepEqual(await store.read('never-seen'), []);
});

test('every key of a target shares one hash slot, whatever the target contains', async () => {
  const redis = new Redis(realServers.redisUrl);
  try {
    await store.apply([{ eventId: 'slot-1', target: 'a}{weird{', type: 'X', value: 1 }]);
    const keys = await redis.keys(`${ns.redisPrefix}:*`);
    const tags = new Set(
      keys.filter((k) => k.includes(':e:slot-1') || k.endsWith(':n')).map((k) => /\{([^}]*)\}/.exec(k)?.[1]),
    );
    assert.ok(keys.length >= 3);
    assert.ok([...tags].every((tag) => tag && /^[A-Za-z0-9_-]{22}$/.test(tag)));
  } finally {
    await redis.quit();
  }
});
