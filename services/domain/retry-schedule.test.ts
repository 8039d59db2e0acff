import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_RETRY_DELAYS_MS,
  DEFAULT_RETRY_POLICY,
  jitterWindow,
  nextAttempt,
  parseRetryAfter,
  validateRetryPolicy,
} from './retry-schedule.ts';

const HOUR = 3_600_000;
const now = Date.UTC(2026, 2, 1);
const at = (r: number) => () => r;

describe('nextAttempt', () => {
  test('the default schedule: 8 attempts, windows from the previous step (or half) to the nominal delay', () => {
    const windows = [2, 3, 4, 5, 6, 7, 8].map((n) => jitterWindow(DEFAULT_RETRY_POLICY, n));
    assert.deepEqual(windows, [
      { lowMs: 0, highMs: 5_000 },
      { lowMs: 5_000, highMs: 300_000 },
      { lowMs: 300_000, highMs: 1_800_000 },
      { lowMs: 1_800_000, highMs: 2 * HOUR },
      { lowMs: 2 * HOUR, highMs: 5 * HOUR },
      { lowMs: 5 * HOUR, highMs: 10 * HOUR },
      { lowMs: 5 * HOUR, highMs: 10 * HOUR },
    ]);
    assert.deepEqual(nextAttempt({ attempts: 1, nowMs: now, random: at(0.5) }), {
      kind: 'retry',
      attempt: 2,
      delayMs: 2_500,
      atMs: now + 2_500,
    });
    assert.equal(
      (nextAttempt({ attempts: 7, nowMs: now, random: at(0) }) as { delayMs: number }).delayMs,
      5 * HOUR,
    );
    assert.deepEqual(nextAttempt({ attempts: 8, nowMs: now, random: at(0) }), {
      kind: 'exhausted',
      attempts: 8,
    });
  });

  test('Retry-After: the later of it and the schedule, capped', () => {
    const delay = (attempts: number, retryAfterMs: number | undefined, r = 0.5) => {
      const next = nextAttempt({ attempts, nowMs: now, retryAfterMs, random: at(r) });
      return next.kind === 'retry' ? next.delayMs : -1;
    };
    assert.equal(delay(1, 60_000), 60_000, 'later than the 5 s step');
    assert.equal(delay(3, 60_000), 1_050_000, 'earlier than the 30 min step: the schedule wins');
    assert.equal(delay(1, 48 * HOUR), 10 * HOUR, 'capped at 10 h');
    assert.equal(delay(1, 0), 2_500);
    assert.equal(delay(8, 60_000), -1, 'exhausted whatever Retry-After says');
  });

  test('properties: inside the window, never before Retry-After (capped), exhausted exactly after the last', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 48 * HOUR }), { minLength: 0, maxLength: 12 }),
        fc.integer({ min: 0, max: 24 * HOUR }),
        fc.integer({ min: 1, max: 14 }),
        fc.option(fc.integer({ min: 1, max: 72 * HOUR }), { nil: undefined }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (rest, maxRetryAfterMs, attempts, retryAfterMs, r) => {
          const policy = validateRetryPolicy({ delaysMs: [0, ...rest], maxRetryAfterMs });
          const next = nextAttempt({ attempts, nowMs: now, retryAfterMs, random: () => r }, policy);
          if (attempts >= policy.delaysMs.length) {
            assert.deepEqual(next, { kind: 'exhausted', attempts });
            return;
          }
          assert.equal(next.kind, 'retry');
          if (next.kind !== 'retry') return;
          assert.equal(next.attempt, attempts + 1);
          assert.equal(next.atMs, now + next.delayMs);
          const { lowMs, highMs } = jitterWindow(policy, next.attempt);
          const floor = Math.min(retryAfterMs ?? 0, maxRetryAfterMs);
          assert.ok(next.delayMs >= Math.round(lowMs) || next.delayMs >= floor);
          assert.ok(next.delayMs >= floor, 'Retry-After honoured up to the cap');
          assert.ok(
            next.delayMs <= Math.max(Math.round(highMs), floor),
            'never past the step or the capped Retry-After',
          );
          if (!retryAfterMs) assert.ok(next.delayMs >= Math.round(lowMs) && next.delayMs <= highMs);
        },
      ),
    );
  });

  test('properties: on the default schedule each window starts no earlier than the one before', () => {
    for (let n = 3; n <= DEFAULT_RETRY_DELAYS_MS.length; n++)
      assert.ok(
        jitterWindow(DEFAULT_RETRY_POLICY, n).lowMs >= jitterWindow(DEFAULT_RETRY_POLICY, n - 1).lowMs,
      );
    // Spread: 1000 retries of one outage do not come back at one instant.
    let seed = 7;
    const random = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    const delays = new Set(
      Array.from(
        { length: 1000 },
        () => (nextAttempt({ attempts: 2, nowMs: now, random }) as { delayMs: number }).delayMs,
      ),
    );
    assert.ok(delays.size > 900, `${delays.size} distinct delays`);
  });

  test('a policy is checked', () => {
    assert.throws(() => validateRetryPolicy({ delaysMs: [], maxRetryAfterMs: 0 }), /at least one attempt/);
    assert.throws(() => validateRetryPolicy({ delaysMs: [5], maxRetryAfterMs: 0 }), /immediate/);
    assert.throws(() => validateRetryPolicy({ delaysMs: [0, -1], maxRetryAfterMs: 0 }), /not negative/);
  });
});

describe('parseRetryAfter', () => {
  test('delta-seconds and HTTP-dates; anything else is ignored', () => {
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter(new Date(now + 90_000).toUTCString(), now), 90_000);
    assert.equal(parseRetryAfter(new Date(now - 90_000).toUTCString(), now), 0);
    for (const bad of [undefined, '', '-5', '1.5', 'soon', '2026-03-01T00:00:00Z'])
      assert.equal(parseRetryAfter(bad, now), undefined, String(bad));
  });
});
