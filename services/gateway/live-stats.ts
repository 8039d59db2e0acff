/**
 * What the dashboard shows of the live feed, kept in memory by one gateway:
 * events per second over a short moving window, a per-second history of the
 * last minute, totals per type since the gateway started, the latest events.
 */

/** One event as the dashboard shows it. */
export interface LiveEvent {
  id: string;
  type: string;
  target: string;
  userId: string;
  /** The event's value, null when it carried none. */
  value: number | null;
  /** Event time (occurred_at, else received_at), epoch ms. */
  timeMs: number;
  /** When ingest received it, epoch ms (what the rate is measured on). */
  receivedAtMs: number;
}

export interface LiveStatsOptions {
  /** The moving window of `ratePerSecond`, ms (default 5,000). */
  rateWindowMs?: number;
  /** Seconds of per-second history kept for the sparkline (default 60). */
  historySeconds?: number;
  /** How many latest events are kept (default 30). */
  latestEvents?: number;
  /** Most distinct types counted in `totals` (default 1,000); later types are summed under `otherTypes`. */
  maxTypes?: number;
}

export interface LiveStatsSnapshot {
  /** Events per second over the last `rateWindowMs` (shorter right after start). */
  ratePerSecond: number;
  rateWindowMs: number;
  /** Events per whole second, oldest first, the last entry being the current (partial) second. */
  history: number[];
  /** Events seen since `sinceMs`. */
  total: number;
  /** Per type, highest count first. */
  byType: { type: string; count: number }[];
  /** Events of types past `maxTypes`, counted in `total` only. */
  otherTypes: number;
  /** Newest first. */
  latest: LiveEvent[];
  sinceMs: number;
}

/**
 * Counts what the live feed delivers. Time is bucketed by the event's
 * `receivedAtMs` (clamped to now): the rate is the ingest rate, not the rate at
 * which this gateway happened to read.
 */
export class LiveStats {
  readonly #rateWindowMs: number;
  readonly #historySeconds: number;
  readonly #latestMax: number;
  readonly #maxTypes: number;
  readonly #sinceMs: number;
  /** Count per epoch second, for the seconds still inside the history. */
  readonly #perSecond = new Map<number, number>();
  /** Count per 100 ms slot, for the rate window. */
  readonly #perSlot = new Map<number, number>();
  readonly #byType = new Map<string, number>();
  #otherTypes = 0;
  #total = 0;
  #latest: LiveEvent[] = [];

  constructor(nowMs: number, options: LiveStatsOptions = {}) {
    this.#sinceMs = nowMs;
    this.#rateWindowMs = options.rateWindowMs ?? 5_000;
    this.#historySeconds = options.historySeconds ?? 60;
    this.#latestMax = options.latestEvents ?? 30;
    this.#maxTypes = options.maxTypes ?? 1_000;
  }

  /** Adds events (in log order) seen at `nowMs`. */
  add(events: readonly LiveEvent[], nowMs: number): void {
    for (const event of events) {
      const at = Math.min(Number.isFinite(event.receivedAtMs) ? event.receivedAtMs : nowMs, nowMs);
      const second = Math.floor(at / 1000);
      if (second > Math.floor(nowMs / 1000) - this.#historySeconds)
        this.#perSecond.set(second, (this.#perSecond.get(second) ?? 0) + 1);
      if (at > nowMs - this.#rateWindowMs) {
        const slot = Math.floor(at / 100);
        this.#perSlot.set(slot, (this.#perSlot.get(slot) ?? 0) + 1);
      }
      this.#total++;
      const typeCount = this.#byType.get(event.type);
      if (typeCount !== undefined) this.#byType.set(event.type, typeCount + 1);
      else if (this.#byType.size < this.#maxTypes) this.#byType.set(event.type, 1);
      else this.#otherTypes++;
    }
    const newest = events.slice(-this.#latestMax).reverse();
    this.#latest = [...newest, ...this.#latest].slice(0, this.#latestMax);
    this.#prune(nowMs);
  }

  snapshot(nowMs: number): LiveStatsSnapshot {
    this.#prune(nowMs);
    const windowMs = Math.max(1_000, Math.min(this.#rateWindowMs, nowMs - this.#sinceMs));
    let inWindow = 0;
    const fromSlot = Math.floor((nowMs - windowMs) / 100);
    for (const [slot, count] of this.#perSlot) if (slot > fromSlot) inWindow += count;
    const nowSecond = Math.floor(nowMs / 1000);
    const history: number[] = [];
    for (let s = nowSecond - this.#historySeconds + 1; s <= nowSecond; s++)
      history.push(this.#perSecond.get(s) ?? 0);
    return {
      ratePerSecond: Math.round((inWindow * 10_000) / windowMs) / 10,
      rateWindowMs: windowMs,
      history,
      total: this.#total,
      byType: [...this.#byType]
        .map(([type, count]) => ({ type, count }))
        .sort((a, b) => b.count - a.count || (a.type < b.type ? -1 : 1)),
      otherTypes: this.#otherTypes,
      latest: this.#latest,
      sinceMs: this.#sinceMs,
    };
  }

  #prune(nowMs: number): void {
    const firstSecond = Math.floor(nowMs / 1000) - this.#historySeconds;
    for (const second of this.#perSecond.keys()) if (second <= firstSecond) this.#perSecond.delete(second);
    const firstSlot = Math.floor((nowMs - this.#rateWindowMs) / 100);
    for (const slot of this.#perSlot.keys()) if (slot <= firstSlot) this.#perSlot.delete(slot);
  }
}
