/**
 * Zipf-distributed ranks in constant time and memory: P(k) ∝ k^-s for k in 1..n, sampled by
 * rejection-inversion (Hörmann & Derflinger, "Rejection-inversion to generate variates from
 * monotone discrete distributions", 1996), as in Apache Commons RNG. Any n, any s > 0.
 */
import type { Prng } from './prng.ts';

export class ZipfSampler {
  /** Number of ranks. */
  readonly n: number;
  /** The exponent s. */
  readonly exponent: number;
  readonly #hIntegralX1: number;
  readonly #hIntegralN: number;
  readonly #s: number;

  constructor(n: number, exponent: number) {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`zipf: n must be an integer ≥ 1, got ${n}`);
    if (!(exponent > 0) || !Number.isFinite(exponent))
      throw new RangeError(`zipf: exponent must be > 0, got ${exponent}`);
    this.n = n;
    this.exponent = exponent;
    this.#hIntegralX1 = this.#hIntegral(1.5) - 1;
    this.#hIntegralN = this.#hIntegral(n + 0.5);
    this.#s = 2 - this.#hIntegralInverse(this.#hIntegral(2.5) - this.#h(2));
  }

  /** A rank in 1..n; rank 1 is the most likely. `prng.float()` is uniform in [0, 1). */
  sample(prng: Pick<Prng, 'float'>): number {
    for (;;) {
      const u = this.#hIntegralN + prng.float() * (this.#hIntegralX1 - this.#hIntegralN);
      const x = this.#hIntegralInverse(u);
      let k = Math.floor(x + 0.5);
      if (k < 1) k = 1;
      else if (k > this.n) k = this.n;
      if (k - x <= this.#s || u >= this.#hIntegral(k + 0.5) - this.#h(k)) return k;
    }
  }

  /** The exact probability of rank `k` (O(n): for tests and reports). */
  probability(k: number): number {
    let norm = 0;
    for (let i = 1; i <= this.n; i++) norm += i ** -this.exponent;
    return k < 1 || k > this.n ? 0 : k ** -this.exponent / norm;
  }

  #h(x: number): number {
    return Math.exp(-this.exponent * Math.log(x));
  }

  /** ∫ h = (x^(1-s) - 1) / (1 - s), continuous through s = 1 (where it is log x). */
  #hIntegral(x: number): number {
    const logX = Math.log(x);
    return helper2((1 - this.exponent) * logX) * logX;
  }

  #hIntegralInverse(x: number): number {
    let t = x * (1 - this.exponent);
    if (t < -1) t = -1; // numerical safety: the argument of log1p must stay above -1
    return Math.exp(helper1(t) * x);
  }
}

/** log1p(x) / x, accurate near 0. */
function helper1(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1 / 3 - 0.25 * x));
}

/** expm1(x) / x, accurate near 0. */
function helper2(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + x * (1 / 3) * (1 + 0.25 * x));
}
