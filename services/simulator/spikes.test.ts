import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createScenario } from './scenarios.ts';
import { withSpikes } from './spikes.ts';

const options = { seed: 7, ratePerSecond: 200, targets: 5_000, users: 20_000, idPrefix: 'r1' };

/** Events of `target` per (model-time) 10-second bucket over the first `seconds`. */
function perTenSeconds(
  events: Iterable<{ target: string; modelTimeMs: number }>,
  target: string,
  seconds: number,
) {
  const buckets = Array.from({ length: seconds / 10 }, () => 0);
  for (const e of events)
    if (e.target === target && e.modelTimeMs < seconds * 1000) buckets[Math.floor(e.modelTimeMs / 10_000)]!++;
  return buckets;
}

function take(n: number, spiked: boolean) {
  const source = withSpikes(
    createScenario('social', options),
    spiked ? [{ target: 'post/7', atMs: 60_000, factor: 20, forMs: 30_000 }] : [],
    options.seed,
    options.users,
  );
  return Array.from({ length: n }, () => source.next());
}

test("a spike multiplies the target's own events by its factor in its window, and nothing else", () => {
  const plain = take(36_000, false); // 180 s at 200/s
  const spiked = take(36_000 + 20_000, true);
  const base = perTenSeconds(plain, 'post/7', 150);
  const withSpike = perTenSeconds(spiked, 'post/7', 150);
  for (let b = 0; b < base.length; b++) {
    const inSpike = b >= 6 && b < 9;
    assert.equal(
      withSpike[b],
      inSpike ? base[b]! * 20 : base[b],
      `bucket ${b}: ${withSpike[b]} vs ${base[b]}`,
    );
  }
  assert.ok(
    base.slice(6, 9).every((n) => n > 0),
    'post/7 has events of its own in the window',
  );
  // The scenario's own events are untouched, in order; the extras have ids of their own.
  const own = spiked.filter((e) => !/-s\d+$/.test(e.id));
  assert.deepEqual(own.slice(0, 1000), plain.slice(0, 1000));
  const extras = spiked.filter((e) => /-s\d+$/.test(e.id));
  assert.ok(extras.every((e) => e.target === 'post/7' && e.modelTimeMs >= 60_000 && e.modelTimeMs < 90_000));
  assert.equal(new Set(spiked.map((e) => e.id)).size, spiked.length, 'ids are unique');
});
