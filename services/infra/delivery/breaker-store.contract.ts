/**
 * The breaker store contract, run on each adapter (embedded, Redis, Redis Cluster) with a small
 * configuration and an injected clock: opening on the failure rate over the rolling window or on
 * consecutive timeouts, one probe at a time, closing after the probe successes, the growing
 * wait, auto-disable, and atomic steps under concurrent callers. `environment()` gives a fresh,
 * isolated place; `open` may be called more than once on it, as sender replicas share one store.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import type { BreakerConfig, BreakerSignal } from '../../domain/circuit-breaker.ts';
import type { BreakerStore } from './breaker-store.ts';

export interface BreakerStoreEnvironment {
  open(config: BreakerConfig): Promise<BreakerStore>;
  cleanup(): Promise<void>;
}

export const CONTRACT_CONFIG: BreakerConfig = Object.freeze({
  windowMs: 10_000,
  bucketMs: 1_000,
  minAttempts: 10,
  failureRate: 0.5,
  consecutiveTimeouts: 3,
  openBaseMs: 1_000,
  openMaxMs: 4_000,
  probeLeaseMs: 500,
  probeSuccesses: 2,
  disableAfterMs: 60_000,
});

const T0 = Date.UTC(2026, 2, 1, 12);

export function breakerStoreContract(
  adapter: string,
  environment: () => Promise<BreakerStoreEnvironment>,
): void {
  describe(`breaker store contract: ${adapter}`, () => {
    const setUp = async (t: { after: (fn: () => Promise<void>) => void }, config = CONTRACT_CONFIG) => {
      const env = await environment();
      const opened: BreakerStore[] = [];
      const open = async () => {
        const store = await env.open(config);
        opened.push(store);
        return store;
      };
      t.after(async () => {
        for (const store of opened) await store.close();
        await env.cleanup();
      });
      return { open, destination: `dest-${randomUUID()}` };
    };
    const recordAll = async (store: BreakerStore, d: string, signals: BreakerSignal[], at: number) => {
      const transitions: string[] = [];
      for (const s of signals) {
        const r = await store.record(d, s, at);
        if (r.transition) transitions.push(r.transition);
      }
      return transitions;
    };

    test('stays closed below the minimum attempts; opens when the failure rate reaches the threshold', async (t) => {
      const { open, destination: d } = await setUp(t);
      const store = await open();
      assert.deepEqual((await store.admit(d, T0)).admission, { allowed: true, probe: false });
      assert.deepEqual(await recordAll(store, d, Array(9).fill('failure'), T0), [], '9 attempts: too few');
      const closed = await store.inspect(d, T0);
      assert.deepEqual(closed, {
        disable: false,
        snapshot: {
          phase: 'closed',
          attempts: 9,
          failures: 9,
          consecutiveTimeouts: 0,
          openUntilMs: 0,
          failingSinceMs: 0,
          probeSuccesses: 0,
          opens: 0,
        },
      });
      const tenth = await store.record(d, 'failure', T0 + 10);
      assert.equal(tenth.transition, 'opened');
      assert.deepEqual(tenth.snapshot, {
        phase: 'open',
        attempts: 0,
        failures: 0,
        consecutiveTimeouts: 0,
        openUntilMs: T0 + 1_010,
        failingSinceMs: T0 + 10,
        probeSuccesses: 0,
        opens: 1,
      });
      assert.deepEqual((await store.admit(d, T0 + 500)).admission, { allowed: false, retryAtMs: T0 + 1_010 });
      // Outcomes of attempts made before it opened are ignored.
      assert.equal((await store.record(d, 'success', T0 + 600)).snapshot.phase, 'open');
    });

    test('a rate below the threshold keeps it closed; the window forgets old buckets', async (t) => {
      const { open, destination: d } = await setUp(t);
      const store = await open();
      // 4 failures of 10: 40 %.
      const signals: BreakerSignal[] = [
        'failure',
        'success',
        'failure',
        'success',
        'success',
        'failure',
        'success',
        'success',
        'failure',
        'success',
      ];
      assert.deepEqual(await recordAll(store, d, signals, T0), []);
      // 9 s later the window still holds them: 4 more failures make 8 of 14 (57 %) and open it...
      // but 10 s later they have left it, and 4 failures of 4 are below the minimum attempts.
      assert.deepEqual(await recordAll(store, d, Array(4).fill('failure'), T0 + 10_000), []);
      const s = (await store.inspect(d, T0 + 10_000)).snapshot;
      assert.deepEqual([s.phase, s.attempts, s.failures], ['closed', 4, 4]);
      assert.deepEqual(await recordAll(store, d, Array(6).fill('failure'), T0 + 10_500), ['opened']);
    });

    test('consecutive timeouts open it whatever the rate; anything else in between resets the run', async (t) => {
      const { open, destination: d } = await setUp(t);
      const store = await open();
      assert.deepEqual(
        await recordAll(store, d, ['timeout', 'timeout', 'failure', 'timeout', 'timeout', 'success'], T0),
        [],
      );
      assert.equal((await store.inspect(d, T0)).snapshot.consecutiveTimeouts, 0);
      assert.deepEqual(await recordAll(store, d, ['timeout', 'timeout', 'timeout'], T0 + 1), ['opened']);
    });

    test('half-open: one probe at a time; the probe successes close it', async (t) => {
      const { open, destination: d } = await setUp(t);
      const store = await open();
      await recordAll(store, d, Array(3).fill('timeout'), T0);
      const at = T0 + 1_000;
      assert.deepEqual((await store.admit(d, at)).admission, { allowed: true, probe: true });
      assert.deepEqual((await store.admit(d, at + 1)).admission, { allowed: false, retryAtMs: at + 500 });
      // The probe's outcome never came: its lease ends and another probe may go.
      assert.deepEqual((await store.admit(d, at + 500)).admission, { allowed: true, probe: true });
      const first = await store.record(d, 'success', at + 600);
      assert.equal(first.transition, undefined);
      assert.deepEqual([first.snapshot.phase, first.snapshot.probeSuccesses], ['half-open', 1]);
      assert.deepEqual((await store.admit(d, at + 601)).admission, { allowed: true, probe: true });
      const second = await store.record(d, 'success', at + 700);
      assert.equal(second.transition, 'closed');
      assert.equal(second.snapshot.phase, 'closed');
      assert.deepEqual((await store.admit(d, at + 701)).admission, { allowed: true, probe: false });
      assert.deepEqual((await store.inspect(d, at + 701)).snapshot, {
        phase: 'closed',
        attempts: 0,
        failures: 0,
        consecutiveTimeouts: 0,
        openUntilMs: 0,
        failingSinceMs: 0,
        probeSuccesses: 0,
        opens: 0,
      });
    });

    test('a failed probe opens it again for twice as long, up to the maximum', async (t) => {
      const { open, destination: d } = await setUp(t);
      const store = await open();
      await recordAll(store, d, Array(3).fill('timeout'), T0);
      let at = T0 + 1_000;
      const waits: number[] = [];
      for (let i = 0; i < 4; i++) {
        assert.equal((await store.admit(d, at)).admission.allowed, true);
        const r = await store.record(d, 'failure', at + 10);
        assert.equal(r.transition, 'reopened');
        waits.push(r.snapshot.openUntilMs - (at + 10));
        at = r.snapshot.openUntilMs;
      }
      assert.deepEqual(waits, [2_000, 4_000, 4_000, 4_000]);
      // A probe success in between does not reset the growth: only closing does.
      assert.equal((await store.inspect(d, at)).snapshot.failingSinceMs, T0);
    });

    test('not closed for the disable time: every answer says disable, until reset', async (t) => {
      const { open, destination: d } = await setUp(t);
      const store = await open();
      await recordAll(store, d, Array(3).fill('timeout'), T0);
      assert.equal((await store.admit(d, T0 + 59_999)).disable, false);
      const late = await store.admit(d, T0 + 60_000);
      assert.equal(late.disable, true);
      assert.equal((await store.record(d, 'failure', T0 + 60_001)).disable, true);
      assert.equal((await store.inspect(d, T0 + 60_002)).disable, true);
      await store.reset(d);
      assert.deepEqual(await store.inspect(d, T0 + 60_003), {
        disable: false,
        snapshot: {
          phase: 'closed',
          attempts: 0,
          failures: 0,
          consecutiveTimeouts: 0,
          openUntilMs: 0,
          failingSinceMs: 0,
          probeSuccesses: 0,
          opens: 0,
        },
      });
      // A breaker closed long after the disable time never says disable.
      assert.equal((await store.record(d, 'failure', T0 + 10 * 60_000)).disable, false);
    });

    test('destinations are apart, names with braces included', async (t) => {
      const { open, destination: d } = await setUp(t);
      const store = await open();
      await recordAll(store, d, Array(3).fill('timeout'), T0);
      for (const other of [`${d}{x}`, `{${d}`, `${d} `])
        assert.deepEqual((await store.admit(other, T0)).admission, { allowed: true, probe: false });
      assert.equal((await store.inspect(d, T0)).snapshot.phase, 'open');
    });

    test('replicas recording at once: every outcome counts, one is told it opened, one gets the probe', async (t) => {
      const { open, destination: d } = await setUp(t, {
        ...CONTRACT_CONFIG,
        minAttempts: 100,
        failureRate: 0.3,
      });
      const replicas = [await open(), await open(), await open()];
      // 30 successes first (in parallel), then failures race until the rate reaches 30 %.
      await Promise.all(Array.from({ length: 60 }, (_, i) => replicas[i % 3]!.record(d, 'success', T0)));
      const closed = await replicas[0]!.inspect(d, T0);
      assert.deepEqual([closed.snapshot.attempts, closed.snapshot.failures], [60, 0]);
      const answers = await Promise.all(
        Array.from({ length: 90 }, (_, i) => replicas[i % 3]!.record(d, 'failure', T0 + 1)),
      );
      // The 40th attempt after the 60 successes is the 100th: 40 failures of 100 ≥ 30 %.
      assert.equal(answers.filter((a) => a.transition === 'opened').length, 1);
      const admissions = await Promise.all(
        replicas.flatMap((r) => [r.admit(d, T0 + 1_001), r.admit(d, T0 + 1_001)]),
      );
      assert.equal(admissions.filter((a) => a.admission.allowed).length, 1, 'one probe');
    });
  });
}
