import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  admit,
  type BreakerSignal,
  type BreakerState,
  CLOSED,
  DEFAULT_BREAKER_CONFIG,
  record,
  validateBreakerConfig,
  windowTotals,
} from './circuit-breaker.ts';

const config = DEFAULT_BREAKER_CONFIG;

describe('circuit breaker', () => {
  test('defaults: 50 % over at least 20 attempts in 60 s, or 5 timeouts in a row; 3 probes; 5 days', () => {
    assert.deepEqual(validateBreakerConfig(config), {
      windowMs: 60_000,
      bucketMs: 10_000,
      minAttempts: 20,
      failureRate: 0.5,
      consecutiveTimeouts: 5,
      openBaseMs: 10_000,
      openMaxMs: 600_000,
      probeLeaseMs: 60_000,
      probeSuccesses: 3,
      disableAfterMs: 432_000_000,
    });
    assert.throws(() => validateBreakerConfig({ ...config, bucketMs: 7_000 }), /multiple of bucketMs/);
    assert.throws(() => validateBreakerConfig({ ...config, failureRate: 0 }), /failureRate/);
    assert.throws(() => validateBreakerConfig({ ...config, openMaxMs: 1 }), /openMaxMs/);
    assert.throws(() => validateBreakerConfig({ ...config, minAttempts: 0 }), /minAttempts/);
  });

  test('property: while closed, it opens exactly when the window rate or the timeout run says so', () => {
    const signal = fc.constantFrom<BreakerSignal>('success', 'failure', 'timeout');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(signal, fc.integer({ min: 0, max: 15_000 })), { maxLength: 120 }),
        (steps) => {
          let state: BreakerState = CLOSED;
          let now = Date.UTC(2026, 0, 1);
          // The reference: every outcome with its time, and the timeout run.
          let history: { at: number; failed: boolean }[] = [];
          let run = 0;
          for (const [s, gap] of steps) {
            now += gap;
            const step = record(state, s, now, config);
            if (state.phase !== 'closed') {
              assert.notEqual(step.transition, 'opened');
              state = step.state;
              continue;
            }
            history.push({ at: now, failed: s !== 'success' });
            run = s === 'timeout' ? run + 1 : 0;
            const oldest =
              (Math.floor(now / config.bucketMs) - config.windowMs / config.bucketMs + 1) * config.bucketMs;
            history = history.filter((h) => h.at >= oldest);
            const failures = history.filter((h) => h.failed).length;
            const expectOpen =
              run >= config.consecutiveTimeouts ||
              (history.length >= config.minAttempts && failures >= config.failureRate * history.length);
            assert.equal(step.transition === 'opened', expectOpen);
            if (!expectOpen) {
              assert.deepEqual(windowTotals(step.state, now, config), { attempts: history.length, failures });
            } else {
              assert.deepEqual(admit(step.state, now + config.openBaseMs - 1, config).admission, {
                allowed: false,
                retryAtMs: now + config.openBaseMs,
              });
              history = [];
              run = 0;
            }
            state = step.state;
          }
        },
      ),
    );
  });

  test('auto-disable counts from the first opening, through reopenings', () => {
    let state = CLOSED;
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 5; i++) state = record(state, 'timeout', t0, config).state;
    assert.equal(state.phase, 'open');
    let at = t0;
    while (at < t0 + config.disableAfterMs - config.openMaxMs) {
      at = Math.max(at, state.openUntilMs);
      const probe = admit(state, at, config);
      assert.equal(probe.disable, false);
      const failed = record(probe.state, 'failure', at, config);
      assert.equal(failed.transition, 'reopened');
      state = failed.state;
    }
    assert.equal(state.openUntilMs - at, config.openMaxMs, 'the wait has grown to its maximum');
    assert.equal(admit(state, t0 + config.disableAfterMs, config).disable, true);
  });
});
