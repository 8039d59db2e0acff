import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EntityHash, Prng } from './prng.ts';
import { ZipfSampler } from './zipf.ts';

/** Pearson's χ² of observed counts against expected probabilities. */
function chiSquare(observed: readonly number[], probabilities: readonly number[], samples: number): number {
  let chi = 0;
  observed.forEach((o, i) => {
    const expected = probabilities[i]! * samples;
    chi += (o - expected) ** 2 / expected;
  });
  return chi;
}

describe('Prng', () => {
  test('the same seed and stream give the same sequence; another seed or stream another one', () => {
    const take = (p: Prng) => Array.from({ length: 8 }, () => p.uint32());
    assert.deepEqual(take(new Prng(42)), take(new Prng(42)));
    assert.notDeepEqual(take(new Prng(42)), take(new Prng(43)));
    assert.notDeepEqual(take(new Prng(42, 0)), take(new Prng(42, 1)));
    assert.notDeepEqual(take(new Prng(2 ** 40)), take(new Prng(0)), 'the high half of the seed counts');
    assert.throws(() => new Prng(-1), /non-negative safe integer/);
  });

  test('float is uniform on [0, 1): χ² over 20 bins', () => {
    const prng = new Prng(7);
    const bins = new Array<number>(20).fill(0);
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const x = prng.float();
      assert.ok(x >= 0 && x < 1);
      bins[Math.floor(x * 20)]!++;
    }
    // 19 degrees of freedom: P(χ² > 43.8) = 0.001.
    assert.ok(chiSquare(bins, new Array(20).fill(1 / 20), n) < 43.8);
  });

  test('exponential, normal and log-normal have their moments', () => {
    const prng = new Prng(11);
    const n = 200_000;
    let sumE = 0;
    let sumE2 = 0;
    let sumN = 0;
    let sumN2 = 0;
    const logNormals: number[] = [];
    for (let i = 0; i < n; i++) {
      const e = prng.exponential(3);
      sumE += e;
      sumE2 += e * e;
      const z = prng.normal();
      sumN += z;
      sumN2 += z * z;
      logNormals.push(prng.logNormal(25, 0.8));
    }
    const meanE = sumE / n;
    assert.ok(Math.abs(meanE - 3) < 0.03, `exponential mean ${meanE}`);
    assert.ok(Math.abs(Math.sqrt(sumE2 / n - meanE ** 2) / meanE - 1) < 0.02, 'exponential CV is 1');
    assert.ok(Math.abs(sumN / n) < 0.01, 'normal mean 0');
    assert.ok(Math.abs(sumN2 / n - 1) < 0.01, 'normal variance 1');
    logNormals.sort((a, b) => a - b);
    const median = logNormals[n / 2]!;
    assert.ok(Math.abs(median / 25 - 1) < 0.02, `log-normal median ${median}`);
  });

  test('EntityHash is stable per (salt, index) and uniform', () => {
    const a = new EntityHash(5);
    const b = new EntityHash(5);
    assert.equal(a.unit(1, 123), b.unit(1, 123));
    assert.notEqual(a.unit(1, 123), a.unit(2, 123));
    assert.notEqual(a.unit(1, 123), new EntityHash(6).unit(1, 123));
    const bins = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) bins[a.int(9, i, 10)]!++;
    assert.ok(chiSquare(bins, new Array(10).fill(0.1), 100_000) < 27.9); // 9 dof, p = 0.001
  });
});

describe('ZipfSampler', () => {
  for (const exponent of [1.1, 1.0, 0.6, 2.5]) {
    test(`matches the exact probabilities for s = ${exponent} (χ², 50 ranks, 200,000 samples)`, () => {
      const zipf = new ZipfSampler(50, exponent);
      const prng = new Prng(2024);
      const n = 200_000;
      const counts = new Array<number>(50).fill(0);
      for (let i = 0; i < n; i++) {
        const k = zipf.sample(prng);
        assert.ok(Number.isInteger(k) && k >= 1 && k <= 50);
        counts[k - 1]!++;
      }
      const probabilities = counts.map((_, i) => zipf.probability(i + 1));
      // Pool the tail so that every cell expects at least 20 samples.
      const observed: number[] = [];
      const expected: number[] = [];
      let tailO = 0;
      let tailP = 0;
      probabilities.forEach((p, i) => {
        if (p * n >= 20) {
          observed.push(counts[i]!);
          expected.push(p);
        } else {
          tailO += counts[i]!;
          tailP += p;
        }
      });
      if (tailP > 0) {
        observed.push(tailO);
        expected.push(tailP);
      }
      const chi = chiSquare(observed, expected, n);
      // ≤ 49 degrees of freedom: P(χ² > 85.4) = 0.001.
      assert.ok(chi < 85.4, `χ² = ${chi.toFixed(1)} over ${observed.length} cells`);
    });
  }

  test('one rank, and a population far too large for a table', () => {
    const prng = new Prng(1);
    const one = new ZipfSampler(1, 1.1);
    for (let i = 0; i < 100; i++) assert.equal(one.sample(prng), 1);
    const huge = new ZipfSampler(50_000_000, 1.1);
    let top = 0;
    for (let i = 0; i < 20_000; i++) {
      const k = huge.sample(prng);
      assert.ok(k >= 1 && k <= 50_000_000);
      if (k === 1) top++;
    }
    // P(1) = 1 / H(5e7, 1.1) ≈ 0.113; the tail of the harmonic sum is what a table would need.
    assert.ok(top > 2050 && top < 2450, `rank 1 drawn ${top} times`);
  });

  test('rejects bad parameters', () => {
    assert.throws(() => new ZipfSampler(0, 1.1), /n must be an integer/);
    assert.throws(() => new ZipfSampler(10, 0), /exponent must be > 0/);
  });
});
