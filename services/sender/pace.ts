/**
 * A destination's pace in this process: at most `concurrency` attempts in flight, and at most
 * `ratePerSecond` started per second (bursts of up to one second's worth), as GCRA spaces them.
 * The inline attempts of the batches in hand and the worker's share it. A wait may be bounded by
 * a deadline: past it the caller parks the delivery instead of waiting.
 */

export interface PaceLimits {
  concurrency: number;
  /** undefined: no limit. */
  ratePerSecond: number | undefined;
}

export class Pace {
  #limits: PaceLimits;
  readonly #now: () => number;
  #inFlight = 0;
  readonly #waiters: { wake: () => void }[] = [];
  /** GCRA's theoretical arrival time of the next start, ms. */
  #tat = 0;

  constructor(limits: PaceLimits, now: () => number = Date.now) {
    this.#limits = { ...limits };
    this.#now = now;
  }

  /** Takes the destination's new limits (an update): waiters see them at once. */
  update(limits: PaceLimits): void {
    this.#limits = { ...limits };
    this.#wakeAll();
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Waits for a free slot and for the rate to allow a start; resolves a release function, or
   * undefined when `deadlineMs` (a clock reading) came first or `signal` aborted.
   */
  async acquire(
    deadlineMs = Number.POSITIVE_INFINITY,
    signal?: AbortSignal,
  ): Promise<(() => void) | undefined> {
    while (this.#inFlight >= this.#limits.concurrency) {
      if (signal?.aborted || this.#now() >= deadlineMs) return undefined;
      await this.#wait(deadlineMs - this.#now(), signal);
    }
    this.#inFlight++;
    const release = once(() => {
      this.#inFlight--;
      this.#waiters.shift()?.wake();
    });
    const rate = this.#limits.ratePerSecond;
    if (rate !== undefined) {
      const interval = 1000 / rate;
      const tau = Math.max(0, 1000 - interval);
      const now = this.#now();
      const startAt = Math.max(now, this.#tat - tau);
      if (startAt > deadlineMs) {
        release();
        return undefined;
      }
      this.#tat = Math.max(this.#tat, now) + interval;
      if (startAt > now) await sleep(startAt - now, signal);
      if (signal?.aborted) {
        release();
        return undefined;
      }
    }
    return release;
  }

  #wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiter = { wake: () => done() };
      const timer = Number.isFinite(ms) ? setTimeout(() => done(), Math.max(0, ms)) : undefined;
      const onAbort = () => done();
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve();
      };
      this.#waiters.push(waiter);
    });
  }

  #wakeAll(): void {
    for (const w of [...this.#waiters]) w.wake();
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
