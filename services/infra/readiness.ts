/**
 * Readiness: whether a process can do its work now, and if not, why. A process is ready once
 * its roles serve (consumer roles may still be joining their groups: they are listed, not
 * waited for) and every backend it uses answers a cheap call; it is not ready while starting,
 * while draining, or while a backend fails. Backend checks are cached briefly, so that probes
 * from Kubernetes, load balancers and people cost the backends one call per interval at most.
 */
import { AppError } from './app-error.ts';
import { withTimeout } from './lifecycle.ts';

/** One backend's check: resolves when the backend answers, rejects with why it does not. */
export interface BackendCheck {
  /** The port's name: `log`, `counters`, `sql`. */
  name: string;
  /** The adapter, for the report: `Kafka (127.0.0.1:9092)`, `Redis (…)`. */
  adapter: string;
  check(): Promise<void>;
}

export interface ReadinessReport {
  ready: boolean;
  /** `ready`; `starting` until the roles serve; `draining` from the first signal; `not ready` when a backend fails. */
  status: 'ready' | 'starting' | 'draining' | 'not ready';
  /** Each backend's state: `ok`, or the error of its last check. */
  backends: Record<string, { adapter: string; ok: boolean; error?: string }>;
  /** Consumer roles still joining their group (they do not hold readiness). */
  joining: string[];
}

export interface ReadinessOptions {
  /** How long a check's result is reused, ms (default 2,000). */
  cacheMs?: number;
  /** How long a check may take before it counts as failed, ms (default 2,000). */
  timeoutMs?: number;
  now?: () => number;
}

/** The process's readiness, fed by main.ts and read by `/readyz` and the gRPC health service. */
export class Readiness {
  readonly #checks: readonly BackendCheck[];
  readonly #cacheMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #joining = new Set<string>();
  #phase: 'starting' | 'serving' | 'draining' = 'starting';
  #last: { atMs: number; results: ReadinessReport['backends'] } | undefined;
  #inFlight: Promise<ReadinessReport['backends']> | undefined;

  constructor(checks: readonly BackendCheck[], options: ReadinessOptions = {}) {
    this.#checks = checks;
    this.#cacheMs = options.cacheMs ?? 2_000;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#now = options.now ?? Date.now;
  }

  /** The roles serve: from now on readiness follows the backends. */
  serving(): void {
    if (this.#phase === 'starting') this.#phase = 'serving';
  }

  /** Draining: not ready from now on, whatever the backends say. */
  draining(): void {
    this.#phase = 'draining';
  }

  get isDraining(): boolean {
    return this.#phase === 'draining';
  }

  /** A consumer role started joining its group (`done` when it has joined or failed). */
  joining(role: string): { done(): void } {
    this.#joining.add(role);
    return { done: () => this.#joining.delete(role) };
  }

  /** Checks the backends (or reuses a recent result) and says whether the process is ready. */
  async report(): Promise<ReadinessReport> {
    const backends = this.#phase === 'serving' ? await this.#backends() : (this.#last?.results ?? {});
    const failing = Object.values(backends).some((b) => !b.ok);
    const status =
      this.#phase === 'draining'
        ? 'draining'
        : this.#phase === 'starting'
          ? 'starting'
          : failing
            ? 'not ready'
            : 'ready';
    return { ready: status === 'ready', status, backends, joining: [...this.#joining] };
  }

  #backends(): Promise<ReadinessReport['backends']> {
    if (this.#last && this.#now() - this.#last.atMs < this.#cacheMs)
      return Promise.resolve(this.#last.results);
    this.#inFlight ??= this.#runChecks().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #runChecks(): Promise<ReadinessReport['backends']> {
    const results: ReadinessReport['backends'] = {};
    await Promise.all(
      this.#checks.map(async ({ name, adapter, check }) => {
        try {
          await withTimeout(
            check(),
            this.#timeoutMs,
            () => new Error(`no answer within ${this.#timeoutMs} ms`),
          );
          results[name] = { adapter, ok: true };
        } catch (error) {
          results[name] = { adapter, ok: false, error: describe(error) };
        }
      }),
    );
    this.#last = { atMs: this.#now(), results };
    return results;
  }
}

/** A check's failure in words: an AppError's message and its cause's, else the error's own message. */
function describe(error: unknown): string {
  const text = (e: unknown) => (e instanceof Error ? e.message : String(e));
  if (!(error instanceof AppError)) return text(error);
  return error.cause === undefined ? error.message : `${error.message}: ${text(error.cause)}`;
}
