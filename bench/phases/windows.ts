/**
 * Phase `windows`: the sliding-window aggregates (docs/aggregates.md).
 * - Load: `plan.windows.users` users' aggregates of one type (`transaction`), written through the
 *   aggregate store's own apply path (`createRedisAggregateStore(...).apply`, what the counter
 *   calls for each batch) on the namespace's Redis prefix: each event to its user's series and to
 *   its target's, as the counter applies it, with event times over the last 24 hours.
 * - Queries: `QueryService/GetWindows` with the plan's windows (1h, 6h, 24h) in one call, for a
 *   uniformly random user of them, at a fixed rate (bench/grpc-query.js, QUERY=windows); the
 *   baseline is GetCounters at the same rate on the same transport (the queries phase's run when
 *   it ran at that rate, else measured here).
 * - Freshness: every consumer role running, the counter with TALLY_AGGREGATE_TYPES empty (every
 *   type: the bookkeeping phase runs it with none), the simulators at `freshnessRate` events/s;
 *   probes — one `transaction` event of a fresh user each — go through ingest's Publish, and from
 *   each acknowledgement the harness polls GetWindows on the query role until the 1h window
 *   counts it.
 */

import { IngestService } from '../../services/gen/tally/v1/ingest_pb.js';
import { QueryService } from '../../services/gen/tally/v1/query_pb.js';
import type { AggregateIncrement } from '../../services/infra/aggregates/aggregate-store.ts';
import { createRedisAggregateStore } from '../../services/infra/aggregates/redis-aggregate-store.ts';
import { createGrpcClient } from '../../services/infra/grpc/grpc-service.ts';
import { CONSUMER_ROLES } from '../lib/deployment.ts';
import { type Bench, cpuWindow, describeCpu, fmt, sleep } from '../lib/harness.ts';
import type { Quantiles, WindowsResult } from '../lib/results.ts';
import { firstBatches, runSimulator, SCENARIO_SHARES } from './e2e.ts';
import { queryRun } from './queries.ts';

/** The event type of the loaded series and of the probes: the transactions scenario's. */
const TYPE = 'transaction';
const USER_PREFIX = 'win-user-';
/** The partitions the loaded events claim (as the events topic's); offsets run on per partition. */
const LOAD_PARTITIONS = 12;
/** How often a pending probe's window is read, ms. */
const POLL_MS = 5;

export async function runWindows(b: Bench): Promise<void> {
  const { plan, results, progress } = b;
  const p = plan.windows;
  const load = await loadAggregates(b);
  const env = {
    QUERY: 'windows',
    WINDOW_USERS: String(p.users),
    WINDOW_USER_PREFIX: USER_PREFIX,
    WINDOW_TYPE: TYPE,
    WINDOWS: p.windows.join(','),
  };
  const query = await queryRun(b, 'get-windows', p.rate, p.seconds, env);
  const fromQueries = results.getCounters?.rate === p.rate ? results.getCounters : undefined;
  if (fromQueries) progress(`baseline: GetCounters at ${fmt(p.rate)} calls/s from the queries phase`);
  const baseline =
    fromQueries ?? (await queryRun(b, 'get-counters-baseline', p.rate, p.seconds, { QUERY: 'counters' }));
  results.windows = {
    load,
    windows: p.windows,
    type: TYPE,
    query,
    baseline: { ...baseline, measuredIn: fromQueries ? 'queries' : 'windows' },
  };
  results.windows.freshness = await freshness(b);
}

/**
 * Writes `users` users' aggregates through the aggregate store's apply path, in calls of a few
 * thousand increments, four at a time: each user's events in one call, offsets ascending.
 */
async function loadAggregates(b: Bench): Promise<WindowsResult['load']> {
  const { plan, deployment, ns, progress } = b;
  const p = plan.windows;
  const store = createRedisAggregateStore({ url: deployment.servers.redisUrl, keyPrefix: ns.redisPrefix });
  const usedMemory = async () => {
    const info = await deployment.redis.info('memory');
    const m = /used_memory:(\d+)/.exec(info);
    return m ? Number(m[1]) : undefined;
  };
  try {
    const memoryBefore = await usedMemory();
    const started = Date.now();
    const offsets = new Array<number>(LOAD_PARTITIONS).fill(0);
    const dayMs = 24 * 3_600_000;
    let increments = 0;
    const usersPerCall = Math.max(1, Math.floor(2000 / (2 * p.eventsPerUser)));
    let next = 1;
    const call = (): AggregateIncrement[] | undefined => {
      if (next > p.users) return undefined;
      const batch: AggregateIncrement[] = [];
      for (let k = next; k < Math.min(p.users + 1, next + usersPerCall); k++) {
        const partition = k % LOAD_PARTITIONS;
        for (let e = 0; e < p.eventsPerUser; e++) {
          const position = BigInt(++offsets[partition]!);
          // Within the last 24 h, a minute clear of now (the load takes a while).
          const timeMs = started - 60_000 - Math.floor(Math.random() * (dayMs - 120_000));
          const value = Math.round(Math.random() * 20_000) / 100;
          const common = { partition, position, type: TYPE, timeMs, value };
          batch.push({ ...common, kind: 'user', subject: `${USER_PREFIX}${k}` });
          batch.push({ ...common, kind: 'target', subject: `win-merchant/${(k * 7 + e) % p.targets}` });
        }
      }
      next += usersPerCall;
      return batch;
    };
    let lastReport = Date.now();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let batch = call(); batch; batch = call()) {
          await store.apply(batch);
          increments += batch.length;
          if (Date.now() - lastReport > 10_000) {
            lastReport = Date.now();
            progress(`  windows: ${fmt(Math.min(p.users, next - 1))} of ${fmt(p.users)} users loaded`);
          }
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    const memoryAfter = await usedMemory();
    const load = {
      users: p.users,
      eventsPerUser: p.eventsPerUser,
      targets: p.targets,
      increments,
      seconds,
      redisBytes:
        memoryBefore !== undefined && memoryAfter !== undefined ? memoryAfter - memoryBefore : undefined,
    };
    progress(
      `windows: loaded ${fmt(p.users)} users × ${p.eventsPerUser} events (${fmt(increments)} increments, users' and targets' series) ` +
        `through the aggregate store's apply in ${fmt(seconds, 1)} s; Redis used_memory +${fmt((load.redisBytes ?? Number.NaN) / 2 ** 20)} MiB`,
    );
    return load;
  } finally {
    await store.close();
  }
}

/** Freshness: acknowledged → counted by GetWindows, under the simulators' load. */
async function freshness(b: Bench): Promise<NonNullable<WindowsResult['freshness']>> {
  const { plan, deployment, ns, rawDir, progress } = b;
  const p = plan.windows;
  // The counter keeps every type's aggregates (TALLY_AGGREGATE_TYPES empty), whatever ran before.
  // A consumer that was not running starts from the end of its backlog (the counter, restarted, from
  // its committed offsets).
  const counterRan = deployment.roles.has('counter');
  await deployment.stop('counter');
  for (const role of CONSUMER_ROLES)
    if (!deployment.roles.has(role) && !(role === 'counter' && counterRan)) await deployment.skipToEnd(role);
  await Promise.all(
    CONSUMER_ROLES.filter((role) => !deployment.roles.has(role)).map((role) =>
      deployment.start(role, role === 'counter' ? { TALLY_AGGREGATE_TYPES: '' } : {}),
    ),
  );
  const probes = new WindowProbes(
    `127.0.0.1:${deployment.ingestPort}`,
    `127.0.0.1:${deployment.queryPort}`,
    `win-${ns.id}`,
  );
  try {
    await probes.verify();
    const spawnedMs = Date.now();
    const sims = SCENARIO_SHARES.map(({ scenario, share }) =>
      runSimulator(
        scenario,
        p.freshnessRate * share,
        p.freshnessSeconds,
        deployment.ingestPort,
        `${rawDir}/windows-freshness-${scenario}.out`,
      ),
    );
    const startMs = await firstBatches(b);
    const remainingMs = p.freshnessSeconds * 1000 - (startMs - spawnedMs);
    probes.start(plan.probesPerSecond);
    const cpu = cpuWindow(b, 500, remainingMs - 1500);
    const sim = await Promise.all(sims);
    const stats = await probes.stop(p.drainTimeoutSeconds * 1000);
    const use = await cpu();
    const achievedRate = sim.reduce((t, s) => t + s.acknowledged, 0) / p.freshnessSeconds;
    const result = {
      rate: p.freshnessRate,
      achievedRate,
      seconds: p.freshnessSeconds,
      probesPerSecond: plan.probesPerSecond,
      pollMs: POLL_MS,
      ms: { ...stats.ms, unseen: stats.unseen, sent: stats.sent, failed: stats.failed },
      cpu: use,
    };
    progress(
      `windows freshness at ${fmt(achievedRate)} events/s: acknowledged → GetWindows p50 ${fmt(stats.ms.p50)} ms, p99 ${fmt(stats.ms.p99)} ms ` +
        `(${stats.ms.n} of ${stats.sent} probes, ${stats.unseen} unseen); cpu: ${describeCpu(use, ['ingest', 'persister', 'counter', 'aggregator', 'query', 'kafka', 'redis', 'simulator'])}`,
    );
    return result;
  } finally {
    probes.close();
  }
}

interface WindowProbe {
  user: string;
  ackedAt: number;
  seenMs?: number;
}

/**
 * Probes of the windows: each a `transaction` event of a user of its own, published through
 * ingest's Publish; from its acknowledgement, GetWindows for that user is read every POLL_MS
 * (every pending probe at once) until its 1h window counts the event.
 */
class WindowProbes {
  readonly #ingest;
  readonly #query;
  readonly #runId: string;
  #n = 0;
  #sent = 0;
  #failed = 0;
  #pending: WindowProbe[] = [];
  #done: WindowProbe[] = [];
  #publishTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(ingestAddr: string, queryAddr: string, runId: string) {
    this.#ingest = createGrpcClient(IngestService, ingestAddr, { defaultTimeoutMs: 30_000 });
    this.#query = createGrpcClient(QueryService, queryAddr, { defaultTimeoutMs: 10_000 });
    this.#runId = runId;
  }

  /** One probe, seen within `timeoutMs`: the counter keeps the type's aggregates and GetWindows reads them. */
  async verify(timeoutMs = 60_000): Promise<void> {
    const user = `${this.#runId}-verify`;
    await this.#ingest.publish({ event: { id: user, type: TYPE, target: 'win-probe/verify', userId: user } });
    const deadline = Date.now() + timeoutMs;
    while (!(await this.#counted(user))) {
      if (Date.now() > deadline)
        throw new Error(
          `a ${TYPE} event of ${user} never showed in GetWindows: does the counter keep the aggregates of the type (TALLY_AGGREGATE_TYPES)?`,
        );
      await sleep(50);
    }
  }

  start(perSecond: number): void {
    this.#publishTimer = setInterval(() => void this.#publish(), Math.max(1, 1000 / perSecond));
    this.#pollTimer = setInterval(() => void this.#poll(), POLL_MS);
  }

  /** Stops publishing, waits up to `waitMs` for the pending probes; the round's figures. */
  async stop(waitMs: number): Promise<{ ms: Quantiles; unseen: number; sent: number; failed: number }> {
    clearInterval(this.#publishTimer);
    await sleep(200);
    const deadline = Date.now() + waitMs;
    while (this.#pending.length > 0 && Date.now() < deadline) await sleep(50);
    clearInterval(this.#pollTimer);
    const latencies = this.#done.map((p) => p.seenMs!);
    return { ms: quantiles(latencies), unseen: this.#pending.length, sent: this.#sent, failed: this.#failed };
  }

  close(): void {
    clearInterval(this.#publishTimer);
    clearInterval(this.#pollTimer);
    this.#ingest.close();
    this.#query.close();
  }

  async #counted(user: string): Promise<boolean> {
    const answer = await this.#query.getWindows({ userId: user, type: TYPE, windows: ['1h'] });
    return (answer.windows[0]?.count ?? 0n) >= 1n;
  }

  async #publish(): Promise<void> {
    const user = `${this.#runId}-${this.#n++}`;
    this.#sent++;
    try {
      await this.#ingest.publish({
        event: { id: user, type: TYPE, target: 'win-probe/p', userId: user, value: 1 },
      });
    } catch {
      this.#failed++;
      return;
    }
    this.#pending.push({ user, ackedAt: performance.now() });
  }

  async #poll(): Promise<void> {
    if (this.#busy || this.#pending.length === 0) return;
    this.#busy = true;
    try {
      const waiting = [...this.#pending];
      const seen = await Promise.all(waiting.map((p) => this.#counted(p.user).catch(() => false)));
      const now = performance.now();
      waiting.forEach((p, i) => {
        if (seen[i]) p.seenMs = now - p.ackedAt;
      });
      this.#done.push(...waiting.filter((p) => p.seenMs !== undefined));
      this.#pending = this.#pending.filter((p) => p.seenMs === undefined);
    } finally {
      this.#busy = false;
    }
  }
}

export function quantiles(values: number[]): Quantiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}
