/**
 * `tally simulate` command line → SimulateOptions. Every bad value or unknown flag is a
 * SimulateArgsError whose message starts with the flag at fault.
 */
import { randomInt } from 'node:crypto';
import { isScenarioName, SCENARIO_DEFAULTS, SCENARIOS, type ScenarioName } from './scenarios.ts';
import { parseSpike, type Spike } from './spikes.ts';

/**
 * Where events go: REST (`POST /v1/events[:batch]`), gRPC (`tally.v1.IngestService` Publish or
 * PublishBatch) or gRPC over one long-lived `PublishStreamAcked` stream (`grpc-stream`).
 */
export type SimulateTarget =
  | {
      protocol: 'rest';
      /** Origin, e.g. `http://127.0.0.1:8080`. */
      url: string;
    }
  | {
      protocol: 'grpc' | 'grpc-stream';
      /** `host:port`. */
      address: string;
    };

/** The target as `--target` takes it. */
export function targetUrl(target: SimulateTarget): string {
  if (target.protocol === 'rest') return target.url;
  return `${target.protocol === 'grpc' ? 'grpc' : 'grpc+stream'}://${target.address}`;
}

export interface SimulateOptions {
  scenario: ScenarioName;
  /** Events per second (> 0). */
  ratePerSecond: number;
  /** How long events are scheduled; undefined when `total` ends the run instead. */
  durationMs: number | undefined;
  /** Stop after exactly this many events are sent; undefined: `durationMs` ends the run. */
  total: number | undefined;
  target: SimulateTarget;
  /** Seed of the scenario's generator (non-negative safe integer); printed in the summary. */
  seed: number;
  /** Events per request: 1 → Publish (`POST /v1/events`), more → PublishBatch (`POST /v1/events:batch`). */
  batchSize: number;
  /** Most requests in flight at once. */
  concurrency: number;
  /** Size of the target population (pages, posts, merchants, stores). */
  targets: number;
  /** Size of the user population. */
  users: number;
  /** Prefix of every event id (`<runId>-<n>`); reuse it with the same seed to replay identical events. */
  runId: string;
  /** Deadline of one request. */
  requestTimeoutMs: number;
  /**
   * How long a request that failed for a transient reason (503, UNAVAILABLE, a timeout, a refused
   * connection) is sent again, with the same events, ids and time, before it counts as failed; 0: never.
   */
  retryForMs: number;
  /** File that receives every acknowledged event as a JSON line; undefined: none. */
  ledgerPath: string | undefined;
  /** Targets whose rate is multiplied for a while (spikes.ts); empty: none. */
  spikes: Spike[];
  /** Create the scenario's demo alert rules before the run (demo-rules.ts). */
  demoRules: boolean;
}

/** A bad command line; `message` names the flag. `helpRequested` for `--help` / `-h`. */
export class SimulateArgsError extends Error {
  readonly helpRequested: boolean;

  constructor(message: string, helpRequested = false) {
    super(message);
    this.name = 'SimulateArgsError';
    this.helpRequested = helpRequested;
  }
}

export const SIMULATE_DEFAULTS = Object.freeze({
  scenario: 'clickstream' as ScenarioName,
  ratePerSecond: 200,
  durationMs: 60_000,
  target: 'http://127.0.0.1:8080',
  concurrency: 8,
  requestTimeoutMs: 30_000,
  /** --batch when not given: 1 up to this rate (events/s), `largeBatchSize` above it. */
  singleEventMaxRate: 50,
  largeBatchSize: 50,
});

/** Tally's default TALLY_MAX_BATCH_EVENTS. */
export const MAX_BATCH_SIZE = 1000;
const MAX_RATE = 1_000_000;
const MAX_CONCURRENCY = 1024;
const MAX_TARGETS = 100_000_000;
const MAX_USERS = 1_000_000_000;
const RUN_ID = /^[A-Za-z0-9]{1,16}$/;

export const SIMULATE_USAGE = `usage: tally simulate [flags]

Sends realistic events to a running Tally at a fixed rate (an open model: sends follow the
schedule whatever the response times), shows live progress on stderr and a summary on stdout.

flags:
  --scenario NAME     ${SCENARIOS.join(' | ')} (default ${SIMULATE_DEFAULTS.scenario})
                        clickstream   shop sessions: VIEW and CLICK on Zipf-popular pages
                        social        like, comment, share, post on Zipf-popular posts
                        transactions  card payments at Zipf-popular merchants (value = amount)
                        orders        order.created → assigned → preparing → picked_up → delivered
  --rate N            events per second, > 0 (default ${SIMULATE_DEFAULTS.ratePerSecond})
  --duration D        how long to send: 30s, 5m, 1h, 1500ms or plain seconds (default 60s)
  --total N           stop after exactly N events instead (not with --duration)
  --target URL        http://host:port (REST), grpc://host:port (gRPC Publish / PublishBatch)
                        or grpc+stream://host:port (gRPC: one PublishStreamAcked stream,
                        each request one message, answered when its events are acked)
                        (default ${SIMULATE_DEFAULTS.target})
  --seed N            seed of the scenario, a non-negative integer (default random; printed
                        in the summary so the run can be repeated)
  --batch N           events per request, 1..${MAX_BATCH_SIZE}: 1 uses POST /v1/events (Publish),
                        more POST /v1/events:batch (PublishBatch) (default 1 up to
                        --rate ${SIMULATE_DEFAULTS.singleEventMaxRate}, else ${SIMULATE_DEFAULTS.largeBatchSize})
  --concurrency N     most requests in flight (default ${SIMULATE_DEFAULTS.concurrency})
  --targets N         pages / posts / merchants / stores
                        (default ${defaultsText('targets')})
  --users N           visitors / members / card holders / customers
                        (default ${defaultsText('users')})
  --run-id ID         prefix of the event ids, 1-16 letters or digits (default random); the same
                        seed and run id send identical events, which Tally counts only once
  --timeout D         deadline of one request (default 30s)
  --retry-for D       send a request that failed for a transient reason (503, UNAVAILABLE, a
                        timeout, a refused connection) again, with the same events, ids and
                        time, with backoff, for up to D before it counts as failed (default 0:
                        no retries); Tally counts a retried event once
  --ledger FILE       write every acknowledged event to FILE as a JSON line (id, type,
                        target, userId, value, occurredAtMs, attributes), to check Tally's figures against
  --spike SPEC        TARGET:at=TIME:x=FACTOR:for=DURATION, e.g. post/7:at=60s:x=20:for=30s: from
                        TIME into the run, for DURATION, TARGET gets FACTOR times its own rate
                        (each of its events followed by FACTOR − 1 more of the same type from
                        other users); may be given more than once
  --demo-rules        before sending, create the scenario's demo alert rules through
                        /v1/alert-rules unless they exist (social: likes reaching milestones on
                        each post, likes spiking on a post), so the dashboard shows alerts
  -h, --help          this text
`;

function defaultsText(key: 'targets' | 'users'): string {
  return SCENARIOS.map((s) => `${s} ${SCENARIO_DEFAULTS[s][key].toLocaleString('en-US')}`).join(', ');
}

type Flag =
  | 'scenario'
  | 'rate'
  | 'duration'
  | 'total'
  | 'target'
  | 'seed'
  | 'batch'
  | 'concurrency'
  | 'targets'
  | 'users'
  | 'run-id'
  | 'timeout'
  | 'retry-for'
  | 'ledger'
  | 'spike';

const FLAGS: readonly Flag[] = [
  'scenario',
  'rate',
  'duration',
  'total',
  'target',
  'seed',
  'batch',
  'concurrency',
  'targets',
  'users',
  'run-id',
  'timeout',
  'retry-for',
  'ledger',
  'spike',
];

function isFlag(name: string): name is Flag {
  return (FLAGS as readonly string[]).includes(name);
}

/** Parses the arguments after `simulate`; throws SimulateArgsError naming the flag at fault. */
export function parseSimulateArgs(argv: readonly string[]): SimulateOptions {
  const given = new Map<Flag, string>();
  const spikes: Spike[] = [];
  let demoRules = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') throw new SimulateArgsError('help requested', true);
    if (arg === '--demo-rules') {
      demoRules = true;
      continue;
    }
    if (arg.startsWith('--demo-rules=')) throw new SimulateArgsError('--demo-rules: takes no value');
    if (!arg.startsWith('--')) throw new SimulateArgsError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (!isFlag(name))
      throw new SimulateArgsError(
        `--${name}: unknown flag (flags: ${FLAGS.map((f) => `--${f}`).join(', ')}, --demo-rules)`,
      );
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--'))
        throw new SimulateArgsError(`--${name}: needs a value`);
      value = next;
      i++;
    }
    if (name === 'spike') {
      const spike = parseSpike(value, plainDuration);
      if (typeof spike === 'string') throw new SimulateArgsError(`--spike: ${spike}; got ${quote(value)}`);
      spikes.push(spike);
      continue;
    }
    if (given.has(name)) throw new SimulateArgsError(`--${name}: given more than once`);
    given.set(name, value);
  }

  const scenarioText = given.get('scenario') ?? SIMULATE_DEFAULTS.scenario;
  if (!isScenarioName(scenarioText))
    throw new SimulateArgsError(
      `--scenario: must be one of ${SCENARIOS.join(', ')}; got ${quote(scenarioText)}`,
    );
  const scenario = scenarioText;

  const rateText = given.get('rate');
  const ratePerSecond = rateText === undefined ? SIMULATE_DEFAULTS.ratePerSecond : parseRate(rateText);

  const durationText = given.get('duration');
  const totalText = given.get('total');
  if (durationText !== undefined && totalText !== undefined)
    throw new SimulateArgsError(
      '--total: cannot be combined with --duration (--total stops after exactly N events)',
    );
  const total =
    totalText === undefined ? undefined : parseInteger('total', totalText, 1, Number.MAX_SAFE_INTEGER);
  const durationMs =
    total !== undefined
      ? undefined
      : durationText === undefined
        ? SIMULATE_DEFAULTS.durationMs
        : parseDuration('duration', durationText);

  const batchText = given.get('batch');
  const batchSize =
    batchText === undefined
      ? ratePerSecond <= SIMULATE_DEFAULTS.singleEventMaxRate
        ? 1
        : SIMULATE_DEFAULTS.largeBatchSize
      : parseInteger('batch', batchText, 1, MAX_BATCH_SIZE);

  const seedText = given.get('seed');
  const runId = given.get('run-id') ?? randomRunId();
  if (!RUN_ID.test(runId))
    throw new SimulateArgsError(`--run-id: must be 1 to 16 letters or digits; got ${quote(runId)}`);

  const timeoutText = given.get('timeout');
  const retryForText = given.get('retry-for');
  const ledgerPath = given.get('ledger');
  const target = parseTarget(given.get('target') ?? SIMULATE_DEFAULTS.target);
  if (demoRules && target.protocol !== 'rest')
    throw new SimulateArgsError('--demo-rules: creates the rules over REST, so it needs an http:// --target');
  if (ledgerPath !== undefined && ledgerPath.trim() === '')
    throw new SimulateArgsError('--ledger: must be a file path; got ""');
  return {
    scenario,
    ratePerSecond,
    durationMs,
    total,
    target,
    seed:
      seedText === undefined
        ? randomInt(0, 2 ** 32)
        : parseInteger('seed', seedText, 0, Number.MAX_SAFE_INTEGER),
    batchSize,
    concurrency: optionalInteger(given, 'concurrency', 1, MAX_CONCURRENCY) ?? SIMULATE_DEFAULTS.concurrency,
    targets: optionalInteger(given, 'targets', 1, MAX_TARGETS) ?? SCENARIO_DEFAULTS[scenario].targets,
    users: optionalInteger(given, 'users', 1, MAX_USERS) ?? SCENARIO_DEFAULTS[scenario].users,
    runId,
    requestTimeoutMs:
      timeoutText === undefined ? SIMULATE_DEFAULTS.requestTimeoutMs : parseDuration('timeout', timeoutText),
    retryForMs:
      retryForText === undefined || retryForText === '0' ? 0 : parseDuration('retry-for', retryForText),
    ledgerPath,
    spikes,
    demoRules,
  };
}

function quote(text: string): string {
  return JSON.stringify(text);
}

function parseRate(text: string): number {
  const rate = /^\d+(\.\d+)?$|^\.\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!(rate > 0) || rate > MAX_RATE)
    throw new SimulateArgsError(
      `--rate: must be a number of events per second, greater than 0 and at most ${MAX_RATE.toLocaleString('en-US')}; got ${quote(text)}`,
    );
  return rate;
}

function parseInteger(flag: Flag, text: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new SimulateArgsError(
      `--${flag}: must be an integer from ${min} to ${max.toLocaleString('en-US')}; got ${quote(text)}`,
    );
  return value;
}

function optionalInteger(given: Map<Flag, string>, flag: Flag, min: number, max: number): number | undefined {
  const text = given.get(flag);
  return text === undefined ? undefined : parseInteger(flag, text, min, max);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const MAX_DURATION_MS = 30 * 24 * 3_600_000;

/** `30s`, `5m`, `1h`, `1500ms`, `1.5m`, or plain seconds (`45`); NaN for anything else. */
function durationOf(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const ms = match ? Number(match[1]) * UNIT_MS[match[2] ?? 's']! : Number.NaN;
  return ms > 0 && ms <= MAX_DURATION_MS ? Math.round(ms) : Number.NaN;
}

const DURATION_FORM =
  'a positive duration such as 30s, 5m, 1h, 1500ms or a number of seconds (at most 30 days)';

function parseDuration(flag: Flag, text: string): number {
  const ms = durationOf(text);
  if (Number.isNaN(ms))
    throw new SimulateArgsError(`--${flag}: must be ${DURATION_FORM}; got ${quote(text)}`);
  return ms;
}

/** A duration within a spike's text. */
function plainDuration(text: string): number {
  const ms = durationOf(text);
  if (Number.isNaN(ms)) throw new Error(`must be ${DURATION_FORM}, not ${quote(text)}`);
  return ms;
}

function parseTarget(text: string): SimulateTarget {
  const fail = (why: string): never => {
    throw new SimulateArgsError(
      `--target: must be http://host:port (REST), grpc://host:port (gRPC) or grpc+stream://host:port (gRPC stream)${why}; got ${quote(text)}`,
    );
  };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('');
  }
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '' && url.pathname !== '/'))
    return fail(', with no path, query or credentials');
  if (url.protocol === 'http:' || url.protocol === 'https:') return { protocol: 'rest', url: url.origin };
  if (url.protocol === 'grpc:' || url.protocol === 'grpc+stream:') {
    if (url.hostname === '' || url.port === '') return fail(', the gRPC port included');
    return { protocol: url.protocol === 'grpc:' ? 'grpc' : 'grpc-stream', address: url.host };
  }
  return fail('');
}

function randomRunId(): string {
  let id = '';
  for (let i = 0; i < 8; i++) id += randomInt(36).toString(36);
  return id;
}

/** The flags that repeat a run (same scenario, seed and shape; a new run id unless `withRunId`). */
export function simulateCommandLine(options: SimulateOptions, withRunId = false): string {
  const parts = [
    `--scenario ${options.scenario}`,
    `--rate ${options.ratePerSecond}`,
    options.total !== undefined
      ? `--total ${options.total}`
      : `--duration ${formatDurationFlag(options.durationMs ?? 0)}`,
    `--target ${targetUrl(options.target)}`,
    `--seed ${options.seed}`,
    `--batch ${options.batchSize}`,
    `--concurrency ${options.concurrency}`,
    `--targets ${options.targets}`,
    `--users ${options.users}`,
  ];
  if (options.requestTimeoutMs !== SIMULATE_DEFAULTS.requestTimeoutMs)
    parts.push(`--timeout ${formatDurationFlag(options.requestTimeoutMs)}`);
  if (options.retryForMs > 0) parts.push(`--retry-for ${formatDurationFlag(options.retryForMs)}`);
  for (const spike of options.spikes)
    parts.push(
      `--spike ${spike.target}:at=${formatDurationFlag(spike.atMs)}:x=${spike.factor}:for=${formatDurationFlag(spike.forMs)}`,
    );
  if (options.demoRules) parts.push('--demo-rules');
  if (withRunId) parts.push(`--run-id ${options.runId}`);
  return `tally simulate ${parts.join(' ')}`;
}

function formatDurationFlag(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
