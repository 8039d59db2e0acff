/**
 * The breaker store port: one circuit breaker per webhook destination, shared by every sender
 * replica (domain/circuit-breaker.ts holds the machine and its defaults). Each call is one atomic
 * step on one destination's breaker: two replicas recording at once both count, and only one of
 * them is told `opened`; only one replica gets the half-open probe.
 *
 * Time is the caller's (`nowMs`, ms since the epoch): replicas' clocks are assumed close (NTP);
 * a skew shifts the breaker's windows and waits by that much, nothing worse.
 *
 * Adapters: redis-breaker-store.ts (standalone or Cluster: one key per destination),
 * embedded-breaker-store.ts (in-process, for one replica and tests).
 */
import type {
  Admission,
  BreakerPhase,
  BreakerSignal,
  BreakerTransition,
} from '../../domain/circuit-breaker.ts';

/** What a breaker is, as the sender logs it and the API may show it. */
export interface BreakerSnapshot {
  phase: BreakerPhase;
  /** Attempts and failures in the rolling window (closed only). */
  attempts: number;
  failures: number;
  consecutiveTimeouts: number;
  /** Open: when a probe may go (0 otherwise). */
  openUntilMs: number;
  /** When it last opened from closed (0 while closed). */
  failingSinceMs: number;
  probeSuccesses: number;
  opens: number;
}

export interface BreakerAnswer {
  snapshot: BreakerSnapshot;
  /** The breaker has not been closed for `disableAfterMs`: disable the destination. */
  disable: boolean;
}

export interface BreakerStore {
  /** Which adapter, for the start-up log and readiness. */
  readonly description: string;
  /** Whether an attempt may go now; a half-open breaker gives its one probe to one caller. */
  admit(destination: string, nowMs: number): Promise<BreakerAnswer & { admission: Admission }>;
  /** Records an attempt's outcome; `transition` when this call opened or closed the breaker. */
  record(
    destination: string,
    signal: BreakerSignal,
    nowMs: number,
  ): Promise<BreakerAnswer & { transition?: BreakerTransition }>;
  /** The breaker as it is, changing nothing. */
  inspect(destination: string, nowMs: number): Promise<BreakerAnswer>;
  /** Back to closed with nothing counted (a destination enabled again). */
  reset(destination: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
