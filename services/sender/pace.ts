/**
 * A destination's pace: at most `concurrency` attempts in flight, and at most `ratePerSecond`
 * started per second (bursts of up to one second's worth), as GCRA spaces them. The inline
 * attempts of the batches in hand and the drain's share it. A wait may be bounded by a deadline:
 * past it the caller parks the delivery instead of waiting.
 *
 * With a shared limiter (infra/limits/destination-limiter.ts) the limits hold across every sender
 * replica: a start takes a slot in this process, then a slot and a unit of the rate from the
 * shared limiter, trying again after the wait its refusal names. When the shared limiter fails,
 * starts are paced by this process's limits alone until it answers again.
 */
import type { DestinationLimiter, LimitKind } from '../infra/limits/destination-limiter.ts';

export interface PaceLimits {
  concurrency: number;
  /** undefined: no limit. */
  ratePerSecond: number | undefined;
}

/** The limiter every sender shares, and what the pace tells of it. */
export interface SharedPace {
  limiter: DestinationLimiter;
  destination: string;
  /** How long a start's slot is held at most (ms): the attempt's timeout and a margin. */
  leaseMs(): number;
  /** A start waited `seconds` (0 included) for its limits; `limit`: the last to refuse it. */
  waited(seconds: number, limit: LimitKind | 'local'): void;
  /** The shared limiter failed: this start is paced by the process's limits alone. */
  failed(error: unknown): void;
}

export class Pace {
  #limits: PaceLimits;
  readonly #now: () => number;
  readonly #shared: SharedPace | undefined;
  #inFlight = 0;
  readonly #waiters: { wake: () => void }[] = [];
  /** GCRA's theoretical arrival time of the next start, ms. */
  #tat = 0;

  constructor(limits: PaceLimits, now: () => number = Date.now, shared?: SharedPace) {
    this.#limits = { ...limits };
    this.#now = now;
    this.#shared = shared;
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
    const startedMs = this.#now();
    let limit: LimitKind | 'local' = 'local';
    const waited = () => this.#shared?.waited(Math.max(0, this.#now() - startedMs) / 1000, limit);
    while (this.#inFlight >= this.#limits.concurrency) {
      if (signal?.aborted || this.#now() >= deadlineMs) {
        waited();
        return undefined;
      }
      await this.#wait(deadlineMs - this.#now(), signal);
    }
    this.#inFlight++;
    const release = once(() => {
      this.#inFlight--;
      this.#waiters.shift()?.wake();
    });
    const shared = this.#shared;
    if (shared) {
      const answer = await this.#acquireShared(shared, deadlineMs, signal);
      if (answer !== 'failed') {
        if (answer.kind !== 'aborted' && answer.limit) limit = answer.limit;
        waited();
        if (answer.kind !== 'granted') {
          release();
          return undefined;
        }
        const sharedRelease = answer.release;
        return once(() => {
          release();
          void sharedRelease();
        });
      }
    }
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
    if (shared) waited();
    return release;
  }

  /** A slot and a start from the shared limiter, waiting as its refusals say until `deadlineMs`. */
  async #acquireShared(
    shared: SharedPace,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<
    | { kind: 'granted'; release: () => Promise<void>; limit?: LimitKind }
    | { kind: 'refused'; limit: LimitKind }
    | { kind: 'aborted' }
    | 'failed'
  > {
    let waitedOn: LimitKind | undefined;
    for (;;) {
      if (signal?.aborted) return { kind: 'aborted' };
      let grant: Awaited<ReturnType<DestinationLimiter['acquire']>>;
      try {
        grant = await shared.limiter.acquire(shared.destination, this.#limits, shared.leaseMs());
      } catch (error) {
        shared.failed(error);
        return 'failed';
      }
      if (grant.granted) {
        if (!signal?.aborted)
          return { kind: 'granted', release: grant.release, ...(waitedOn && { limit: waitedOn }) };
        await grant.release();
        return { kind: 'aborted' };
      }
      waitedOn = grant.limit;
      const now = this.#now();
      if (now + grant.retryAfterMs > deadlineMs) return { kind: 'refused', limit: grant.limit };
      await sleep(grant.retryAfterMs, signal);
    }
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
