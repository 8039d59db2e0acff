/**
 * The rate limiter contract: every adapter passes the same tests. `environment()` gives a fresh,
 * isolated place; each `open` there is another limiter on the same state (another gateway).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Decision, QuotaCounter, RateLimiter, RateLimitPolicy } from './rate-limiter.ts';

export interface RateLimiterEnvironment {
  /** A limiter and a quota counter on the environment's state; `now` (epoch ms) sets the quotas' month. */
  open(options?: { now?: () => number }): Promise<{ limiter: RateLimiter; quotas: QuotaCounter }>;
  /** Buckets and quota counters held now. */
  stored(): Promise<number>;
  cleanup(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function rateLimiterContract(
  adapter: string,
  environment: () => Promise<RateLimiterEnvironment>,
): void {
  describe(`rate limiter contract: ${adapter}`, () => {
    const withEnv = async (t: { after(fn: () => Promise<void>): void }) => {
      const env = await environment();
      const opened: { limiter: RateLimiter; quotas: QuotaCounter }[] = [];
      t.after(async () => {
        for (const { limiter, quotas } of opened) {
          await limiter.close();
          await quotas.close();
        }
        await env.cleanup();
      });
      const open = async (options?: { now?: () => number }) => {
        const pair = await env.open(options);
        opened.push(pair);
        return pair;
      };
      return { env, open };
    };

    test('admits exactly the limit, then refuses with the wait until a unit drips back', async (t) => {
      const { open } = await withEnv(t);
      const { limiter } = await open();
      const policy: RateLimitPolicy = { name: 'read', limit: 10, periodMs: 60_000 };
      const started = performance.now();
      for (let i = 1; i <= 10; i++) {
        const d = await limiter.check('client', policy, 1);
        assert.equal(d.allowed, true, `check ${i}`);
        assert.equal(d.remaining, 10 - i);
        assert.equal(d.retryAfterMs, 0);
        assert.equal(d.reason, undefined);
      }
      const refused = await limiter.check('client', policy, 1);
      const elapsed = performance.now() - started;
      assert.equal(refused.allowed, false);
      assert.equal(refused.reason, 'limited');
      assert.equal(refused.remaining, 0);
      assert.deepEqual(refused.policy, policy);
      // One unit every 6 s, the first since the burst began.
      assert.ok(
        refused.retryAfterMs <= 6_000 && refused.retryAfterMs >= 6_000 - elapsed - 1,
        `${refused.retryAfterMs}`,
      );
      assert.ok(refused.resetMs <= 60_000 && refused.resetMs >= 60_000 - elapsed - 1, `${refused.resetMs}`);
    });

    test('a refused check is admitted once its retryAfter has passed, and not much before', async (t) => {
      const { open } = await withEnv(t);
      const { limiter } = await open();
      const policy: RateLimitPolicy = { name: 'fast', limit: 4, periodMs: 2_400 }; // a unit per 600 ms
      for (let i = 0; i < 4; i++) assert.equal((await limiter.check('k', policy, 1)).allowed, true);
      const first = await limiter.check('k', policy, 1);
      assert.equal(first.allowed, false);
      assert.ok(first.retryAfterMs > 300 && first.retryAfterMs <= 600, `${first.retryAfterMs}`);
      await sleep(first.retryAfterMs - 250);
      const early = await limiter.check('k', policy, 1);
      assert.equal(early.allowed, false);
      // (A timer may fire a millisecond early.)
      assert.ok(early.retryAfterMs <= 260 && early.retryAfterMs > 0, `${early.retryAfterMs}`);
      await sleep(early.retryAfterMs);
      assert.equal((await limiter.check('k', policy, 1)).allowed, true);
    });

    test('cost counts per event: a batch of 500 costs 500; a batch above the burst never passes', async (t) => {
      const { open } = await withEnv(t);
      const { limiter } = await open();
      const policy: RateLimitPolicy = { name: 'ingest', limit: 1000, periodMs: 3_600_000 };
      const first = await limiter.check('key-1', policy, 500);
      assert.equal(first.allowed, true);
      assert.equal(first.remaining, 500);
      const peek = await limiter.check('key-1', policy, 0);
      assert.equal(peek.allowed, true);
      assert.equal(peek.remaining, 500, 'a check of 0 takes nothing');
      assert.equal((await limiter.check('key-1', policy, 499)).remaining, 1);
      const over = await limiter.check('key-1', policy, 2);
      assert.equal(over.allowed, false);
      assert.equal(over.remaining, 1, 'a refused batch takes nothing');
      assert.ok(over.retryAfterMs > 3_500 && over.retryAfterMs <= 3_600, `${over.retryAfterMs}`);
      assert.equal((await limiter.check('key-1', policy, 1)).allowed, true);

      const huge = await limiter.check('key-2', policy, 1001);
      assert.equal(huge.allowed, false);
      assert.equal(huge.reason, 'cost-exceeds-burst');
      assert.equal(huge.retryAfterMs, Number.POSITIVE_INFINITY);
      assert.equal(huge.remaining, 1000);
      assert.equal((await limiter.check('key-2', policy, 1000)).allowed, true);

      await assert.rejects(limiter.check('key-3', policy, -1), TypeError);
      await assert.rejects(limiter.check('key-3', policy, 1.5), TypeError);
      await assert.rejects(limiter.check('key-3', { ...policy, limit: 0 }, 1), TypeError);
    });

    test('keys are independent, and so are the policies of one key', async (t) => {
      const { open } = await withEnv(t);
      const { limiter } = await open();
      const ingest: RateLimitPolicy = { name: 'ingest', limit: 3, periodMs: 60_000 };
      const read: RateLimitPolicy = { name: 'read', limit: 3, periodMs: 60_000 };
      for (const key of ['a', 'a}{b', '{a}', 'A'])
        assert.equal((await limiter.check(key, ingest, 3)).allowed, true, key);
      assert.equal((await limiter.check('a', ingest, 1)).allowed, false);
      assert.equal((await limiter.check('a', read, 3)).allowed, true);
      assert.equal((await limiter.check('b', ingest, 1)).remaining, 2);
    });

    test('an idle key is forgotten once its bucket is full again', async (t) => {
      const { env, open } = await withEnv(t);
      const { limiter } = await open();
      // A unit drips back every 200 ms: the refusal below holds however slow the checks before it.
      const policy: RateLimitPolicy = { name: 'short', limit: 5, periodMs: 1_000 };
      for (const key of ['x', 'y', 'z']) await limiter.check(key, policy, 5);
      assert.equal(await env.stored(), 3);
      assert.equal((await limiter.check('x', policy, 1)).allowed, false);
      await sleep(1_100);
      // Another key, whose bucket stays for a while (and whose check sweeps the embedded state).
      assert.equal(
        (await limiter.check('w', { ...policy, name: 'long', periodMs: 60_000 }, 1)).allowed,
        true,
      );
      assert.equal(await env.stored(), 1, 'only the key just used');
      assert.equal((await limiter.check('x', policy, 5)).allowed, true, 'a forgotten key is a full bucket');
    });

    test('two limiters (two gateways) hammering one key together admit the limit within 1 %', async (t) => {
      const { open } = await withEnv(t);
      const gateways = [(await open()).limiter, (await open()).limiter];
      const policy: RateLimitPolicy = { name: 'ingest', limit: 1000, periodMs: 60_000 };
      const attempts = 4000;
      // Connected, and the script known to the server: the run measures checks, not set-up.
      for (const gateway of gateways) await gateway.check('warm-up', policy, 0);
      const started = performance.now();
      // In rounds of 100 (50 from each), so that both gateways' checks reach the key while it has units.
      const decisions: Decision[] = [];
      for (let round = 0; round < attempts / 100; round++)
        decisions.push(
          ...(await Promise.all(
            Array.from({ length: 100 }, (_, i) => gateways[i % 2]!.check('shared-key', policy, 1)),
          )),
        );
      const elapsedMs = performance.now() - started;
      const admitted = decisions.filter((d) => d.allowed).length;
      // The full bucket, plus a unit per 60 ms the run lasted (what the rate itself adds): never
      // more, and within 1 % of the limit of that.
      const dripped = elapsedMs / 60;
      assert.ok(
        admitted >= 1000 && admitted <= 1000 + dripped + 1,
        `${admitted} admitted in ${elapsedMs} ms`,
      );
      assert.ok(
        Math.abs(admitted - (1000 + dripped)) <= 10,
        `${admitted} admitted in ${elapsedMs} ms: not within 1 % of 1000 + ${dripped}`,
      );
      for (const gateway of [0, 1])
        assert.ok(
          decisions.some((d, i) => i % 2 === gateway && d.allowed),
          `gateway ${gateway} admitted some`,
        );
      for (const d of decisions.filter((d) => !d.allowed)) {
        assert.equal(d.reason, 'limited');
        assert.ok(d.retryAfterMs >= 1 && d.retryAfterMs <= 60, `retryAfterMs ${d.retryAfterMs}`);
      }
    });

    test('a monthly quota admits up to its limit, refuses past it without counting, and starts again next month', async (t) => {
      const { open } = await withEnv(t);
      let nowMs = Date.UTC(2030, 11, 31, 23, 59, 0); // a minute before 2031
      const { quotas } = await open({ now: () => nowMs });
      const other = (await open({ now: () => nowMs })).quotas;
      const quota = { name: 'monthly', limit: 1000 };
      const first = await quotas.consume('key', quota, 600);
      assert.deepEqual(first, {
        allowed: true,
        used: 600,
        remaining: 400,
        resetMs: 60_000,
        retryAfterMs: 0,
        quota,
      });
      const refused = await other.consume('key', quota, 401);
      assert.deepEqual(refused, {
        allowed: false,
        used: 600,
        remaining: 400,
        resetMs: 60_000,
        retryAfterMs: 60_000,
        quota,
        reason: 'quota-exceeded',
      });
      assert.equal((await other.consume('key', quota, 400)).used, 1000);
      assert.equal((await quotas.consume('key', quota, 1)).allowed, false);
      assert.equal((await quotas.consume('key', quota, 0)).allowed, true);
      assert.equal((await quotas.consume('key', { ...quota, name: 'other' }, 5)).used, 5);
      assert.equal((await quotas.consume('another key', quota, 1000)).allowed, true);
      nowMs = Date.UTC(2031, 0, 1, 0, 0, 1);
      const next = await quotas.consume('key', quota, 1);
      assert.equal(next.allowed, true);
      assert.equal(next.used, 1);
      assert.equal(next.resetMs, Date.UTC(2031, 1, 1) - nowMs);
      await assert.rejects(quotas.consume('key', quota, -5), TypeError);
    });
  });
}
