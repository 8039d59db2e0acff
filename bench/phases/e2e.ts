/**
 * Phase `e2e`: every consumer role running, three simulators stepping their rate over gRPC to
 * ingest while probes measure how long an acknowledged event takes to show in Redis and
 * PostgreSQL; a step passes when every group keeps up and drains. The Kafka client phase runs
 * the same search (`e2eSearch`).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMPILE_CACHE, CONSUMER_ROLES, type ConsumerRole } from '../lib/deployment.ts';
import { type Bench, cpuWindow, describeCpu, fmt, repo, sleep, track } from '../lib/harness.ts';
import { type ProbeStats, SINKS, VisibilityProbes } from '../lib/probes.ts';
import { has, histogram, histogramDelta, quantile, type Scrape, scrape, sumOf } from '../lib/prom.ts';
import type { E2eSeries, E2eStep, Quantiles } from '../lib/results.ts';
import { searchMax } from '../lib/steps.ts';
import type { Plan } from '../plan.ts';

type E2eStepping = Plan['e2e'];

export async function runE2e(b: Bench): Promise<void> {
  const { plan, results, deployment, ns } = b;
  for (const role of CONSUMER_ROLES) await deployment.skipToEnd(role);
  await Promise.all(CONSUMER_ROLES.map((role) => deployment.start(role)));
  results.e2e = await e2eSearch(b, {
    label: 'e2e',
    runId: `b${ns.id}`,
    stepping: plan.e2e,
    onReady: async () => {
      const first = await consumerScrape(b);
      results.metrics.lagGauge = [...first.values()].some((s) => has(s, 'tally_consumer_lag_messages'));
      results.metrics.visibleHistogram = [...first.values()].some((s) =>
        has(s, 'tally_sink_visible_latency_seconds_bucket'),
      );
    },
  });
}

/**
 * Steps the simulators' rate with every consumer role running (the caller started them),
 * probes going through; `onReady` runs once the first probe showed in every sink.
 */
export async function e2eSearch(
  b: Bench,
  options: { label: string; runId: string; stepping: E2eStepping; onReady?: () => Promise<void> },
): Promise<E2eSeries> {
  const { plan, results, deployment, ns, outOfTime } = b;
  const probes = new VisibilityProbes({
    ingestAddr: `127.0.0.1:${deployment.ingestPort}`,
    queryAddr: `127.0.0.1:${deployment.queryPort}`,
    redis: deployment.redis,
    pg: deployment.pg,
    redisPrefix: ns.redisPrefix,
    runId: options.runId,
    redisPollMs: results.setup.probeRedisPollMs,
    pgPollMs: results.setup.probePgPollMs,
  });
  try {
    await probes.verify();
    await options.onReady?.();
    let n = 0;
    const search = await searchMax<E2eStep>({
      ...options.stepping,
      minRate: plan.smoke ? 5 : 200,
      maxRate: 200_000,
      refine: !plan.smoke,
      outOfTime,
      run: async (rate) => {
        const name = `${options.label}-${++n}-${rate}`;
        const step = await e2eStep(b, rate, name, options.label, options.stepping, probes);
        return { rate, step, passed: step.passed, why: step.why };
      },
    });
    return { steps: search.steps.map((s) => s.step), best: search.best?.step };
  } finally {
    probes.close();
  }
}

/** Every consumer role's /metrics. */
async function consumerScrape({ deployment }: Bench): Promise<Map<ConsumerRole, Scrape>> {
  return new Map(
    await Promise.all(
      CONSUMER_ROLES.map(async (r) => [r, await scrape(deployment.roles.get(r)?.metricsPort)] as const),
    ),
  );
}

/** One end-to-end step: the simulators at `rate` events/s for the stepping's seconds. */
async function e2eStep(
  b: Bench,
  rate: number,
  name: string,
  label: string,
  stepping: E2eStepping,
  probes: VisibilityProbes,
): Promise<E2eStep> {
  const { plan, deployment, rawDir, progress } = b;
  const seconds = stepping.stepSeconds;
  const drainTimeoutSeconds = stepping.drainTimeoutSeconds;
  const before = await consumerScrape(b);
  const spawnedMs = Date.now();
  const sims = SCENARIO_SHARES.map(({ scenario, share }) =>
    runSimulator(
      scenario,
      rate * share,
      seconds,
      deployment.ingestPort,
      join(rawDir, `${name}-${scenario}.out`),
    ),
  );
  const startMs = await firstBatches(b);
  progress(
    `  ${label} ${fmt(rate)} events/s: the simulators' first batches arrived after ${fmt((startMs - spawnedMs) / 1000, 1)} s`,
  );
  probes.start(plan.probesPerSecond);
  const cpu = cpuWindow(b, 500, seconds * 1000 - 1500);
  const lagSamples = sampleLags(b);
  const sim = await Promise.all(sims);
  const lags = await lagSamples.stop();
  const stepCpu = await cpu();
  const offeredEvents = rate;
  const achievedEvents = sim.reduce((t, s) => t + s.acknowledged, 0) / seconds;
  const failedEvents = sim.reduce((t, s) => t + s.failed + s.missed, 0);
  // Drain: every group commits everything on the topic it reads, the persister first (probes
  // still being collected meanwhile).
  const [drainSeconds, stats] = await Promise.all([
    deployment.drained(drainTimeoutSeconds),
    probes.stop(drainTimeoutSeconds * 1000),
  ]);
  const after = await consumerScrape(b);
  const second = lags.filter((l) => l.atMs >= startMs + (seconds * 1000) / 2);
  const maxLag: Record<string, number> = {};
  const endLag: Record<string, number> = {};
  for (const role of CONSUMER_ROLES) {
    maxLag[role] = Math.max(0, ...second.map((l) => l.lag[role] ?? 0));
    endLag[role] = lags.at(-1)?.lag[role] ?? Number.NaN;
  }
  const step: E2eStep = {
    rate,
    offeredEvents,
    achievedEvents,
    failedEvents,
    maxLag,
    endLag,
    lagBound: Math.max(2 * rate, 2000),
    drainSeconds,
    probes: probeQuantiles(stats),
    histogram: visibleHistograms(before, after),
    passed: false,
    why: '',
    cpu: stepCpu,
  };
  const reasons = e2eFailures(step, seconds, drainTimeoutSeconds);
  step.passed = reasons.length === 0;
  step.why = reasons.join('; ');
  reportE2eStep(b, label, step);
  return step;
}

/**
 * The step starts when ingest sees the simulators' first batches (they take a second or two to
 * start): waits for them (at most 10 s; 2 s when ingest exports no count) and returns the time.
 */
export async function firstBatches({ deployment }: Bench): Promise<number> {
  const accepted = async () =>
    sumOf(await scrape(deployment.roles.get('ingest')?.metricsPort), 'tally_ingest_events_total');
  const exported = has(
    await scrape(deployment.roles.get('ingest')?.metricsPort),
    'tally_ingest_events_total',
  );
  const acceptedBefore = await accepted();
  const waitUntil = Date.now() + (exported ? 10_000 : 2_000);
  while (Date.now() < waitUntil && (!exported || (await accepted()) === acceptedBefore)) await sleep(50);
  return Date.now();
}

/**
 * The lag of every consumer group on the topic it reads, sampled each second until `stop()`: the
 * persister's on the events, the counter's and the aggregator's on the accepted topic (an event
 * on its way to the counter is in the persister's lag, then in the counter's).
 */
function sampleLags({ deployment }: Bench) {
  let running = true;
  const lags: { atMs: number; lag: Record<string, number> }[] = [];
  const lagLoop = (async () => {
    while (running) {
      const at = Date.now();
      const lag: Record<string, number> = {};
      for (const role of CONSUMER_ROLES) lag[role] = await deployment.lag(role).catch(() => Number.NaN);
      lags.push({ atMs: at, lag });
      await sleep(Math.max(0, 1000 - (Date.now() - at)));
    }
  })();
  return {
    async stop() {
      running = false;
      await lagLoop;
      return lags;
    },
  };
}

/** Why a step failed: each group's lag over its bound, a shortfall, failures, no drain. */
function e2eFailures(step: E2eStep, seconds: number, drainTimeoutSeconds: number): string[] {
  const { maxLag, lagBound, achievedEvents, offeredEvents, failedEvents, drainSeconds } = step;
  const reasons: string[] = [];
  for (const role of CONSUMER_ROLES)
    if (!(maxLag[role]! <= lagBound)) reasons.push(`${role} lag ${fmt(maxLag[role]!)} > ${fmt(lagBound)}`);
  if (achievedEvents < 0.95 * offeredEvents)
    reasons.push(`${fmt(achievedEvents)} of ${fmt(offeredEvents)} events/s acknowledged`);
  if (failedEvents > 0.001 * offeredEvents * seconds)
    reasons.push(`${fmt(failedEvents)} events failed or missed`);
  if (drainSeconds === undefined) reasons.push(`not drained ${drainTimeoutSeconds} s after the load`);
  return reasons;
}

function reportE2eStep({ progress }: Bench, label: string, step: E2eStep): void {
  const { rate, achievedEvents, maxLag, drainSeconds, cpu: stepCpu } = step;
  const p = step.probes;
  progress(
    `${label} ${fmt(rate)} events/s: ${fmt(achievedEvents)} acknowledged; max lag ${CONSUMER_ROLES.map((r) => `${r} ${fmt(maxLag[r]!)}`).join(', ')}; ` +
      `drained in ${drainSeconds === undefined ? '—' : `${fmt(drainSeconds, 1)} s`}; visible p50/p99: Redis ${fmt(p.counter!.p50)}/${fmt(p.counter!.p99)} ms, ` +
      `summary ${fmt(p.aggregator!.p50)}/${fmt(p.aggregator!.p99)} ms, event ${fmt(p.persister!.p50)}/${fmt(p.persister!.p99)} ms → ${step.passed ? 'pass' : `FAIL (${step.why})`}`,
  );
  progress(
    `  cpu: ${describeCpu(stepCpu, ['ingest', 'persister', 'counter', 'aggregator', 'kafka', 'redis', 'postgres', 'simulator'])}`,
  );
}

/** The simulator's scenarios, in the load tests' proportions (pages 50 %, posts 35 %, merchants 15 %). */
export const SCENARIO_SHARES = [
  { scenario: 'clickstream', share: 0.5 },
  { scenario: 'social', share: 0.35 },
  { scenario: 'transactions', share: 0.15 },
] as const;

interface SimulatorOutcome {
  acknowledged: number;
  failed: number;
  missed: number;
}

/** Runs `tally simulate` over gRPC batches to ingest; reads its summary. */
export async function runSimulator(
  scenario: string,
  rate: number,
  seconds: number,
  ingestPort: number,
  outFile: string,
): Promise<SimulatorOutcome> {
  const child = spawn(
    join(repo, 'bin', 'tally'),
    [
      'simulate',
      '--scenario',
      scenario,
      '--rate',
      String(Math.max(0.1, Math.round(rate * 10) / 10)),
      '--duration',
      `${seconds}s`,
      '--target',
      `grpc://127.0.0.1:${ingestPort}`,
      // Batches of up to 100, but no batch waits more than about 50 ms to fill.
      '--batch',
      String(Math.max(1, Math.min(100, Math.round(rate / 20)))),
      '--concurrency',
      '64',
      '--timeout',
      '10s',
    ],
    {
      cwd: repo,
      env: { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  track('simulator', child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  writeFileSync(outFile, `${out}\n--- stderr\n${err}`);
  const num = (s: string | undefined) => Number((s ?? 'NaN').replaceAll(',', ''));
  const m = /([\d,]+) sent: ([\d,]+) acknowledged, ([\d,]+) failed · ([\d,]+) missed/.exec(out);
  if (!m)
    throw new Error(`tally simulate ${scenario} exited with ${code} without a summary:\n${err.slice(-2000)}`);
  return { acknowledged: num(m[2]), failed: num(m[3]), missed: num(m[4]) };
}

function summarize(values: number[]): Quantiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}

function probeQuantiles(stats: ProbeStats): E2eStep['probes'] {
  const out: E2eStep['probes'] = {};
  for (const sink of SINKS) out[sink] = { ...summarize(stats.latencies[sink]), unseen: stats.unseen[sink] };
  return out;
}

/** Per sink, the visible latency the consumers observed during the step (their histogram). */
function visibleHistograms(
  before: Map<ConsumerRole, Scrape>,
  after: Map<ConsumerRole, Scrape>,
): Record<string, Quantiles> | undefined {
  const out: Record<string, Quantiles> = {};
  for (const role of CONSUMER_ROLES) {
    const a = after.get(role);
    const b = before.get(role);
    if (!a || !has(a, 'tally_sink_visible_latency_seconds_bucket')) return undefined;
    const h = histogramDelta(
      histogram(a, 'tally_sink_visible_latency_seconds', { sink: role }),
      histogram(b ?? new Map(), 'tally_sink_visible_latency_seconds', { sink: role }),
    );
    out[role] = {
      n: h.count,
      p50: quantile(h, 0.5) * 1000,
      p99: quantile(h, 0.99) * 1000,
      // The histogram knows the max only to its bucket: the bound of the first bucket holding every event.
      max: (h.buckets.find(([, n]) => n >= (h.buckets.at(-1)?.[1] ?? 0))?.[0] ?? Number.NaN) * 1000,
    };
  }
  return out;
}
