/**
 * Baseline: `redis-benchmark` (Debian's redis-tools) on the commands the counter sink and the
 * query role send (services/infra/counters/redis-counter-store.ts): EVALSHA of the counter
 * store's own apply script (read from its source, so the baseline runs the very script the
 * sink runs) with one event and with eight, the leaderboard's ZADD GT, and the HGETALL of a
 * read. Keys live under the run's prefix; markers expire like the sink's.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';

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
  /** Marker expiry, ms (the sink's dedup window). */
  markerTtlMs: number;
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

export async function runRedisBenchmark(options: RedisBenchOptions): Promise<RedisBenchResult> {
  const sha = (await options.redis.script('LOAD', applyScript(options.repo))) as string;
  const p = `${options.prefix}:rb`;
  const target = `${p}:{__rand_int__}`;
  const marker = `${p}:{x}:e:__rand_int____rand_int__`; // two placeholders: ~targets² distinct ids
  const ttl = String(options.markerTtlMs);
  const applyOne = ['EVALSHA', sha, '3', `${target}:n`, `${target}:s`, marker, ttl, 'like', ''];
  const eight = Array.from({ length: 8 }, () => marker);
  const eightArgs = Array.from({ length: 8 }, (_, i) => (i === 0 ? ['transaction', '12.5'] : ['like', '']));
  const applyEight = ['EVALSHA', sha, '10', `${target}:n`, `${target}:s`, ...eight, ttl, ...eightArgs.flat()];
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
  for (const c of commands) {
    const { stdout } = await run(
      'redis-benchmark',
      [
        '-h',
        url.hostname,
        '-p',
        url.port || '6379',
        '-n',
        String(c.events === 8 || c.pipeline === 1 ? Math.ceil(options.requests / 4) : options.requests),
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
  const { stdout: version } = await run('redis-benchmark', ['--version']);
  return {
    rows,
    clients: options.clients,
    pipeline: options.pipeline,
    requests: options.requests,
    version: version.trim(),
  };
}
