/**
 * Seeded pseudo-random numbers for the simulator: xoshiro128** (32-bit state words, fast in JS
 * through Math.imul) seeded by a 32-bit mixer, plus the few distributions the scenarios need.
 * Not for cryptography; the same seed always gives the same sequence.
 */

/** Chris Wellons' "lowbias32" integer hash: a bijection on 32-bit integers with good avalanche. */
export function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad);
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97);
  return (h ^ (h >>> 15)) >>> 0;
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/** The low and high 32-bit halves of a non-negative safe integer. */
function splitSeed(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
  return [(seed % TWO_POW_32) >>> 0, Math.floor(seed / TWO_POW_32) >>> 0];
}

/** A seeded generator with the distributions used by the scenarios. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spareNormal: number | undefined;

  /** `seed`: any non-negative safe integer; `stream` separates independent sequences of one seed. */
  constructor(seed: number, stream = 0) {
    const [lo, hi] = splitSeed(seed);
    const base = mix32(lo ^ mix32(hi ^ mix32(stream + 0x9e3779b9)));
    this.#a = mix32(base + 0x6a09e667);
    this.#b = mix32(base + 0xbb67ae85);
    this.#c = mix32(base + 0x3c6ef372);
    this.#d = mix32(base + 0xa54ff53a);
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1; // the one state xoshiro cannot leave
  }

  /** A uniform 32-bit unsigned integer (xoshiro128**). */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const high = this.uint32() >>> 5;
    const low = this.uint32() >>> 6;
    return (high * 67108864 + low) / TWO_POW_53;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** Exponentially distributed with the given mean (memoryless waiting time). */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.float());
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    const spare = this.#spareNormal;
    if (spare !== undefined) {
      this.#spareNormal = undefined;
      return spare;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - this.float()));
    const angle = 2 * Math.PI * this.float();
    this.#spareNormal = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** Log-normal with the given median and shape σ (mean = median·e^(σ²/2)). */
  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }

  /** One of `choices`, picked with probability proportional to its weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, weight] of choices) total += weight;
    let r = this.float() * total;
    for (const [value, weight] of choices) {
      r -= weight;
      if (r < 0) return value;
    }
    const last = choices[choices.length - 1];
    if (!last) throw new RangeError('weighted() needs at least one choice');
    return last[0];
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Stable per-entity randomness: the same (seed, salt, index) always gives the same numbers,
 * so a merchant's currency or a store's location needs no table in memory.
 */
export class EntityHash {
  readonly #key: number;

  constructor(seed: number) {
    const [lo, hi] = splitSeed(seed);
    this.#key = mix32(lo ^ mix32(hi ^ 0x85ebca6b));
  }

  /** Uniform in [0, 1) for entity `index` (a non-negative integer below 2^32) of kind `salt`. */
  unit(salt: number, index: number): number {
    const h1 = mix32(this.#key ^ mix32(salt ^ mix32(index)));
    const h2 = mix32(h1 ^ 0x27d4eb2f);
    return ((h1 >>> 5) * 67108864 + (h2 >>> 6)) / TWO_POW_53;
  }

  /** Uniform integer in [0, n). */
  int(salt: number, index: number, n: number): number {
    return Math.floor(this.unit(salt, index) * n);
  }

  /** Standard normal for entity `index` of kind `salt` (Box–Muller over two hashed uniforms). */
  normal(salt: number, index: number): number {
    const u1 = 1 - this.unit(salt, index);
    const u2 = this.unit(salt ^ 0x5bd1e995, index);
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}
