/**
 * Units taken from the shared buckets in slices, on a real Redis: how many script calls a busy key
 * costs, that units held and not spent go back to the bucket, and that only the shared bucket
 * refuses. (The rate limiter contract, which the Redis limiter passes with leases on, holds the
 * rest: rates, costs, two gateways within 1 %.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { realServers, requireRealServers, testNamespace } from '../../testing/real-servers.ts';
import { deleteRedisKeys } from '../../testing/redis-keys.ts';
import { checkEach, leasedLimiter } from './leased-rate-limiter.ts';
import type { RateLimitPolicy, SharedBuckets } from './rate-limiter.ts';
import { createRedisBuckets } from './redis-rate-limiter.ts';

await requireRealServers();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Real buckets under a fresh prefix, counting the takes and give-backs made of them. */
function countedBuckets(t: { after(fn: () => Promise<void>): void }) {
  const ns = testNamespace();
  const opened: { buckets: SharedBuckets; close(): Promise<void> }[] = [];
  const calls = { takes: 0, givenBack: 0 };
  t.after(async () => {
    for (const o of opened) await o.close();
    await deleteRedisKeys(ns.redisPrefix);
  });
  const open = () => {
    const { buckets, quotas } = createRedisBuckets({ url: realServers.redisUrl, keyPrefix: ns.redisPrefix });
    const counted: SharedBuckets = {
      description: buckets.description,
      take: (...args) => {
        calls.takes++;
        return buckets.take(...args);
      },
      giveBack: (key, policy, units) => {
        calls.givenBack += units;
        return buckets.giveBack(key, policy, units);
      },
      close: () => buckets.close(),
    };
    let closed = false;
    opened.push({
      buckets: counted,
      close: async () => {
        if (closed) return;
        closed = true;
        await quotas.close();
        await buckets.close().catch(() => {});
      },
    });
    return counted;
  };
  return { open, calls };
}

test('a busy key costs a script call per slice, not per check', async (t) => {
  const { open, calls } = countedBuckets(t);
  const limiter = leasedLimiter(open());
  const policy: RateLimitPolicy = { name: 'ingest', limit: 60_000, periodMs: 3_600_000 }; // slices of 600
  // 3,000 checks of one unit, 50 at a time: they wait for the take in flight rather than each taking.
  for (let round = 0; round < 60; round++) {
    const decisions = await Promise.all(Array.from({ length: 50 }, () => limiter.check('busy', policy, 1)));
    assert.ok(decisions.every((d) => d.allowed));
  }
  assert.ok(calls.takes >= 5 && calls.takes <= 6, `${calls.takes} script calls for 3,000 checks`);
  // What the bucket shows another gateway: the slices taken, the units spent and the ones held.
  const peek = await checkEach(open()).check('busy', policy, 0);
  assert.ok(peek.remaining <= 60_000 - 3_000 + 50, `remaining ${peek.remaining}`);
  await limiter.close();
});

test('units held and not spent go back to the bucket after the hold, and on close', async (t) => {
  const { open, calls } = countedBuckets(t);
  const policy: RateLimitPolicy = { name: 'read', limit: 1_000, periodMs: 3_600_000 }; // a unit per 3.6 s
  const other = checkEach(open());
  const held = leasedLimiter(open(), { share: 0.5, holdMs: 150 });
  assert.equal((await held.check('k', policy, 1)).remaining, 999);
  assert.equal((await other.check('k', policy, 0)).remaining, 500, 'a slice of 500 is taken');
  await sleep(400);
  assert.equal(calls.givenBack, 499);
  assert.equal((await other.check('k', policy, 0)).remaining, 999, 'what was not spent is back');

  const closing = leasedLimiter(open(), { share: 0.5, holdMs: 60_000 });
  await closing.check('k', policy, 10);
  assert.equal((await other.check('k', policy, 0)).remaining, 499);
  await closing.close();
  assert.equal((await other.check('k', policy, 0)).remaining, 989, 'close gives back what is held');
});

test('only the shared bucket refuses: a check is refused when the bucket and the lease together fall short', async (t) => {
  const { open } = countedBuckets(t);
  const policy: RateLimitPolicy = { name: 'ingest', limit: 1_000, periodMs: 3_600_000 };
  const a = leasedLimiter(open(), { share: 0.5, holdMs: 150 });
  const b = leasedLimiter(open(), { share: 0.5, holdMs: 150 });
  assert.equal((await a.check('k', policy, 1)).allowed, true); // a holds 499 more
  const refused = await b.check('k', policy, 600);
  assert.equal(refused.allowed, false, 'b cannot have units a holds');
  assert.equal(refused.reason, 'limited');
  assert.equal(refused.remaining, 500);
  // a spends from what it holds, then takes the shortfall from the bucket in the same check.
  const spent = await a.check('k', policy, 700);
  assert.equal(spent.allowed, true);
  assert.ok(spent.remaining <= 299, `remaining ${spent.remaining}`);
  await sleep(400); // a gives back what it still holds
  const admitted = await b.check('k', policy, 299);
  assert.equal(admitted.allowed, true, `b refused: ${JSON.stringify(admitted)}`);
  assert.equal((await b.check('k', policy, 1)).allowed, false, 'the limit is spent, across both');
  await a.close();
  await b.close();
});
