/**
 * The destination limiter contract: every adapter passes the same tests. `environment()` gives a
 * fresh, isolated place; each `open` there is another limiter on the same state (another sender).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DestinationLimiter, LimitGrant } from './destination-limiter.ts';

export interface DestinationLimiterEnvironment {
  open(): Promise<DestinationLimiter>;
  cleanup(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const LEASE_MS = 30_000;

type Granted = Extract<LimitGrant, { granted: true }>;
function granted(grant: LimitGrant, what: string): Granted {
  assert.equal(grant.granted, true, what);
  return grant as Granted;
}

export function destinationLimiterContract(
  adapter: string,
  environment: () => Promise<DestinationLimiterEnvironment>,
): void {
  describe(`destination limiter contract: ${adapter}`, () => {
    const withEnv = async (t: { after(fn: () => Promise<void>): void }) => {
      const env = await environment();
      const opened: DestinationLimiter[] = [];
      t.after(async () => {
        for (const l of opened) await l.close();
        await env.cleanup();
      });
      return async () => {
        const l = await env.open();
        opened.push(l);
        return l;
      };
    };

    test('two senders together hold at most `concurrency` slots; a release frees one', async (t) => {
      const open = await withEnv(t);
      const [a, b] = [await open(), await open()];
      const limits = { concurrency: 3, ratePerSecond: undefined };
      const held = [
        granted(await a.acquire('d1', limits, LEASE_MS), 'a 1'),
        granted(await b.acquire('d1', limits, LEASE_MS), 'b 1'),
        granted(await a.acquire('d1', limits, LEASE_MS), 'a 2'),
      ];
      for (const l of [a, b]) {
        const refused = await l.acquire('d1', limits, LEASE_MS);
        assert.equal(refused.granted, false);
        assert.ok(!refused.granted && refused.limit === 'concurrency');
        assert.ok(!refused.granted && refused.retryAfterMs > 0 && refused.retryAfterMs <= 25);
      }
      // Another destination has slots of its own.
      granted(await b.acquire('d2', limits, LEASE_MS), 'd2');
      await held[0]!.release();
      await held[0]!.release(); // idempotent: frees one slot, not two
      granted(await b.acquire('d1', limits, LEASE_MS), 'after a release');
      assert.equal((await a.acquire('d1', limits, LEASE_MS)).granted, false);
    });

    test('concurrent acquisitions from two senders never pass the limit', async (t) => {
      const open = await withEnv(t);
      const [a, b] = [await open(), await open()];
      const limits = { concurrency: 5, ratePerSecond: undefined };
      const grants = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).acquire('d', limits, LEASE_MS)),
      );
      assert.equal(grants.filter((g) => g.granted).length, 5);
    });

    test('a lease not released expires: a dead sender’s slots come back', async (t) => {
      const open = await withEnv(t);
      const [a, b] = [await open(), await open()];
      const limits = { concurrency: 1, ratePerSecond: undefined };
      granted(await a.acquire('d', limits, 300), 'a');
      const refused = await b.acquire('d', limits, 300);
      assert.equal(refused.granted, false);
      await sleep(350);
      granted(await b.acquire('d', limits, 300), 'after the lease expired');
    });

    test('a lowered concurrency applies at once to new acquisitions', async (t) => {
      const open = await withEnv(t);
      const a = await open();
      for (let i = 0; i < 4; i++)
        granted(await a.acquire('d', { concurrency: 4, ratePerSecond: undefined }, LEASE_MS), `${i}`);
      assert.equal(
        (await a.acquire('d', { concurrency: 2, ratePerSecond: undefined }, LEASE_MS)).granted,
        false,
      );
      granted(await a.acquire('d', { concurrency: 5, ratePerSecond: undefined }, LEASE_MS), 'raised');
    });

    test('the rate is shared: a second’s worth at once across two senders, then a refusal naming the wait', async (t) => {
      const open = await withEnv(t);
      const [a, b] = [await open(), await open()];
      const limits = { concurrency: 100, ratePerSecond: 5 };
      const started = performance.now();
      let admitted = 0;
      for (let i = 0; i < 5; i++) {
        const g = await (i % 2 ? a : b).acquire('d', limits, LEASE_MS);
        if (g.granted) admitted++;
      }
      assert.equal(admitted, 5);
      const refused = await a.acquire('d', limits, LEASE_MS);
      const elapsed = performance.now() - started;
      assert.equal(refused.granted, false);
      assert.ok(!refused.granted && refused.limit === 'rate');
      // One start every 200 ms, the first since the burst began.
      assert.ok(
        !refused.granted && refused.retryAfterMs <= 200 && refused.retryAfterMs >= 200 - elapsed - 1,
        JSON.stringify(refused),
      );
      await sleep(refused.granted ? 0 : refused.retryAfterMs + 5);
      granted(await b.acquire('d', limits, LEASE_MS), 'after the wait');
    });

    test('a refusal by the rate holds no slot', async (t) => {
      const open = await withEnv(t);
      const a = await open();
      const limits = { concurrency: 1, ratePerSecond: 1 };
      const first = granted(await a.acquire('d', limits, LEASE_MS), 'first');
      await first.release();
      const refused = await a.acquire('d', limits, LEASE_MS);
      assert.ok(!refused.granted && refused.limit === 'rate');
      // Without the rate the one slot is free: the refused acquisition gave it back.
      granted(await a.acquire('d', { concurrency: 1, ratePerSecond: undefined }, LEASE_MS), 'slot free');
    });

    test('over a second and a half, two senders start at most burst + rate × time', async (t) => {
      const open = await withEnv(t);
      const [a, b] = [await open(), await open()];
      const limits = { concurrency: 50, ratePerSecond: 20 };
      const starts: number[] = [];
      const until = performance.now() + 1_500;
      await Promise.all(
        [a, b].map(async (l) => {
          while (performance.now() < until) {
            const g = await l.acquire('d', limits, LEASE_MS);
            if (g.granted) {
              starts.push(performance.now());
              await g.release();
            } else await sleep(Math.min(g.retryAfterMs, 20));
          }
        }),
      );
      // 20 at once, then one every 50 ms: at most 20 + 30 (+1 for the timer's edge).
      assert.ok(starts.length <= 51, `${starts.length} starts`);
      assert.ok(starts.length >= 40, `${starts.length} starts: the limit is used`);
    });
  });
}
