import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  burstOf,
  costProblem,
  emissionIntervalUs,
  type GcraPolicy,
  gcraCheck,
  gcraTake,
  policyProblem,
} from './gcra.ts';

const T0 = 1_790_000_000_000_000; // µs, late 2026

/** Policies from 1 unit a day to 100,000 a second, bursts from 1 to twice the limit. */
const policy: fc.Arbitrary<GcraPolicy> = fc
  .record({
    limit: fc.integer({ min: 1, max: 5_000 }),
    periodMs: fc.constantFrom(10, 250, 1_000, 7_000, 60_000, 3_600_000, 86_400_000),
    burstFactor: fc.option(fc.double({ min: 0.001, max: 2, noNaN: true }), { nil: undefined }),
  })
  .map(({ limit, periodMs, burstFactor }) => ({
    limit,
    periodMs,
    ...(burstFactor !== undefined && { burst: Math.max(1, Math.round(limit * burstFactor)) }),
  }))
  .filter((p) => policyProblem(p) === undefined);

/** Checks in time order: a gap before each (µs) and a cost. */
const checks = (maxGapUs: number, maxCost: number) =>
  fc.array(
    fc.record({ gapUs: fc.integer({ min: 0, max: maxGapUs }), cost: fc.integer({ min: 0, max: maxCost }) }),
    { minLength: 1, maxLength: 300 },
  );

/** Runs `list` from an empty state at T0: units admitted, and the time of the last check. */
function run(p: GcraPolicy, list: readonly { gapUs: number; cost: number }[]) {
  let tat: number | undefined;
  let now = T0;
  let admitted = 0;
  for (const { gapUs, cost } of list) {
    now += gapUs;
    const r = gcraCheck(p, tat, now, cost);
    if (r.allowed) admitted += cost;
    else assert.equal(r.tatUs, Math.max(tat ?? now, now), 'a refused check changes nothing');
    tat = r.tatUs;
  }
  return { admitted, lastUs: now };
}

test('checks at one instant admit exactly the burst, remaining counting down to 0', () => {
  fc.assert(
    fc.property(policy, (p) => {
      const burst = burstOf(p);
      let tat: number | undefined;
      for (let k = 1; k <= burst; k++) {
        const r = gcraCheck(p, tat, T0, 1);
        assert.equal(r.allowed, true, `unit ${k} of ${burst}`);
        assert.equal(r.remaining, burst - k);
        tat = r.tatUs;
      }
      const refused = gcraCheck(p, tat, T0, 1);
      assert.equal(refused.allowed, false);
      assert.equal(refused.refusal, 'limited');
      assert.equal(refused.remaining, 0);
      assert.equal(refused.retryAfterMs, Math.ceil(emissionIntervalUs(p) / 1000));
    }),
    { numRuns: 200 },
  );
});

test('within one emission interval, any checks admit at most the burst', () => {
  fc.assert(
    fc.property(
      policy.chain((p) =>
        fc.tuple(fc.constant(p), checks(Math.max(0, Math.floor(emissionIntervalUs(p) / 300) - 1), 50)),
      ),
      ([p, list]) => {
        const { admitted, lastUs } = run(p, list);
        assert.ok(lastUs - T0 < emissionIntervalUs(p));
        assert.ok(admitted <= burstOf(p), `${admitted} > ${burstOf(p)}`);
      },
    ),
  );
});

test('over any window, admitted ≤ limit × window / period + burst', () => {
  fc.assert(
    fc.property(
      policy.chain((p) =>
        fc.tuple(fc.constant(p), checks(3 * emissionIntervalUs(p), Math.max(1, burstOf(p)))),
      ),
      ([p, list]) => {
        const { admitted, lastUs } = run(p, list);
        const windowUs = lastUs - T0;
        assert.ok(admitted <= Math.floor(windowUs / emissionIntervalUs(p)) + burstOf(p));
        assert.ok(admitted <= (p.limit * windowUs) / (p.periodMs * 1000) + burstOf(p));
      },
    ),
  );
});

// (With a burst of 1 the bucket is full at each refill, and the time until the next check is lost.)
test('hammered at least once an interval, a key gets exactly burst + window / T', () => {
  fc.assert(
    fc.property(
      policy.chain((p) =>
        fc.tuple(
          fc.constant(p),
          fc.integer({ min: 1, max: emissionIntervalUs(p) }),
          fc.integer({ min: 0, max: 20 * emissionIntervalUs(p) }),
        ),
      ),
      ([p, stepUs, windowUs]) => {
        const t = emissionIntervalUs(p);
        fc.pre(burstOf(p) >= 2 && burstOf(p) + windowUs / stepUs < 20_000);
        let tat: number | undefined;
        let admitted = 0;
        let now = T0;
        for (; now <= T0 + windowUs; now += stepUs) {
          // Unit checks until one is refused, as many clients at once would.
          for (;;) {
            const r = gcraCheck(p, tat, now, 1);
            tat = r.tatUs;
            if (!r.allowed) break;
            admitted++;
          }
        }
        const lastUs = now - stepUs;
        assert.equal(admitted, burstOf(p) + Math.floor((lastUs - T0) / t));
      },
    ),
    { numRuns: 100 },
  );
});

test('a client that waits T between units is never refused', () => {
  fc.assert(
    fc.property(
      policy,
      fc.integer({ min: 0, max: 1000 }),
      fc.integer({ min: 1, max: 400 }),
      (p, extra, n) => {
        let tat: number | undefined;
        for (let i = 0; i < n; i++) {
          const r = gcraCheck(p, tat, T0 + i * (emissionIntervalUs(p) + extra), 1);
          assert.equal(r.allowed, true);
          tat = r.tatUs;
        }
      },
    ),
  );
});

test('retryAfter is exact to the millisecond, remaining and reset tell the truth', () => {
  fc.assert(
    fc.property(
      policy.chain((p) =>
        fc.tuple(
          fc.constant(p),
          checks(2 * emissionIntervalUs(p), burstOf(p)),
          fc.integer({ min: 1, max: burstOf(p) }),
          fc.nat(10_000_000),
        ),
      ),
      ([p, list, cost, idleUs]) => {
        let tat: number | undefined;
        let now = T0;
        for (const { gapUs, cost: c } of list) {
          now += gapUs;
          tat = gcraCheck(p, tat, now, c).tatUs;
        }
        const r = gcraCheck(p, tat, now, cost);
        if (r.allowed) {
          // `remaining` more units fit now, and no more.
          const after = gcraCheck(p, r.tatUs, now, r.remaining);
          assert.equal(after.allowed, true);
          assert.equal(gcraCheck(p, after.tatUs, now, 1).allowed, false);
        } else {
          assert.equal(r.refusal, 'limited');
          assert.ok(r.retryAfterMs >= 1);
          assert.equal(gcraCheck(p, r.tatUs, now + r.retryAfterMs * 1000, cost).allowed, true);
          assert.equal(gcraCheck(p, r.tatUs, now + (r.retryAfterMs - 1) * 1000, cost).allowed, false);
          assert.equal(gcraCheck(p, r.tatUs, now, r.remaining).allowed, true);
        }
        // After `resetMs` the bucket is full: the whole burst at once.
        assert.equal(gcraCheck(p, r.tatUs, now + r.resetMs * 1000, burstOf(p)).allowed, true);
        // Past the TAT, the state is as good as none: the adapters may forget it.
        const later = r.tatUs + idleUs;
        assert.deepEqual(gcraCheck(p, r.tatUs, later, cost), gcraCheck(p, undefined, later, cost));
      },
    ),
  );
});

test('a cost above the burst is never admitted, and the refusal says so', () => {
  fc.assert(
    fc.property(policy, fc.integer({ min: 1, max: 1000 }), fc.nat(10 ** 9), (p, over, waitUs) => {
      const r = gcraCheck(p, undefined, T0 + waitUs, burstOf(p) + over);
      assert.equal(r.allowed, false);
      assert.equal(r.refusal, 'cost-exceeds-burst');
      assert.equal(r.retryAfterMs, Number.POSITIVE_INFINITY);
      assert.equal(r.remaining, burstOf(p));
      assert.equal(r.tatUs, T0 + waitUs);
    }),
  );
  // The whole burst at once is fine.
  assert.equal(gcraCheck({ limit: 500, periodMs: 60_000 }, undefined, T0, 500).allowed, true);
});

test('cost counts units: a batch of 500 takes 500 of a limit', () => {
  const p = { limit: 1000, periodMs: 60_000 };
  const first = gcraCheck(p, undefined, T0, 500);
  assert.deepEqual(first, {
    allowed: true,
    tatUs: T0 + 30_000_000,
    remaining: 500,
    resetMs: 30_000,
    retryAfterMs: 0,
  });
  const second = gcraCheck(p, first.tatUs, T0 + 1_000_000, 500);
  assert.equal(second.allowed, true);
  assert.equal(second.remaining, 16); // a second later, 1000/min has dripped 16 units back
  const third = gcraCheck(p, second.tatUs, T0 + 1_000_000, 17);
  assert.equal(third.allowed, false);
  assert.equal(third.retryAfterMs, 20); // 17 units need 17 × 60 ms; 16 are there and 40 ms of the 17th
  // A read of the state (cost 0) takes nothing.
  assert.deepEqual(gcraCheck(p, second.tatUs, T0 + 1_000_000, 0), { ...second, tatUs: second.tatUs });
});

test('policies and costs that cannot be enforced are named', () => {
  assert.equal(policyProblem({ limit: 1000, periodMs: 60_000 }), undefined);
  assert.match(policyProblem({ limit: 0, periodMs: 60_000 }) ?? '', /limit/);
  assert.match(policyProblem({ limit: 1.5, periodMs: 60_000 }) ?? '', /limit/);
  assert.match(policyProblem({ limit: 10, periodMs: 0 }) ?? '', /periodMs/);
  assert.match(policyProblem({ limit: 10, periodMs: 1000, burst: 0 }) ?? '', /burst/);
  assert.match(policyProblem({ limit: 2_000_000, periodMs: 1000 }) ?? '', /1,000,000/);
  assert.equal(costProblem(0), undefined);
  assert.equal(costProblem(500), undefined);
  assert.ok(costProblem(-1));
  assert.ok(costProblem(0.5));
  assert.ok(costProblem(Number.NaN));
  // T is rounded up to a whole microsecond: 7 per minute is never faster than asked.
  assert.equal(emissionIntervalUs({ limit: 7, periodMs: 60_000 }), 8_571_429);
  assert.equal(emissionIntervalUs({ limit: 1000, periodMs: 60_000 }), 60_000);
});

test('a take of at least n and at most m is admitted as a check of n would be, and takes what is there up to m', () => {
  fc.assert(
    fc.property(
      policy,
      checks(2_000_000, 50),
      fc.nat(60),
      fc.nat(200),
      fc.nat(3_000_000),
      (p, before, least, extra, gapUs) => {
        // Some state first, then a take at a later instant.
        let tat: number | undefined;
        let now = T0;
        for (const { gapUs: g, cost } of before) {
          now += g;
          tat = gcraCheck(p, tat, now, cost).tatUs;
        }
        now += gapUs;
        const most = least + extra;
        const take = gcraTake(p, tat, now, least, most);
        const check = gcraCheck(p, tat, now, least);
        assert.equal(take.allowed, check.allowed);
        if (!check.allowed) {
          const { taken, ...refusal } = take;
          assert.equal(taken, 0);
          assert.deepEqual(refusal, check, 'a refused take is a refused check of its least');
          return;
        }
        const there = gcraCheck(p, tat, now, 0).remaining;
        assert.equal(take.taken, Math.min(most, there));
        const { taken, ...asCheck } = take;
        assert.deepEqual(asCheck, gcraCheck(p, tat, now, taken), 'the same as a check of what it took');
      },
    ),
  );
});
