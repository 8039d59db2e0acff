import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEmbeddedRateLimiter, createEmbeddedRateLimitState } from './embedded-rate-limiter.ts';
import { rateLimiterContract } from './rate-limiter.contract.ts';

rateLimiterContract('embedded', async () => {
  const state = createEmbeddedRateLimitState();
  return {
    open: async (options) => createEmbeddedRateLimiter({ state, sweepEveryMs: 50, ...options }),
    stored: async () => state.size(),
    cleanup: async () => {},
  };
});

test('the maps hold only what is active: a flood of one-off keys is swept out as time passes', async () => {
  let nowMs = Date.UTC(2030, 5, 1);
  const state = createEmbeddedRateLimitState();
  const { limiter, quotas } = createEmbeddedRateLimiter({ state, now: () => nowMs, sweepEveryMs: 1_000 });
  const policy = { name: 'ip', limit: 60, periodMs: 60_000 };
  for (let second = 0; second < 600; second++) {
    for (let i = 0; i < 100; i++) await limiter.check(`10.0.${second}.${i}`, policy, 1);
    nowMs += 1_000;
  }
  // 100 new keys a second, each full again a second after its check: about two seconds' worth.
  assert.ok(state.size() <= 300, `${state.size()} entries`);
  await quotas.consume('k', { name: 'monthly', limit: 10 }, 1);
  assert.equal(state.months.size, 1);
  nowMs = Date.UTC(2030, 6, 1);
  await quotas.consume('k2', { name: 'monthly', limit: 10 }, 1);
  assert.equal(state.months.size, 1, "June's count went with June");
});
