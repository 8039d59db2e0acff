import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Logger } from '../logger.ts';
import { createMetricsRegistry, type Registry } from '../metrics.ts';
import { createEmbeddedRateLimiter } from './embedded-rate-limiter.ts';
import { failurePolicy, monthOf, type RateLimiter, type RateLimitPolicy } from './rate-limiter.ts';

const policy: RateLimitPolicy = { name: 'ingest', limit: 2, periodMs: 60_000 };

/** A logger keeping its lines. */
function recordingLogger() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      lines.push({ level, msg, ...(fields && { fields }) });
    };
  const logger: Logger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return { lines, logger };
}

async function counterValues(registry: Registry, name: string) {
  return (await registry.getSingleMetric(name)!.get()).values.map((v) => [v.labels, v.value]);
}

/** A limiter whose backend fails while `down` says so. */
function flaky(down: () => boolean): RateLimiter {
  const { limiter } = createEmbeddedRateLimiter();
  return {
    description: 'flaky',
    check: (key, p, cost) =>
      down() ? Promise.reject(new Error('connect ECONNREFUSED')) : limiter.check(key, p, cost),
    close: async () => {},
  };
}

test('a failing backend: one log line per interval saying how many failed, every failure counted', async () => {
  let nowMs = 0;
  let down = true;
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const { lines, logger } = recordingLogger();
  const limiter = failurePolicy(
    flaky(() => down),
    {
      mode: 'open',
      logger,
      metrics: registry,
      logEveryMs: 10_000,
      now: () => nowMs,
    },
  );
  for (let i = 0; i < 100; i++) {
    const d = await limiter.check(`k${i}`, policy, 1);
    assert.deepEqual(d, {
      allowed: true,
      remaining: 0,
      resetMs: 0,
      retryAfterMs: 0,
      policy,
      reason: 'unavailable',
    });
    nowMs += 250; // 25 s in all
  }
  assert.deepEqual(
    lines.map((l) => [l.level, l.fields?.failures]),
    [
      ['warn', 1],
      ['warn', 40],
      ['warn', 40],
    ],
  );
  assert.equal(lines[0]!.msg, 'rate limit backend failed: admitting without limits');
  assert.equal((lines[0]!.fields!.error as Error).message, 'connect ECONNREFUSED');
  assert.equal(lines[0]!.fields?.limit, 'ingest');
  assert.deepEqual(await counterValues(registry, 'tally_rate_limit_backend_errors_total'), [[{}, 100]]);
  // Back up: real decisions again, refusals counted by limit.
  down = false;
  assert.equal((await limiter.check('k', policy, 2)).allowed, true);
  assert.equal((await limiter.check('k', policy, 1)).reason, 'limited');
  assert.deepEqual(await counterValues(registry, 'tally_rate_limited_total'), [[{ limit: 'ingest' }, 1]]);
  assert.equal(lines.length, 3);
});

test('failing closed refuses with a retry after a few seconds; invalid input still throws', async () => {
  const { logger } = recordingLogger();
  const limiter = failurePolicy(
    flaky(() => true),
    { mode: 'closed', logger },
  );
  const d = await limiter.check('k', policy, 1);
  assert.deepEqual(d, {
    allowed: false,
    remaining: 0,
    resetMs: 0,
    retryAfterMs: 5_000,
    policy,
    reason: 'unavailable',
  });
  const custom = failurePolicy(
    flaky(() => true),
    { mode: 'closed', logger, unavailableRetryAfterMs: 2_000 },
  );
  assert.equal((await custom.check('k', policy, 1)).retryAfterMs, 2_000);
  // A caller's mistake is not a backend failure.
  await assert.rejects(limiter.check('k', policy, -1), TypeError);
  await assert.rejects(limiter.check('k', { ...policy, periodMs: 0 }, 1), TypeError);
});

test('months are UTC calendar months', () => {
  assert.deepEqual(monthOf(Date.UTC(2026, 11, 31, 23, 59, 59, 999)), {
    month: '2026-12',
    endMs: Date.UTC(2027, 0, 1),
  });
  assert.deepEqual(monthOf(Date.UTC(2027, 0, 1)), { month: '2027-01', endMs: Date.UTC(2027, 1, 1) });
  assert.equal(monthOf(Date.UTC(2028, 1, 29)).endMs, Date.UTC(2028, 2, 1));
});
