/**
 * The pace with a shared limiter (the embedded adapter: the same contract as Redis's): two
 * senders' paces on one state keep one destination's limits together, a start past its deadline
 * is refused with what held it, and a failing limiter leaves the sender to its own limits.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DestinationLimiter } from '../infra/limits/destination-limiter.ts';
import {
  createEmbeddedDestinationLimiter,
  createEmbeddedDestinationLimitState,
} from '../infra/limits/embedded-destination-limiter.ts';
import { Pace, type SharedPace } from './pace.ts';

function shared(limiter: DestinationLimiter, waits: string[] = [], failures: unknown[] = []): SharedPace {
  return {
    limiter,
    destination: 'ds_0000000001',
    leaseMs: () => 10_000,
    waited: (_seconds, limit) => waits.push(limit),
    failed: (error) => failures.push(error),
  };
}

test('two paces share one concurrency: a start waits for the other sender’s release, or is refused at its deadline', async () => {
  const state = createEmbeddedDestinationLimitState();
  const limits = { concurrency: 1, ratePerSecond: undefined };
  const waits: string[] = [];
  const a = new Pace(limits, Date.now, shared(createEmbeddedDestinationLimiter({ state })));
  const b = new Pace(limits, Date.now, shared(createEmbeddedDestinationLimiter({ state }), waits));
  const held = await a.acquire();
  assert.ok(held);
  assert.equal(await b.acquire(Date.now() + 60), undefined, 'refused at its deadline');
  assert.deepEqual(waits, ['concurrency']);
  assert.equal(b.inFlight, 0, 'a refused start holds nothing');
  const waiting = b.acquire(Date.now() + 2_000);
  setTimeout(held, 50);
  const started = await waiting;
  assert.ok(started, 'started once the other sender released');
  started();
});

test('two paces share one rate: a second’s burst between them, then one start per interval', async () => {
  const state = createEmbeddedDestinationLimitState();
  const limits = { concurrency: 100, ratePerSecond: 10 };
  const waits: string[] = [];
  const paces = [0, 1].map(
    () => new Pace(limits, Date.now, shared(createEmbeddedDestinationLimiter({ state }), waits)),
  );
  const started = performance.now();
  const releases = await Promise.all(Array.from({ length: 12 }, (_, i) => paces[i % 2]!.acquire()));
  const tookMs = performance.now() - started;
  assert.ok(releases.every((r) => r !== undefined));
  // 10 at once, the 11th and 12th 100 and 200 ms later.
  assert.ok(tookMs >= 190 && tookMs < 600, `${tookMs} ms`);
  assert.ok(waits.includes('rate'));
  const refused = await paces[0]!.acquire(Date.now() + 20);
  assert.equal(refused, undefined, 'no unit within 20 ms');
  for (const r of releases) r!();
});

test('a failing shared limiter leaves the sender to its own limits', async () => {
  const failures: unknown[] = [];
  const broken: DestinationLimiter = {
    description: 'broken',
    acquire: async () => {
      throw new Error('Redis away');
    },
    ping: async () => {},
    close: async () => {},
  };
  const pace = new Pace({ concurrency: 2, ratePerSecond: undefined }, Date.now, shared(broken, [], failures));
  const first = await pace.acquire();
  const second = await pace.acquire();
  assert.ok(first && second);
  assert.equal(failures.length, 2);
  assert.equal(await pace.acquire(Date.now() + 30), undefined, 'its own concurrency of 2 still holds');
  first();
  second();
});
