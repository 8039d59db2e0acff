/**
 * Request latencies in constant memory: logarithmic buckets 2% wide from 1 µs to ~2 hours,
 * so a percentile is within 2% of the true value (and never above the largest one recorded).
 */
const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);
const MIN_US = 1;
const BUCKETS = Math.ceil(Math.log(7.2e9 / MIN_US) / LOG_GROWTH) + 1;

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sumMs = 0;
  #maxMs = 0;

  get count(): number {
    return this.#count;
  }

  record(ms: number): void {
    const us = Math.max(MIN_US, ms * 1000);
    const index = Math.min(BUCKETS - 1, Math.max(0, Math.ceil(Math.log(us / MIN_US) / LOG_GROWTH - 1e-9)));
    this.#counts[index]! += 1;
    this.#count++;
    this.#sumMs += ms;
    if (ms > this.#maxMs) this.#maxMs = ms;
  }

  /** The latency at quantile `q` (0..1) in ms; 0 when empty. */
  percentile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(this.#maxMs, (MIN_US * GROWTH ** i) / 1000);
    }
    return this.#maxMs;
  }

  get maxMs(): number {
    return this.#maxMs;
  }

  get meanMs(): number {
    return this.#count === 0 ? 0 : this.#sumMs / this.#count;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sumMs = 0;
    this.#maxMs = 0;
  }
}
