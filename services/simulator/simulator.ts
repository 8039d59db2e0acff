/**
 * The simulator: sends a scenario's events to Tally on a fixed schedule (an open model).
 *
 * Event k of the run is due at k / rate seconds, whatever the response times; due events wait
 * in a backlog until a request slot is free (at most `concurrency` requests in flight) and leave
 * it in requests of `batchSize`. When every slot stays busy until the backlog is full (one second
 * of events, at least one request per slot), further due events are not generated and are
 * counted as `missed`, and so are events still queued one second after the duration ends: the
 * summary reports the shortfall, and how late requests left (`sendLag`), instead of silently
 * sending slower. `--total` runs send exactly their events, however late.
 *
 * One user's events are never in two requests at once: Tally keeps a user's events in order
 * (its partition key), but only in the order requests reach it, and concurrent requests can
 * overtake each other. An event whose user has a request in flight waits for it (and so do
 * that user's later events), while other users' events go ahead.
 *
 * With `retryForMs`, a request that failed for a transient reason is sent again after a backoff,
 * with the same events, ids and time, until it is acknowledged or the retry time is up; it keeps
 * its request slot and its users meanwhile, so a user's order holds through retries too. Every
 * acknowledged event can be written to a ledger file (one JSON line each) for checking Tally's
 * figures against what it acknowledged.
 */
import { createWriteStream, openSync } from 'node:fs';
import { LatencyHistogram } from './latency-histogram.ts';
import { createScenario, type ScenarioName } from './scenarios.ts';
import type { EventSource, SimEvent } from './sim-event.ts';
import { SimulateArgsError, type SimulateOptions, simulateCommandLine, targetUrl } from './simulate-args.ts';
import { formatProgress, formatSummary } from './simulation-report.ts';
import { withSpikes } from './spikes.ts';
import { createTransport, type SendOutcome, type Transport } from './transport.ts';

export interface SimulationIo {
  /** Receives the summary. */
  out: NodeJS.WritableStream;
  /** Receives the live progress line and the first distinct error messages. */
  err: NodeJS.WritableStream;
  /** Abort (e.g. on SIGINT) to stop scheduling; requests in flight get a short grace period. */
  signal?: AbortSignal;
}

export interface TypeCounts {
  sent: number;
  acknowledged: number;
}

/** Acknowledged events of one (target, type), and the sum of their values. */
export interface CounterTally {
  count: number;
  sum: number;
}

/** Requests sent again after a transient failure, and why. */
export interface RetryTally {
  requests: number;
  events: number;
  byCode: Record<string, number>;
}

export interface ErrorTally {
  requests: number;
  events: number;
  /** The first few distinct messages for this code. */
  messages: string[];
}

export interface LatencySummary {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

/** What a run did. Every event sent is exactly one of acknowledged or failed. */
export interface SimulationSummary {
  scenario: ScenarioName;
  /** `http://host:port` or `grpc://host:port`. */
  target: string;
  /** e.g. `REST POST /v1/events:batch`, `gRPC Publish`. */
  transport: string;
  seed: number;
  runId: string;
  /** `tally simulate …` flags that repeat the run (same seed, a new run id). */
  repeatCommand: string;
  stoppedBy: 'duration' | 'total' | 'signal';
  elapsedMs: number;
  targetRatePerSecond: number;
  /** Events sent per second over the run. */
  achievedRatePerSecond: number;
  /** Events the schedule called for: sent + missed. */
  scheduled: number;
  /** Events put in a request. */
  sent: number;
  /** Events in requests Tally answered OK (each id checked). */
  acknowledged: number;
  /**
   * Events in requests that failed. Their effect is unknown in general: a batch that failed
   * part-way in Kafka may have been partly written (Tally deduplicates a retry by id).
   */
  failed: number;
  /** Due events never sent: skipped while every request slot was busy, or queued when stopped. */
  missed: number;
  requests: { sent: number; acknowledged: number; failed: number };
  /** Attempts that failed for a transient reason and were sent again (`--retry-for`). */
  retries: RetryTally;
  /** The ledger file written, if any. */
  ledgerPath: string | undefined;
  /** Failures by code: HTTP status (`503`), gRPC code (`UNAVAILABLE`), or `timeout`, `ECONNREFUSED`, … */
  errors: Record<string, ErrorTally>;
  byType: Record<string, TypeCounts>;
  /** Acknowledged events per target, then per type: what Tally's counters should show for this run. */
  acknowledgedByTarget: Record<string, Record<string, CounterTally>>;
  /** Round trip of each request. */
  latency: LatencySummary;
  /**
   * How late each request left after the due time of its newest event: near zero (timer
   * resolution) while the run keeps up, large when every request slot was busy.
   */
  sendLag: LatencySummary;
}

/** Distinct error messages printed as they happen (all are counted). */
const PRINTED_ERROR_MESSAGES = 5;
/** How long requests in flight may still answer after the stop signal. */
const STOP_GRACE_MS = 5000;
/** The backlog holds this much of the schedule before due events are counted as missed. */
const BACKLOG_SECONDS = 1;
/** How long after the end of a duration run queued events may still leave. */
const END_GRACE_MS = 1000;
/** Backoff before the first retry of a request, doubled each attempt up to RETRY_MAX_DELAY_MS. */
const RETRY_FIRST_DELAY_MS = 100;
const RETRY_MAX_DELAY_MS = 2000;

/**
 * Failures whose request may succeed if sent again: server overload or outage, timeouts and
 * connection errors. A refused event (400, INVALID_ARGUMENT, 413…) or a malformed answer is final.
 */
export function isTransientFailure(code: string): boolean {
  if (/^\d{3}$/.test(code)) return code === '408' || code === '429' || code >= '500';
  return !FINAL_CODES.has(code);
}
const FINAL_CODES = new Set([
  'INVALID_ARGUMENT',
  'OUT_OF_RANGE',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'FAILED_PRECONDITION',
  'PERMISSION_DENIED',
  'UNAUTHENTICATED',
  'UNIMPLEMENTED',
  'bad-response',
  'cancelled',
]);

interface Pending {
  event: SimEvent;
  dueMs: number;
}

interface InFlight {
  events: SimEvent[];
  /** `occurred_at` of every event of the request, the same on each attempt. */
  occurredAtMs: number;
  /** When the first attempt left. */
  firstSentAt: number;
  /** When the current attempt left. */
  startedAt: number;
  settled: boolean;
  /** Set while the request waits to be sent again. */
  retryTimer?: NodeJS.Timeout;
  attempts: number;
  lastFailure?: SendOutcome;
}

/** Tally's partition key: the user, else the target. */
function orderKey(event: SimEvent): string {
  return event.userId !== '' ? event.userId : `target:${event.target}`;
}

/** Runs the simulation to its end (duration, total, or `io.signal`), prints and returns the summary. */
export async function runSimulation(options: SimulateOptions, io: SimulationIo): Promise<SimulationSummary> {
  const source = withSpikes(
    createScenario(options.scenario, {
      seed: options.seed,
      ratePerSecond: options.ratePerSecond,
      targets: options.targets,
      users: options.users,
      idPrefix: options.runId,
    }),
    options.spikes,
    options.seed,
    options.users,
  );
  const transport = createTransport(options.target, {
    batchSize: options.batchSize,
    requestTimeoutMs: options.requestTimeoutMs,
  });
  const ledger = options.ledgerPath === undefined ? undefined : openLedger(options.ledgerPath);
  const loop = new RunLoop(options, io, source, transport, ledger);
  try {
    await loop.run();
  } finally {
    loop.dispose();
    transport.close();
    if (loop.tty) io.err.write('\r\x1b[2K');
    await ledger?.close();
  }
  const summary = summarize(options, transport, loop, loop.elapsed());
  io.out.write(formatSummary(summary, options));
  return summary;
}

function summarize(
  options: SimulateOptions,
  transport: Transport,
  { stats, missed, stoppedBy }: RunLoop,
  elapsedMs: number,
): SimulationSummary {
  return {
    scenario: options.scenario,
    target: targetUrl(options.target),
    transport: transport.description,
    seed: options.seed,
    runId: options.runId,
    repeatCommand: simulateCommandLine(options),
    stoppedBy,
    elapsedMs,
    targetRatePerSecond: options.ratePerSecond,
    achievedRatePerSecond: elapsedMs > 0 ? (stats.sentEvents * 1000) / elapsedMs : 0,
    scheduled: stats.sentEvents + missed,
    sent: stats.sentEvents,
    acknowledged: stats.acknowledgedEvents,
    failed: stats.failedEvents,
    missed,
    requests: {
      sent: stats.sentRequests,
      acknowledged: stats.acknowledgedRequests,
      failed: stats.failedRequests,
    },
    retries: {
      requests: stats.retriedRequests,
      events: stats.retriedEvents,
      byCode: Object.fromEntries(stats.retryCodes),
    },
    ledgerPath: options.ledgerPath,
    errors: Object.fromEntries(stats.errors),
    byType: Object.fromEntries(stats.byType),
    acknowledgedByTarget: Object.fromEntries(
      [...stats.byTarget].map(([target, types]) => [target, Object.fromEntries(types)]),
    ),
    latency: latencySummary(stats.all),
    sendLag: latencySummary(stats.sendLag),
  };
}

/**
 * One run, in steps: scheduling (`#tick` puts due events in the backlog), sending (`#pump` takes
 * batches into free request slots), retry (`#answered` sends a transiently failed request
 * again), settling (`#settle` counts the outcome and frees the slot and its users), reporting
 * (progress and error lines) and stopping (`#abort`). `run()` resolves once the schedule ended
 * and no request is in flight; `dispose()` clears its timers.
 */
class RunLoop {
  readonly stats = new RunStats();
  /** Due events never sent. */
  missed = 0;
  stoppedBy: SimulationSummary['stoppedBy'] = 'duration';
  readonly tty: boolean;
  readonly #options: SimulateOptions;
  readonly #io: SimulationIo;
  readonly #source: EventSource;
  readonly #transport: Transport;
  readonly #ledger: Ledger | undefined;
  /** Slots of a duration run (infinite for `--total`). */
  readonly #maxSlots: number;
  readonly #total: number;
  readonly #backlogLimit: number;
  #backlog: Pending[] = [];
  /** Order keys with a request in flight, and how many. */
  readonly #busyKeys = new Map<string, number>();
  readonly #inFlight = new Set<InFlight>();
  #slots = 0;
  #generated = 0;
  #scheduling = true;
  #stopping = false;
  #timer: NodeJS.Timeout | undefined;
  #endTimer: NodeJS.Timeout | undefined;
  #stopTimer: NodeJS.Timeout | undefined;
  #progressTimer: NodeJS.Timeout | undefined;
  readonly #startedAt = performance.now();
  #finish!: () => void;
  readonly #finished = new Promise<void>((resolve) => {
    this.#finish = resolve;
  });
  #printedErrors = 0;
  #lastProgress = { atMs: 0, sent: 0 };
  readonly #onAbort = () => this.#abort();

  constructor(
    options: SimulateOptions,
    io: SimulationIo,
    source: EventSource,
    transport: Transport,
    ledger: Ledger | undefined,
  ) {
    this.#options = options;
    this.#io = io;
    this.#source = source;
    this.#transport = transport;
    this.#ledger = ledger;
    this.tty = (io.err as { isTTY?: boolean }).isTTY === true;
    const rate = options.ratePerSecond;
    this.#maxSlots =
      options.durationMs === undefined
        ? Number.POSITIVE_INFINITY
        : Math.floor((options.durationMs * rate) / 1000 + 1e-9);
    this.#total = options.total ?? Number.POSITIVE_INFINITY;
    this.#backlogLimit = Math.max(options.batchSize * options.concurrency, Math.ceil(rate * BACKLOG_SECONDS));
  }

  elapsed(): number {
    return performance.now() - this.#startedAt;
  }

  /** Runs the schedule (or stops at once if the signal already fired) until every request settled. */
  async run(): Promise<void> {
    this.#progressTimer = setInterval(() => this.#printProgress(), this.tty ? 1000 : 5000);
    const signal = this.#io.signal;
    if (signal?.aborted) this.#abort();
    else {
      signal?.addEventListener('abort', this.#onAbort, { once: true });
      this.#tick();
    }
    await this.#finished;
  }

  dispose(): void {
    this.#io.signal?.removeEventListener('abort', this.#onAbort);
    clearTimeout(this.#timer);
    clearTimeout(this.#endTimer);
    clearTimeout(this.#stopTimer);
    clearInterval(this.#progressTimer);
  }

  #slotTime(slot: number): number {
    return (slot * 1000) / this.#options.ratePerSecond;
  }

  #maybeFinish(): void {
    if (!this.#scheduling && this.#backlog.length === 0 && this.#inFlight.size === 0) this.#finish();
  }

  // ---- scheduling -----------------------------------------------------------------------------

  /** Puts the events now due in the backlog, sends what it can, and sets the next wake-up. */
  #tick(): void {
    this.#timer = undefined;
    if (!this.#scheduling) return;
    this.#generateDue();
    if (this.#generated >= this.#total || this.#slots >= this.#maxSlots) this.#endSchedule();
    this.#pump();
    if (this.#scheduling) {
      // Wake when the backlog holds a full batch (or a batch later, when it already does), or at the end.
      const batchSize = this.#options.batchSize;
      const missing = batchSize - this.#backlog.length;
      const nextSlot = Math.min(
        this.#slots + (missing > 0 ? missing : batchSize),
        this.#maxSlots,
        this.#slots + (this.#total - this.#generated),
      );
      this.#timer = setTimeout(() => this.#tick(), Math.max(0, this.#slotTime(nextSlot) - this.elapsed()));
    } else this.#maybeFinish();
  }

  /** Generates the events due by now; while the backlog is full they are counted as missed instead. */
  #generateDue(): void {
    const due = Math.min(
      this.#maxSlots,
      Math.floor((this.elapsed() * this.#options.ratePerSecond) / 1000 + 1e-9),
    );
    while (this.#slots < due && this.#generated < this.#total) {
      if (this.#backlog.length >= this.#backlogLimit) {
        this.missed += due - this.#slots;
        this.#slots = due;
        break;
      }
      this.#slots++;
      this.#generated++;
      this.#backlog.push({ event: this.#source.next(), dueMs: this.#slotTime(this.#slots) });
    }
  }

  /** The schedule is done; a duration run drops what is still queued `END_GRACE_MS` later. */
  #endSchedule(): void {
    this.#scheduling = false;
    this.stoppedBy = this.#generated >= this.#total ? 'total' : 'duration';
    if (this.stoppedBy === 'duration')
      this.#endTimer = setTimeout(() => {
        this.missed += this.#backlog.length;
        this.#backlog = [];
        this.#maybeFinish();
      }, END_GRACE_MS);
  }

  // ---- sending --------------------------------------------------------------------------------

  /** Events for one request, oldest first, skipping (in order) users that have a request in flight. */
  #takeBatch(): Pending[] {
    const taken: Pending[] = [];
    const held = new Set<string>();
    const kept: Pending[] = [];
    let i = 0;
    for (; i < this.#backlog.length && taken.length < this.#options.batchSize; i++) {
      const pending = this.#backlog[i]!;
      const key = orderKey(pending.event);
      if (this.#busyKeys.has(key) || held.has(key)) {
        held.add(key);
        kept.push(pending);
      } else taken.push(pending);
    }
    if (kept.length === 0) this.#backlog.splice(0, i);
    else this.#backlog = kept.concat(this.#backlog.slice(i));
    return taken;
  }

  #pump(): void {
    // A request leaves with a full batch; only the end of the schedule sends a short one. (A batch
    // may also be short when some of its users still have a request in flight.)
    while (this.#inFlight.size < this.#options.concurrency && this.#backlog.length > 0) {
      if (this.#scheduling && this.#backlog.length < this.#options.batchSize) return;
      const batch = this.#takeBatch();
      if (batch.length === 0) return;
      this.#send(batch);
    }
  }

  #send(batch: Pending[]): void {
    // How late the request leaves after its newest event came due.
    this.stats.lag(Math.max(0, this.elapsed() - batch[batch.length - 1]!.dueMs));
    const events = batch.map((pending) => pending.event);
    for (const event of events) {
      const key = orderKey(event);
      this.#busyKeys.set(key, (this.#busyKeys.get(key) ?? 0) + 1);
    }
    const now = performance.now();
    const request: InFlight = {
      events,
      occurredAtMs: Date.now(),
      firstSentAt: now,
      startedAt: now,
      settled: false,
      attempts: 0,
    };
    this.#inFlight.add(request);
    this.stats.sent(events);
    this.#attempt(request);
  }

  #attempt(request: InFlight): void {
    request.retryTimer = undefined;
    request.attempts++;
    request.startedAt = performance.now();
    this.#transport.send(request.events, request.occurredAtMs).then(
      (outcome) => this.#answered(request, outcome),
      (error: unknown) => this.#answered(request, { ok: false, code: 'internal', message: String(error) }),
    );
  }

  // ---- retry and settling ---------------------------------------------------------------------

  /** One attempt's answer: settle the request, or send it again after a backoff. */
  #answered(request: InFlight, outcome: SendOutcome): void {
    if (request.settled) return;
    const now = performance.now();
    this.stats.latency(now - request.startedAt);
    if (
      !outcome.ok &&
      !this.#stopping &&
      this.#options.retryForMs > 0 &&
      isTransientFailure(outcome.code) &&
      now - request.firstSentAt < this.#options.retryForMs
    ) {
      request.lastFailure = outcome;
      if (this.stats.retried(request.events, outcome.code))
        this.#printError(outcome.code, `${outcome.message} (retrying)`);
      const delay = Math.min(RETRY_MAX_DELAY_MS, RETRY_FIRST_DELAY_MS * 2 ** (request.attempts - 1));
      request.retryTimer = setTimeout(() => this.#attempt(request), delay * (0.5 + Math.random() / 2));
      return;
    }
    this.#settle(request, outcome);
  }

  /** Counts the request's outcome, frees its slot and its users, and sends what waited for them. */
  #settle(request: InFlight, outcome: SendOutcome): void {
    if (request.settled) return;
    request.settled = true;
    clearTimeout(request.retryTimer);
    this.#inFlight.delete(request);
    for (const event of request.events) {
      const key = orderKey(event);
      const left = (this.#busyKeys.get(key) ?? 1) - 1;
      if (left === 0) this.#busyKeys.delete(key);
      else this.#busyKeys.set(key, left);
    }
    if (outcome.ok) {
      this.stats.acknowledged(request.events);
      this.#ledger?.write(request.events, request.occurredAtMs);
    } else if (this.stats.failed(request.events, outcome.code, outcome.message))
      this.#printError(outcome.code, outcome.message);
    this.#pump();
    this.#maybeFinish();
  }

  // ---- reporting ------------------------------------------------------------------------------

  #printError(code: string, message: string): void {
    if (this.#printedErrors > PRINTED_ERROR_MESSAGES) return;
    const text =
      this.#printedErrors++ < PRINTED_ERROR_MESSAGES
        ? `error ${code}: ${message}`
        : 'further error messages are counted, not printed';
    this.#io.err.write(`${this.tty ? '\r\x1b[2K' : ''}${text}\n`);
  }

  #printProgress(): void {
    const { stats } = this;
    const now = this.elapsed();
    const windowSeconds = Math.max(0.001, (now - this.#lastProgress.atMs) / 1000);
    const line = formatProgress({
      elapsedMs: now,
      sent: stats.sentEvents,
      acknowledged: stats.acknowledgedEvents,
      failed: stats.failedEvents,
      retried: stats.retriedEvents,
      errorsByCode: [...stats.errors].map(([code, e]) => [code, e.events]),
      ratePerSecond: (stats.sentEvents - this.#lastProgress.sent) / windowSeconds,
      p50Ms: stats.window.percentile(0.5),
      p99Ms: stats.window.percentile(0.99),
      inFlight: this.#inFlight.size,
      missed: this.missed,
    });
    stats.window.reset();
    this.#lastProgress = { atMs: now, sent: stats.sentEvents };
    if (this.tty) {
      const columns = (this.#io.err as { columns?: number }).columns ?? 0;
      this.#io.err.write(`\r\x1b[2K${columns > 1 ? line.slice(0, columns - 1) : line}`);
    } else this.#io.err.write(`${line}\n`);
  }

  // ---- stopping -------------------------------------------------------------------------------

  /** The stop signal: no more scheduling or retries; requests in flight get `STOP_GRACE_MS`. */
  #abort(): void {
    if (this.#scheduling) this.stoppedBy = 'signal';
    this.#scheduling = false;
    this.#stopping = true;
    // A request waiting to be sent again ends now, with the failure it had.
    for (const request of [...this.#inFlight])
      if (request.retryTimer !== undefined)
        this.#settle(request, request.lastFailure ?? { ok: false, code: 'cancelled', message: 'stopped' });
    clearTimeout(this.#timer);
    this.missed += this.#backlog.length;
    this.#backlog = [];
    this.#stopTimer ??= setTimeout(() => {
      const message = `no answer ${STOP_GRACE_MS / 1000} s after the stop signal; outcome unknown`;
      for (const request of [...this.#inFlight])
        this.#settle(request, { ok: false, code: 'no-answer', message });
    }, STOP_GRACE_MS);
    this.#maybeFinish();
  }
}

function latencySummary(histogram: LatencyHistogram): LatencySummary {
  return {
    p50Ms: histogram.percentile(0.5),
    p90Ms: histogram.percentile(0.9),
    p99Ms: histogram.percentile(0.99),
    maxMs: histogram.maxMs,
    meanMs: histogram.meanMs,
  };
}

/** Counts of a run; `failed` returns true when the (code, message) pair is new and worth printing. */
class RunStats {
  sentEvents = 0;
  acknowledgedEvents = 0;
  failedEvents = 0;
  sentRequests = 0;
  acknowledgedRequests = 0;
  failedRequests = 0;
  retriedRequests = 0;
  retriedEvents = 0;
  readonly retryCodes = new Map<string, number>();
  readonly byType = new Map<string, TypeCounts>();
  readonly byTarget = new Map<string, Map<string, CounterTally>>();
  readonly errors = new Map<string, ErrorTally>();
  readonly all = new LatencyHistogram();
  /** Since the last progress line. */
  readonly window = new LatencyHistogram();
  readonly sendLag = new LatencyHistogram();

  sent(events: readonly SimEvent[]): void {
    this.sentRequests++;
    this.sentEvents += events.length;
    for (const event of events) this.#type(event.type).sent++;
  }

  acknowledged(events: readonly SimEvent[]): void {
    this.acknowledgedRequests++;
    this.acknowledgedEvents += events.length;
    for (const event of events) {
      this.#type(event.type).acknowledged++;
      let types = this.byTarget.get(event.target);
      if (!types) {
        types = new Map();
        this.byTarget.set(event.target, types);
      }
      const tally = types.get(event.type);
      if (tally) {
        tally.count++;
        tally.sum += event.value ?? 0;
      } else types.set(event.type, { count: 1, sum: event.value ?? 0 });
    }
  }

  failed(events: readonly SimEvent[], code: string, message: string): boolean {
    this.failedRequests++;
    this.failedEvents += events.length;
    let tally = this.errors.get(code);
    if (!tally) {
      tally = { requests: 0, events: 0, messages: [] };
      this.errors.set(code, tally);
    }
    tally.requests++;
    tally.events += events.length;
    if (tally.messages.includes(message) || tally.messages.length >= PRINTED_ERROR_MESSAGES) return false;
    tally.messages.push(message);
    return true;
  }

  /** Counts a retry; true when its code is new (worth printing). */
  retried(events: readonly SimEvent[], code: string): boolean {
    this.retriedRequests++;
    this.retriedEvents += events.length;
    const seen = this.retryCodes.get(code);
    this.retryCodes.set(code, (seen ?? 0) + events.length);
    return seen === undefined;
  }

  latency(ms: number): void {
    this.all.record(ms);
    this.window.record(ms);
  }

  lag(ms: number): void {
    this.sendLag.record(ms);
  }

  #type(type: string): TypeCounts {
    let counts = this.byType.get(type);
    if (!counts) {
      counts = { sent: 0, acknowledged: 0 };
      this.byType.set(type, counts);
    }
    return counts;
  }
}

interface Ledger {
  write(events: readonly SimEvent[], occurredAtMs: number): void;
  /** Flushes and closes; rejects if any write failed. */
  close(): Promise<void>;
}

/** The acknowledged events, one JSON line each, in the order they were acknowledged. */
function openLedger(path: string): Ledger {
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (error) {
    throw new SimulateArgsError(
      `--ledger: cannot write ${JSON.stringify(path)}: ${(error as Error).message}`,
    );
  }
  const stream = createWriteStream('', { fd });
  let failure: Error | undefined;
  stream.on('error', (error) => {
    failure ??= error;
  });
  return {
    write(events, occurredAtMs) {
      let text = '';
      for (const e of events)
        text += `${JSON.stringify({
          id: e.id,
          type: e.type,
          target: e.target,
          userId: e.userId,
          value: e.value ?? 0,
          occurredAtMs,
          // The attributes too when there are some (an order's id and city: the projector's check).
          ...(Object.keys(e.attributes).length > 0 ? { attributes: e.attributes } : {}),
        })}\n`;
      stream.write(text);
    },
    async close() {
      await new Promise<void>((resolve) => stream.end(resolve));
      if (failure) throw new Error(`--ledger ${path}: ${failure.message}`);
    },
  };
}
