/**
 * Baseline: `redis-benchmark` (Debian's redis-tools) on the commands the counter sink and the
 * query role send (services/infra/counters/redis-counter-store.ts): EVALSHA of the counter
 * store's own apply script (read from its source, so the baseline runs the very script the
 * sink runs, but for how an offset is read: see `benchApplyScript`) with one event and with
 * eight, the leaderboard's ZADD GT, and the HGETALL of a read. Keys live under the run's prefix,
 * per target as the sink's: counts, sums, marks with a field per partition, and unique users; nothing per event.
 */

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { UNIQUES_RETENTION_MS } from '../../services/infra/counters/counter-store.ts';

const run = promisify(execFile);

export interface RedisBenchOptions {
  redis: Redis;
  redisUrl: string;
  repo: string;
  /** Key prefix (the run's); keys go under `<prefix>:rb:`. */
  prefix: string;
  /** Requests per command. */
  requests: number;
  /** Targets the counts keys spread over (as many as the load's targets). */
  targets: number;
  clients: number;
  pipeline: number;
  /** Partitions of the events topic: the fields of each target's marks hash. */
  partitions: number;
}

export interface RedisBenchRow {
  name: string;
  /** What one request is, in the sink's terms. */
  what: string;
  /** Events one request applies (0 for reads and leaderboard writes). */
  eventsPerRequest: number;
  requestsPerSecond: number;
  eventsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface RedisBenchResult {
  rows: RedisBenchRow[];
  /** Events the apply rows counted, checked against what they sent (every event applies). */
  appliedEvents?: number;
  clients: number;
  pipeline: number;
  requests: number;
  version: string;
}

/** The apply script of the counter store, from its source; throws if it cannot be found there. */
export function applyScript(repo: string): string {
  const source = readFileSync(join(repo, 'services', 'infra', 'counters', 'redis-counter-store.ts'), 'utf8');
  const m = /const APPLY_SCRIPT = `([\s\S]*?)`;/.exec(source);
  if (!m)
    throw new Error(
      'APPLY_SCRIPT not found in redis-counter-store.ts: update bench/baselines/redis-bench.ts',
    );
  return m[1]!;
}

/**
 * The apply script as the baseline runs it: the counter store's own, but with each event's offset
 * taken relative to the partition's mark (the mark + 1, + 2, …) rather than as sent.
 * redis-benchmark sends only random numbers, and a mark only moves forward: random offsets would
 * soon all be at or below the marks, and the script would skip them (a redelivery's work, not an
 * apply's). Relative offsets make every event apply with the sink's own commands (an HGET and an
 * HSET of the mark per call, an HINCRBY and, with a value, an HINCRBYFLOAT per event), for one
 * Lua addition more per event.
 */
export function benchApplyScript(script: string): string {
  const absolute = 'local offset = tonumber(ARGV[a])';
  if (!script.includes(absolute))
    throw new Error(
      `the apply script no longer reads offsets as \`${absolute}\`: update bench/baselines/redis-bench.ts`,
    );
  return script.replace(absolute, 'local offset = mark + tonumber(ARGV[a])');
}

/** The UTC day the baseline's events fall on (any day: it only names their unique-user keys). */
const BENCH_DAY_MS = Date.UTC(2026, 11, 6);

/** redis-benchmark's `__rand_int__`: the number zero-padded to 12 digits. */
const randInt = (n: number) => String(n).padStart(12, '0');

export async function runRedisBenchmark(options: RedisBenchOptions): Promise<RedisBenchResult> {
  const sha = (await options.redis.script('LOAD', benchApplyScript(applyScript(options.repo)))) as string;
  const p = `${options.prefix}:rb`;
  const target = `${p}:{__rand_int__}`;
  // Each target's marks hash holds a field per partition, as the sink's do once the target had
  // events in every partition; the calls move the middle one (a hash is searched field by field).
  const marks = options.redis.pipeline();
  const fields = Array.from({ length: options.partitions }, (_, i) => [String(i), '0']).flat();
  for (let t = 0; t < options.targets; t++) marks.hset(`${p}:{${randInt(t)}}:o`, ...fields);
  await marks.exec();
  const partition = String(Math.floor(options.partitions / 2));
  /**
   * One script call for one target's `events` ([offset, type, value] each), each with a user and
   * its day, as the sink sends them (the user's unique-user keys are written too): the store's
   * layout.
   */
  const applyCall = (events: string[][]) => [
    'EVALSHA',
    sha,
    '4',
    `${target}:n`,
    `${target}:s`,
    `${target}:o`,
    `${target}:u`,
    String(UNIQUES_RETENTION_MS / 1000),
    '1', // one partition of this target in the call
    partition,
    String(events.length),
    ...events.flatMap((e) => [...e, 'u__rand_int__', String(BENCH_DAY_MS)]),
  ];
  const applyOne = applyCall([['1', 'like', '']]);
  const applyEight = applyCall(
    Array.from({ length: 8 }, (_, i) =>
      i === 0 ? ['1', 'transaction', '12.5'] : [String(i + 1), 'like', ''],
    ),
  );
  const commands: {
    name: string;
    what: string;
    events: number;
    args: string[];
    /** Clients and pipeline depth when not the run's (a latency figure rather than a ceiling). */
    clients?: number;
    pipeline?: number;
  }[] = [
    { name: 'EVALSHA apply ×1', what: 'one event of a target in a batch', events: 1, args: applyOne },
    { name: 'EVALSHA apply ×8', what: 'eight events of a target in a batch', events: 8, args: applyEight },
    {
      name: 'ZADD GT',
      what: 'a leaderboard update',
      events: 0,
      args: ['ZADD', `${p}:top:{like}`, 'GT', '__rand_int__', `t:__rand_int__`],
    },
    { name: 'HGETALL', what: 'half a GetCounters read', events: 0, args: ['HGETALL', `${target}:n`] },
    {
      name: 'HGETALL, 10 clients, no pipeline',
      what: 'the latency of a read, as GetCounters sees it',
      events: 0,
      args: ['HGETALL', `${target}:n`],
      clients: 10,
      pipeline: 1,
    },
  ];
  const url = new URL(options.redisUrl);
  const rows: RedisBenchRow[] = [];
  // redis-benchmark issues requests a pipeline at a time, so it sends whole pipelines: a count
  // they divide, or the apply rows would apply more events than they are said to.
  const requestsOf = (c: (typeof commands)[number]) => {
    const pipeline = c.pipeline ?? options.pipeline;
    const n = c.events === 8 || c.pipeline === 1 ? Math.ceil(options.requests / 4) : options.requests;
    return Math.ceil(n / pipeline) * pipeline;
  };
  for (const c of commands) {
    const { stdout } = await run(
      'redis-benchmark',
      [
        '-h',
        url.hostname,
        '-p',
        url.port || '6379',
        '-n',
        String(requestsOf(c)),
        '-c',
        String(c.clients ?? options.clients),
        '-P',
        String(c.pipeline ?? options.pipeline),
        '-r',
        String(options.targets),
        '--csv',
        ...c.args,
      ],
      { maxBuffer: 1 << 20 },
    );
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    const line = stdout.trim().split('\n').at(-1) ?? '';
    const cols = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
    const rps = Number(cols[1]);
    if (!Number.isFinite(rps)) throw new Error(`redis-benchmark ${c.name}: unexpected output ${stdout}`);
    rows.push({
      name: c.name,
      what: c.what,
      eventsPerRequest: c.events,
      requestsPerSecond: rps,
      eventsPerSecond: rps * c.events,
      p50Ms: Number(cols[4]),
      p99Ms: Number(cols[6]),
    });
  }
  // Every event sent must have been applied, or the rows measured skipping rather than counting.
  const sent = commands.reduce((n, c) => n + c.events * requestsOf(c), 0);
  const counted = options.redis.pipeline();
  for (let t = 0; t < options.targets; t++) counted.hvals(`${p}:{${randInt(t)}}:n`);
  let appliedEvents = 0;
  for (const [error, values] of (await counted.exec()) ?? [])
    if (!error) for (const v of values as string[]) appliedEvents += Number(v);
  if (appliedEvents !== sent)
    throw new Error(
      `redis-benchmark: the apply rows sent ${sent} events, the counts hashes hold ${appliedEvents}`,
    );
  const { stdout: version } = await run('redis-benchmark', ['--version']);
  return {
    rows,
    appliedEvents,
    clients: options.clients,
    pipeline: options.pipeline,
    requests: options.requests,
    version: version.trim(),
  };
}
