/**
 * The benchmark harness (`make bench`): runs Tally's roles as six processes on the local Kafka,
 * Redis and PostgreSQL (scripts/services-up.sh) in a namespace of its own, drives them with k6
 * (loadtest/rest-single.js; bench/'s variants of the batch and stream scripts, whose events are
 * built once per VU; bench/grpc-query.js) and the simulator, measures the baselines in the same
 * run (the Kafka client producing directly, a bare Node HTTP server, redis-benchmark, PostgreSQL
 * COPY), samples every process's CPU, and writes bench/RESULTS.md. Then it compares the two Kafka
 * clients (TALLY_KAFKA_CLIENT: the roles restarted with each) and measures what tracing and
 * metrics cost the ingest path.
 *
 *   node bench/bench.ts [--smoke] [--out FILE] [--raw-dir DIR] [--phases a,b,…] [--render FILE]
 *
 *   --smoke     seconds of tiny load on tiny tables (checks the harness end to end)
 *   --out       the report (default bench/RESULTS.md)
 *   --raw-dir   where k6 summaries and outputs go (default: a new temporary directory)
 *   --phases    run only these phases (for working on the harness): seed, bare-http, rest-single,
 *               rest-batch, grpc-stream, raw-producer, sinks, e2e, queries, kafka-clients, overhead
 *   --render    render the report of a previous run's results.json (in its raw directory) and exit
 *
 * The roles use the service's default Kafka client unless TALLY_KAFKA_CLIENT is set in the
 * harness's environment. Progress goes to stderr. Exits 1 when a phase failed (the report says
 * which, and why).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadConfig } from '../services/infra/config.ts';
import { handleProcessWarnings } from '../services/infra/node-warnings.ts';
import { requireRealServers } from '../services/testing/real-servers.ts';
import { runPgCopy } from './baselines/pg-copy.ts';
import { runRedisBenchmark } from './baselines/redis-bench.ts';
import { attribute, METRICS_CODE, monotonicMicros, readProfileOf } from './lib/cpu-profile.ts';
import {
  benchNamespace,
  COMPILE_CACHE,
  CONSUMER_ROLES,
  type ConsumerRole,
  Deployment,
  localServers,
  type Role,
} from './lib/deployment.ts';
import { type K6Result, runK6 } from './lib/k6.ts';
import { machine, versions } from './lib/machine.ts';
import { type ProbeStats, SINKS, VisibilityProbes } from './lib/probes.ts';
import { CpuSampler, type CpuUse, pidListeningOn, processTree } from './lib/proc.ts';
import { has, histogram, histogramDelta, quantile, type Scrape, scrape, sumOf } from './lib/prom.ts';
import {
  type CatchUp,
  type E2eSeries,
  type E2eStep,
  KAFKA_CLIENTS,
  KAFKA_LIBRARY,
  type KafkaClient,
  type KafkaClientRun,
  type KafkaClientsResult,
  type LoadStep,
  type MetricsProfile,
  type OverheadResult,
  type OverheadStage,
  type Quantiles,
  type QueryRun,
  type RawProducerRun,
  type Results,
  type Series,
} from './lib/results.ts';
import { seedReportTable } from './lib/seed-report.ts';
import { niceRate, searchMax } from './lib/steps.ts';
import { FULL, type Plan, SMOKE, type Stepping } from './plan.ts';
import { MULTI_THREADED, renderReport } from './report.ts';

handleProcessWarnings();

const PHASES = [
  'seed',
  'bare-http',
  'rest-single',
  'rest-batch',
  'grpc-stream',
  'raw-producer',
  'sinks',
  'e2e',
  'queries',
  // The last two restart ingest and the gateway with settings of their own, and stop the
  // consumers: no phase after them uses the deployment.
  'kafka-clients',
  'overhead',
] as const;
type Phase = (typeof PHASES)[number];

const repo = join(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    out: { type: 'string' },
    'raw-dir': { type: 'string' },
    phases: { type: 'string' },
    render: { type: 'string' },
  },
});
const plan: Plan = args.smoke ? SMOKE : FULL;
const outPath = args.out ?? join(repo, 'bench', 'RESULTS.md');
const rawDir = args['raw-dir'] ?? (args.render ? '' : mkdtempSync(join(tmpdir(), 'tally-bench-')));
if (rawDir) mkdirSync(rawDir, { recursive: true });
const phases = new Set<Phase>(
  args.phases ? (args.phases.split(',').map((p) => p.trim()) as Phase[]) : [...PHASES],
);
for (const p of phases) if (!PHASES.includes(p)) throw new Error(`--phases: unknown phase ${p}`);

const startedMs = Date.now();
const elapsed = () => (Date.now() - startedMs) / 1000;
const outOfTime = () => elapsed() > plan.budgetSeconds;

function progress(line: string): void {
  const s = Math.floor(elapsed());
  const stamp = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  process.stderr.write(`[bench ${stamp}] ${line}\n`);
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The processes the harness starts besides the roles, by CPU group.

const children = new Map<string, Set<number>>();
function track(group: string, child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  const set = children.get(group) ?? new Set<number>();
  children.set(group, set);
  set.add(pid);
  child.once('exit', () => set.delete(pid));
}

/**
 * Runs a Node script of the harness as a process of its own; resolves with its first stdout
 * line, and `next()` waits for each later one.
 */
async function spawnNode(
  group: string,
  script: string,
  scriptArgs: string[],
): Promise<{ child: ChildProcess; first: string; next: () => Promise<string>; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, [join(repo, script), ...scriptArgs], {
    cwd: repo,
    env: { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(group, child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = once(child, 'exit');
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await lines.next();
    if (line.done) {
      const [code] = (await exited) as [number | null];
      throw new Error(`${script} exited with ${code}: ${stderr.slice(-2000)}`);
    }
    return line.value;
  };
  return { child, first: await next(), next, exited };
}

// ---------------------------------------------------------------------------------------------

async function ensureServers(): Promise<void> {
  try {
    await requireRealServers();
  } catch {
    progress('the local servers are not running: starting them with scripts/services-up.sh');
    const child = spawn(join(repo, 'scripts', 'services-up.sh'), [], { cwd: repo, stdio: ['ignore', 2, 2] });
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`scripts/services-up.sh exited with ${code}`);
    await requireRealServers();
  }
}

function k6Path(): string {
  if (process.env.K6) return process.env.K6;
  const path = execFileSync(join(repo, 'scripts', 'install-k6.sh'), ['--print-path'], {
    encoding: 'utf8',
  }).trim();
  if (!existsSync(path)) throw new Error(`k6 is not installed at ${path}: run scripts/install-k6.sh`);
  return path;
}

async function main(): Promise<number> {
  const k6 = k6Path();
  await ensureServers();
  const m = machine();
  const ns = benchNamespace(12);
  const dedupWindowMs = 3_600_000;
  const deployment = new Deployment(ns, localServers, {
    TALLY_DEDUP_WINDOW_MS: String(dedupWindowMs),
    // The role processes get no TALLY_* variable of the harness's environment but this one.
    ...(process.env.TALLY_KAFKA_CLIENT ? { TALLY_KAFKA_CLIENT: process.env.TALLY_KAFKA_CLIENT } : {}),
  });
  const sampler = new CpuSampler(m.cores);
  const portOf = (url: string, fallback: number) => Number(new URL(url).port || fallback);
  const kafkaPid = pidListeningOn(Number(localServers.kafkaBrokers.split(',')[0]!.split(':')[1]));
  const redisPid = pidListeningOn(portOf(localServers.redisUrl, 6379));
  const pgPid = pidListeningOn(portOf(localServers.pgUrl, 5432));
  for (const role of ['gateway', 'ingest', 'query', ...CONSUMER_ROLES] as Role[])
    sampler.add({
      name: role,
      pids: () => {
        const r = deployment.roles.get(role);
        return r ? [r.pid] : [];
      },
    });
  sampler.add({ name: 'kafka', pids: () => (kafkaPid ? [kafkaPid] : []) });
  sampler.add({ name: 'redis', pids: () => (redisPid ? [redisPid] : []) });
  sampler.add({ name: 'postgres', pids: () => (pgPid ? processTree(pgPid) : []) });
  for (const group of [
    'k6',
    'simulator',
    'bare-http',
    'raw-producer',
    'redis-benchmark',
    'psql',
    'otlp-sink',
  ])
    sampler.add({ name: group, pids: () => [...(children.get(group) ?? [])] });
  sampler.add({ name: 'harness', pids: () => [process.pid] });
  sampler.start(500);

  progress(
    `${m.cpuModel}, ${m.cores} cores, ${m.memGiB.toFixed(1)} GiB; load average ${m.loadAverage.map((l) => l.toFixed(2)).join(' ')}`,
  );
  progress(
    `namespace ${ns.id} on ${localServers.kafkaBrokers}, ${localServers.redisUrl}, PostgreSQL schema ${ns.pgSchema}`,
  );
  progress(`k6 summaries and outputs in ${rawDir}`);

  // What the role processes run with: their environment parsed as they parse it.
  const roleConfig = loadConfig(deployment.env());
  const results: Results = {
    smoke: plan.smoke,
    startedAt: new Date(startedMs).toISOString(),
    seconds: 0,
    machine: m,
    versions: await versions({ repo, k6, redis: deployment.redis, pg: deployment.pg, kafkaPid }),
    setup: {
      namespace: ns.id,
      servers: `Kafka ${localServers.kafkaBrokers}, Redis ${localServers.redisUrl.replace(/\/\/[^@]*@/, '//')}, PostgreSQL ${localServers.pgUrl.replace(/\/\/[^@]*@/, '//')}`,
      partitions: ns.partitions,
      lingerMs: roleConfig.ingest.lingerMs,
      maxProduceBatchEvents: roleConfig.ingest.maxProduceBatchEvents,
      dedupWindowMs: roleConfig.redis.dedupWindowMs,
      stepSeconds: plan.stepSeconds,
      e2eStepSeconds: plan.e2e.stepSeconds,
      probeRedisPollMs: 5,
      probePgPollMs: 20,
      probesPerSecond: plan.probesPerSecond,
      kafkaClient: roleConfig.kafka.client,
    },
    rawProducer: [],
    catchUp: [],
    metrics: { lagGauge: false, visibleHistogram: false },
    errors: [],
  };

  /** Runs a phase; a failure is recorded and the run goes on. */
  const phase = async (name: Phase, work: () => Promise<void>) => {
    if (!phases.has(name)) return;
    progress(`── ${name}`);
    try {
      await work();
    } catch (error) {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      progress(`${name} failed: ${text}`);
      results.errors.push({ phase: name, error: error instanceof Error ? error.message : String(error) });
    }
  };

  /** CPU over a window inside a load: from `delayMs` after now for `lengthMs`. */
  const cpuWindow = (delayMs: number, lengthMs: number) => {
    let from = 0;
    let to = 0;
    const done = (async () => {
      await sleep(delayMs);
      from = sampler.sample();
      await sleep(Math.max(200, lengthMs));
      to = sampler.sample();
    })();
    return async (): Promise<CpuUse> => {
      await done;
      return sampler.use(from, to);
    };
  };

  const describeCpu = (cpu: CpuUse, groups: string[]) => {
    const waits = groups
      .filter((g) => !MULTI_THREADED.has(g) && (cpu.waitByGroup[g] ?? 0) >= 1)
      .map((g) => `${g} ${fmt(cpu.waitByGroup[g]!)}%`);
    return (
      `${groups.map((g) => `${g} ${fmt(cpu.byGroup[g] ?? 0)}%`).join(', ')}, other ${fmt(cpu.otherPct)}%, machine ${fmt(cpu.machineBusyPct)}% busy` +
      (waits.length > 0 ? `; waiting for a core: ${waits.join(', ')}` : '')
    );
  };

  try {
    // ── the roles
    progress('starting ingest and query, then the gateway (one process each)');
    await Promise.all([deployment.start('query'), deployment.start('ingest')]);
    await deployment.start('gateway');
    progress(
      `gateway http://127.0.0.1:${deployment.httpPort}, ingest 127.0.0.1:${deployment.ingestPort}, query 127.0.0.1:${deployment.queryPort}`,
    );

    // ── seed the summaries GetReport reads, before anything writes to the schema
    let seed: Awaited<ReturnType<typeof seedReportTable>> | undefined;
    await phase('seed', async () => {
      progress(
        `seeding event_summary: ${plan.seed.targetsPerFamily} targets per family × ${plan.seed.days} days × 24 hours`,
      );
      seed = await seedReportTable(deployment.pg, plan.seed);
      progress(
        `seeded ${fmt(seed.rows)} rows summarising ${fmt(seed.events)} events (${fmt(seed.tableBytes / 2 ** 20)} MiB) in ${fmt(seed.seconds, 1)} s`,
      );
    });

    // ── ingest-side series with k6
    const ingestMetricsPort = () => deployment.roles.get('ingest')?.metricsPort;
    const k6Series = async (options: {
      label: string;
      script: string;
      latencyMetric: string;
      stepping: Stepping;
      /** Of each step (default: the plan's). */
      seconds?: number;
      eventsPerIteration: number;
      iteration: string;
      blowUpMs: number;
      env: (rate: number) => Record<string, string>;
      columns: string[];
      withIngest: boolean;
    }): Promise<Series> => {
      let n = 0;
      const search = await searchMax<LoadStep>({
        start: options.stepping.start,
        factor: options.stepping.factor,
        maxSteps: options.stepping.maxSteps,
        minRate: 1,
        maxRate: 100_000,
        refine: !plan.smoke,
        outOfTime,
        run: async (rate) => {
          const step = await k6Step({ ...options, rate, name: `${options.label}-${++n}-${rate}` });
          progress(
            `${options.label} ${fmt(rate)} ${options.iteration}/s (${fmt(step.offeredEvents)} events/s): ` +
              `${fmt(step.achievedEvents)} events/s acknowledged, p50 ${fmt(step.latency.p50, 1)} ms, ` +
              `p99 ${fmt(step.latency.p99, 1)} ms, dropped ${fmt(step.dropped)}, failed ${fmt(step.failedRate * 100, 2)}%` +
              `${step.writes ? `, ${fmt(step.writes.meanEvents)} events per Kafka write` : ''} → ${step.passed ? 'pass' : `FAIL (${step.why})`}`,
          );
          progress(`  cpu: ${describeCpu(step.cpu, options.columns)}`);
          return { rate, step, passed: step.passed, why: step.why };
        },
      });
      return {
        iteration: options.iteration,
        eventsPerIteration: options.eventsPerIteration,
        blowUpMs: options.blowUpMs,
        steps: search.steps.map((s) => s.step),
        best: search.best?.step,
        columns: options.columns,
      };
    };

    const k6Step = async (options: {
      name: string;
      script: string;
      latencyMetric: string;
      rate: number;
      seconds?: number;
      eventsPerIteration: number;
      blowUpMs: number;
      env: (rate: number) => Record<string, string>;
      withIngest: boolean;
    }): Promise<LoadStep> => {
      const seconds = options.seconds ?? plan.stepSeconds;
      const before = options.withIngest ? await scrape(ingestMetricsPort()) : undefined;
      const result: K6Result = await runK6({
        k6,
        repo,
        script: options.script,
        env: {
          RATE: String(options.rate),
          DURATION: `${seconds}s`,
          ...options.env(options.rate),
        },
        outBase: join(rawDir, options.name),
        latencyMetric: options.latencyMetric,
        onSpawn: (child) => track('k6', child),
      });
      const after = options.withIngest ? await scrape(ingestMetricsPort()) : undefined;
      const judged = judgeLoad(result, options.blowUpMs);
      let writes: LoadStep['writes'];
      if (before && after && has(after, 'tally_kafka_produce_batch_events_count')) {
        const h = histogramDelta(
          histogram(after, 'tally_kafka_produce_batch_events'),
          histogram(before, 'tally_kafka_produce_batch_events'),
        );
        const d = histogramDelta(
          histogram(after, 'tally_kafka_produce_duration_seconds'),
          histogram(before, 'tally_kafka_produce_duration_seconds'),
        );
        writes = {
          meanEvents: h.count > 0 ? h.sum / h.count : 0,
          perSecond: h.count / seconds,
          p99Ms: quantile(d, 0.99) * 1000,
        };
      }
      return {
        rate: options.rate,
        offeredEvents: options.rate * options.eventsPerIteration,
        achievedEvents: result.acceptedPerSecond,
        latency: result.latency,
        planned: result.planned,
        dropped: result.dropped,
        failedRate: result.failedRate,
        passed: judged.passed,
        why: judged.why,
        // The samples inside the load (k6's start-up and its VUs' initialisation left out).
        cpu: sampler.use(result.loadFromMs + 300, result.loadToMs - 300),
        loadMs: { from: result.loadFromMs, to: result.loadToMs },
        writes,
      };
    };

    /**
     * VUs for an open model: enough allocated up front for 100 ms per iteration (k6 drops
     * iterations while it initialises VUs mid-run), at most enough for the blow-up latency.
     */
    const vus = (rate: number, blowUpMs: number, preMs = 100) => {
      const pre = Math.max(10, Math.ceil((rate * preMs) / 1000));
      return {
        VUS: String(Math.min(1500, pre)),
        MAX_VUS: String(Math.min(2000, Math.max(pre, Math.ceil((rate * blowUpMs) / 1000) + 10))),
      };
    };
    const restEnv = (url: () => string, blowUpMs: number) => (rate: number) => ({
      TALLY_URL: url(),
      ...vus(rate, blowUpMs),
      P99_MS: String(blowUpMs),
    });

    await phase('bare-http', async () => {
      const { child, first } = await spawnNode('bare-http', 'bench/baselines/bare-http.ts', []);
      const port = (JSON.parse(first) as { port: number }).port;
      try {
        results.bareHttp = await k6Series({
          label: 'bare-http',
          script: 'loadtest/rest-single.js',
          latencyMetric: 'http_req_duration',
          stepping: plan.restSingle,
          eventsPerIteration: 1,
          iteration: 'request',
          blowUpMs: 100,
          env: restEnv(() => `http://127.0.0.1:${port}`, 100),
          columns: ['bare-http', 'k6'],
          withIngest: false,
        });
      } finally {
        child.kill('SIGTERM');
      }
    });

    const gatewayUrl = () => `http://127.0.0.1:${deployment.httpPort}`;

    // The ingest loads, as the phases below run them (the Kafka client and overhead phases too).
    const restSingleLoad = {
      script: 'loadtest/rest-single.js',
      latencyMetric: 'http_req_duration',
      eventsPerIteration: 1,
      iteration: 'request',
      blowUpMs: 100,
      env: restEnv(gatewayUrl, 100),
      columns: ['gateway', 'ingest', 'kafka', 'k6'],
      withIngest: true,
    };
    const batchSize = plan.restBatch.batchSize;
    const batchBlowUpMs = 5 * (20 + batchSize);
    // The bodies are built once per VU: k6 generating every event costs about what ingesting it does.
    const restBatchLoad = {
      script: 'bench/rest-batch-prebuilt.js',
      latencyMetric: 'http_req_duration',
      eventsPerIteration: batchSize,
      iteration: `batch of ${batchSize}`,
      blowUpMs: batchBlowUpMs,
      env: (rate: number) => ({
        ...restEnv(gatewayUrl, batchBlowUpMs)(rate),
        ...vus(rate, batchBlowUpMs, 200),
        BATCH_SIZE: String(batchSize),
      }),
      columns: ['gateway', 'ingest', 'kafka', 'k6'],
      withIngest: true,
    };
    const streamEvents = plan.grpcStream.streamEvents;
    const streamBlowUpMs = 5 * (20 + streamEvents);
    // The events are built once per VU, as for the REST batches.
    const grpcStreamLoad = {
      script: 'bench/grpc-stream-prebuilt.js',
      latencyMetric: 'tally_stream_duration',
      eventsPerIteration: streamEvents,
      iteration: `stream of ${streamEvents}`,
      blowUpMs: streamBlowUpMs,
      env: (rate: number) => ({
        TALLY_GRPC: `127.0.0.1:${deployment.ingestPort}`,
        STREAM_EVENTS: String(streamEvents),
        ...vus(rate, streamBlowUpMs, 500),
        P99_MS: String(streamBlowUpMs),
      }),
      columns: ['ingest', 'kafka', 'k6'],
      withIngest: true,
    };

    await phase('rest-single', async () => {
      const series = await k6Series({ label: 'rest-single', stepping: plan.restSingle, ...restSingleLoad });
      results.restSingle = series;
      if (!series.best) return;
      const rate = niceRate(series.best.rate * 0.7);
      progress(`rest-single at 70 % of the maximum: ${fmt(rate)} requests/s for ${plan.at70Seconds} s`);
      results.at70 = await k6Step({
        name: 'rest-single-70pct',
        rate,
        seconds: plan.at70Seconds,
        ...restSingleLoad,
      });
      progress(
        `  70 %: ${fmt(results.at70.achievedEvents)} events/s, p50 ${fmt(results.at70.latency.p50, 1)} ms, p99 ${fmt(results.at70.latency.p99, 1)} ms; cpu: ${describeCpu(results.at70.cpu, ['gateway', 'ingest', 'kafka', 'k6'])}`,
      );
    });

    await phase('rest-batch', async () => {
      const series = await k6Series({ label: 'rest-batch', stepping: plan.restBatch, ...restBatchLoad });
      results.restBatch = series;
      if (!series.best) return;
      // The load tests' own script at the same rate, for the generator's cost.
      const rate = series.best.rate;
      const step = await k6Step({
        name: 'rest-batch-loadtest-script',
        rate,
        ...restBatchLoad,
        script: 'loadtest/rest-batch.js',
      });
      results.restBatchLoadtestScript = step;
      progress(
        `rest-batch with loadtest/rest-batch.js at ${fmt(rate)} batches/s: ${fmt(step.achievedEvents)} events/s, p99 ${fmt(step.latency.p99, 1)} ms → ${step.passed ? 'pass' : `FAIL (${step.why})`}; cpu: ${describeCpu(step.cpu, ['gateway', 'ingest', 'kafka', 'k6'])}`,
      );
    });

    await phase('grpc-stream', async () => {
      const series = await k6Series({ label: 'grpc-stream', stepping: plan.grpcStream, ...grpcStreamLoad });
      results.grpcStream = series;
      if (!series.best) return;
      const rate = series.best.rate;
      const step = await k6Step({
        name: 'grpc-stream-loadtest-script',
        rate,
        ...grpcStreamLoad,
        script: 'loadtest/grpc-stream.js',
      });
      results.grpcStreamLoadtestScript = step;
      progress(
        `grpc-stream with loadtest/grpc-stream.js at ${fmt(rate)} streams/s: ${fmt(step.achievedEvents)} events/s, p99 ${fmt(step.latency.p99, 1)} ms → ${step.passed ? 'pass' : `FAIL (${step.why})`}; cpu: ${describeCpu(step.cpu, ['ingest', 'kafka', 'k6'])}`,
      );
    });

    /**
     * The batch sizes of ingest's writes at the best steps of `series`, and (unless left out) the
     * most it may write at once, each with what it mirrors, smallest first.
     */
    const writeSizes = (series: [string, Series | undefined][], largest = true): [number, string][] => {
      const sizes = new Map<number, string>();
      for (const [what, s] of series) {
        const mean = s?.best?.writes?.meanEvents;
        if (mean && mean >= 1) sizes.set(Math.round(mean), `${what}: ingest's mean write at its best step`);
      }
      if (largest || sizes.size === 0)
        sizes.set(results.setup.maxProduceBatchEvents, 'TALLY_PRODUCE_MAX_BATCH_EVENTS: the largest write');
      return [...sizes].sort((a, b) => a[0] - b[0]);
    };

    /** The raw producer baseline: `client`'s library alone, `batch` records per send. */
    const rawProducerRun = async (
      client: KafkaClient,
      batch: number,
      mirrors: string,
      seconds: number,
    ): Promise<RawProducerRun> => {
      const { exited, next } = await spawnNode('raw-producer', 'bench/baselines/raw-producer.ts', [
        '--client',
        client,
        '--brokers',
        localServers.kafkaBrokers,
        '--topic',
        ns.rawTopic,
        '--partitions',
        String(ns.partitions),
        '--batch',
        String(batch),
        '--seconds',
        String(seconds),
      ]);
      // The first line says the measured sends start.
      const cpu = cpuWindow(100, seconds * 1000 - 300);
      const r = JSON.parse(await next()) as {
        eventsPerSecond: number;
        sendP50Ms: number;
        sendP99Ms: number;
      };
      await exited;
      const run: RawProducerRun = {
        client,
        batch,
        mirrors,
        eventsPerSecond: r.eventsPerSecond,
        sendP50Ms: r.sendP50Ms,
        sendP99Ms: r.sendP99Ms,
        cpu: await cpu(),
      };
      progress(
        `raw producer (${KAFKA_LIBRARY[client]}), ${fmt(batch)} records per send (${mirrors}): ${fmt(r.eventsPerSecond)} events/s, send p50 ${fmt(r.sendP50Ms, 1)} ms, p99 ${fmt(r.sendP99Ms, 1)} ms; cpu: ${describeCpu(run.cpu, ['raw-producer', 'kafka'])}`,
      );
      return run;
    };

    await phase('raw-producer', async () => {
      // The batch sizes ingest wrote at its best steps, and the most it may write at once, with
      // the roles' own Kafka client.
      const client = results.setup.kafkaClient ?? 'kafkajs';
      for (const [batch, mirrors] of writeSizes([
        ['REST batch', results.restBatch],
        ['gRPC stream', results.grpcStream],
        ['REST single', results.restSingle],
      ]))
        results.rawProducer.push(await rawProducerRun(client, batch, mirrors, plan.rawProducerSeconds));
    });

    /**
     * Starts a consumer role alone on the backlog of its group (the deployment's prefix) and
     * measures its catch-up; stops it after.
     */
    const catchUpAlone = async (
      role: ConsumerRole,
      seconds: number,
      env: Record<string, string> = {},
      label: string = role,
    ): Promise<CatchUp | undefined> => {
      const end = await deployment.endOffset();
      const committedBefore = await deployment.committed(role);
      const backlog = end - committedBefore;
      if (backlog <= 0) {
        progress(`${label}: no backlog to catch up on`);
        return undefined;
      }
      await deployment.start(role, env);
      const r = await measureCatchUp(deployment, role, backlog, seconds, sampler);
      await deployment.stop(role);
      progress(
        `${label} alone: ${fmt(r.eventsPerSecond)} events/s over ${fmt(r.seconds, 1)} s (${fmt(r.events)} of a backlog of ${fmt(backlog)}); cpu: ${describeCpu(r.cpu, [role, role === 'counter' ? 'redis' : 'postgres', 'kafka'])}`,
      );
      return r;
    };

    // ── the sinks, each alone on the backlog the ingest phases left, then their baselines
    await phase('sinks', async () => {
      for (const role of CONSUMER_ROLES) {
        const r = await catchUpAlone(role, plan.catchUpSeconds);
        if (r) results.catchUp.push(r);
      }
      results.pgCopy = await runPgCopy(deployment.pg, localServers.pgUrl, ns.pgSchema, plan.pgCopyMaxRows);
      if (results.pgCopy)
        progress(
          `PostgreSQL COPY of ${fmt(results.pgCopy.rows)} rows of event: ${fmt(results.pgCopy.rowsPerSecond)} rows/s`,
        );
      results.redisBench = await runRedisBenchmark({
        redis: deployment.redis,
        redisUrl: localServers.redisUrl,
        repo,
        prefix: ns.redisPrefix,
        requests: plan.redisBench.requests,
        targets: 3000,
        clients: plan.redisBench.clients,
        pipeline: plan.redisBench.pipeline,
        markerTtlMs: dedupWindowMs,
      });
      for (const row of results.redisBench.rows)
        progress(
          `redis-benchmark ${row.name}: ${fmt(row.requestsPerSecond)} requests/s${row.eventsPerRequest ? ` (${fmt(row.eventsPerSecond)} events/s)` : ''}, p99 ${fmt(row.p99Ms, 2)} ms`,
        );
    });

    /** Every consumer role's /metrics. */
    const consumerScrape = async (): Promise<Map<ConsumerRole, Scrape>> =>
      new Map(
        await Promise.all(
          CONSUMER_ROLES.map(async (r) => [r, await scrape(deployment.roles.get(r)?.metricsPort)] as const),
        ),
      );

    type E2eStepping = Plan['e2e'];

    /** One end-to-end step: the simulators at `rate` events/s for the stepping's seconds. */
    const e2eStep = async (
      rate: number,
      name: string,
      label: string,
      stepping: E2eStepping,
      probes: VisibilityProbes,
    ): Promise<E2eStep> => {
      const seconds = stepping.stepSeconds;
      const drainTimeoutSeconds = stepping.drainTimeoutSeconds;
      const before = await consumerScrape();
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
      // The step starts when ingest sees the simulators' first batches (they take a second or two to start).
      const accepted = async () =>
        sumOf(await scrape(deployment.roles.get('ingest')?.metricsPort), 'tally_ingest_events_total');
      const exported = has(
        await scrape(deployment.roles.get('ingest')?.metricsPort),
        'tally_ingest_events_total',
      );
      const acceptedBefore = await accepted();
      const waitUntil = Date.now() + (exported ? 10_000 : 2_000);
      while (Date.now() < waitUntil && (!exported || (await accepted()) === acceptedBefore)) await sleep(50);
      const startMs = Date.now();
      progress(
        `  ${label} ${fmt(rate)} events/s: the simulators' first batches arrived after ${fmt((startMs - spawnedMs) / 1000, 1)} s`,
      );
      probes.start(plan.probesPerSecond);
      const cpu = cpuWindow(500, seconds * 1000 - 1500);
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
      const sim = await Promise.all(sims);
      running = false;
      await lagLoop;
      const stepCpu = await cpu();
      const offeredEvents = rate;
      const achievedEvents = sim.reduce((t, s) => t + s.acknowledged, 0) / seconds;
      const failedEvents = sim.reduce((t, s) => t + s.failed + s.missed, 0);
      // Drain: every group commits everything (probes still being collected meanwhile).
      const drainStart = Date.now();
      const drain = (async () => {
        while (Date.now() - drainStart < drainTimeoutSeconds * 1000) {
          const remaining = await Promise.all(CONSUMER_ROLES.map((r) => deployment.lag(r).catch(() => 1)));
          if (remaining.every((l) => l === 0)) return (Date.now() - drainStart) / 1000;
          await sleep(250);
        }
        return undefined;
      })();
      const [drainSeconds, stats] = await Promise.all([drain, probes.stop(drainTimeoutSeconds * 1000)]);
      const after = await consumerScrape();
      const second = lags.filter((l) => l.atMs >= startMs + (seconds * 1000) / 2);
      const maxLag: Record<string, number> = {};
      const endLag: Record<string, number> = {};
      for (const role of CONSUMER_ROLES) {
        maxLag[role] = Math.max(0, ...second.map((l) => l.lag[role] ?? 0));
        endLag[role] = lags.at(-1)?.lag[role] ?? Number.NaN;
      }
      const lagBound = Math.max(2 * rate, 2000);
      const reasons: string[] = [];
      for (const role of CONSUMER_ROLES)
        if (!(maxLag[role]! <= lagBound))
          reasons.push(`${role} lag ${fmt(maxLag[role]!)} > ${fmt(lagBound)}`);
      if (achievedEvents < 0.95 * offeredEvents)
        reasons.push(`${fmt(achievedEvents)} of ${fmt(offeredEvents)} events/s acknowledged`);
      if (failedEvents > 0.001 * offeredEvents * seconds)
        reasons.push(`${fmt(failedEvents)} events failed or missed`);
      if (drainSeconds === undefined) reasons.push(`not drained ${drainTimeoutSeconds} s after the load`);
      const step: E2eStep = {
        rate,
        offeredEvents,
        achievedEvents,
        failedEvents,
        maxLag,
        endLag,
        lagBound,
        drainSeconds,
        probes: probeQuantiles(stats),
        histogram: visibleHistograms(before, after),
        passed: reasons.length === 0,
        why: reasons.join('; '),
        cpu: stepCpu,
      };
      const p = step.probes;
      progress(
        `${label} ${fmt(rate)} events/s: ${fmt(achievedEvents)} acknowledged; max lag ${CONSUMER_ROLES.map((r) => `${r} ${fmt(maxLag[r]!)}`).join(', ')}; ` +
          `drained in ${drainSeconds === undefined ? '—' : `${fmt(drainSeconds, 1)} s`}; visible p50/p99: Redis ${fmt(p.counter!.p50)}/${fmt(p.counter!.p99)} ms, ` +
          `summary ${fmt(p.aggregator!.p50)}/${fmt(p.aggregator!.p99)} ms, event ${fmt(p.persister!.p50)}/${fmt(p.persister!.p99)} ms → ${step.passed ? 'pass' : `FAIL (${step.why})`}`,
      );
      progress(
        `  cpu: ${describeCpu(stepCpu, ['ingest', 'persister', 'counter', 'aggregator', 'kafka', 'redis', 'postgres', 'simulator'])}`,
      );
      return step;
    };

    /**
     * Steps the simulators' rate with every consumer role running (the caller started them),
     * probes going through; `onReady` runs once the first probe showed in every sink.
     */
    const e2eSearch = async (options: {
      label: string;
      runId: string;
      stepping: E2eStepping;
      onReady?: () => Promise<void>;
    }): Promise<E2eSeries> => {
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
            const step = await e2eStep(rate, name, options.label, options.stepping, probes);
            return { rate, step, passed: step.passed, why: step.why };
          },
        });
        return { steps: search.steps.map((s) => s.step), best: search.best?.step };
      } finally {
        probes.close();
      }
    };

    // ── end to end: every consumer running, the simulator stepping its rate
    await phase('e2e', async () => {
      for (const role of CONSUMER_ROLES) await deployment.skipToEnd(role);
      await Promise.all(CONSUMER_ROLES.map((role) => deployment.start(role)));
      results.e2e = await e2eSearch({
        label: 'e2e',
        runId: `b${ns.id}`,
        stepping: plan.e2e,
        onReady: async () => {
          const first = await consumerScrape();
          results.metrics.lagGauge = [...first.values()].some((s) => has(s, 'tally_consumer_lag_messages'));
          results.metrics.visibleHistogram = [...first.values()].some((s) =>
            has(s, 'tally_sink_visible_latency_seconds_bucket'),
          );
        },
      });
    });

    // ── the query path
    await phase('queries', async () => {
      const queryRun = async (name: string, rate: number, seconds: number, env: Record<string, string>) => {
        const p99 = env.QUERY === 'counters' ? 5 : 10;
        const step = await k6Step({
          name,
          script: 'bench/grpc-query.js',
          latencyMetric: 'grpc_req_duration',
          rate,
          seconds,
          eventsPerIteration: 0,
          blowUpMs: 100 * p99,
          env: () => ({
            TALLY_GRPC: `127.0.0.1:${deployment.queryPort}`,
            ...vus(rate, 100, 100),
            P99_MS: String(p99),
            ...env,
          }),
          withIngest: false,
        });
        const run: QueryRun = {
          rate,
          seconds,
          latency: step.latency,
          achieved: rate * (1 - step.dropped / Math.max(1, step.planned)),
          dropped: step.dropped,
          failedRate: step.failedRate,
          cpu: step.cpu,
        };
        progress(
          `${name} at ${fmt(rate)} calls/s: p50 ${fmt(run.latency.p50, 2)} ms, p99 ${fmt(run.latency.p99, 2)} ms, dropped ${fmt(run.dropped)}, failed ${fmt(run.failedRate * 100, 2)}%; cpu: ${describeCpu(run.cpu, ['query', 'redis', 'postgres', 'k6'])}`,
        );
        return run;
      };
      results.getCounters = await queryRun('get-counters', plan.getCounters.rate, plan.getCounters.seconds, {
        QUERY: 'counters',
      });
      if (seed)
        results.getReport = {
          ...(await queryRun('get-report', plan.getReport.rate, plan.getReport.seconds, {
            QUERY: 'report',
            TARGETS: String(seed.targetsPerFamily),
            REPORT_FIRST_DATE: seed.firstDate,
            REPORT_DAYS: String(plan.seed.days),
          })),
          seed,
        };
      else progress('get-report skipped: the seed phase did not run');
    });

    /** `stepping` from a step below `best`'s rate, when there is one. */
    const below = (stepping: Stepping, best: { rate: number } | undefined): Stepping => ({
      ...stepping,
      start: best ? best.rate / stepping.factor : stepping.start,
    });

    /**
     * Restarts ingest and the gateway with `env` over the deployment's variables, side by side
     * (the gateway reaches ingest lazily, at its port that a restart keeps).
     */
    const restartIngestPath = async (env: Record<string, string>) => {
      await Promise.all([deployment.stop('gateway'), deployment.stop('ingest')]);
      await Promise.all([deployment.start('ingest', env), deployment.start('gateway', env)]);
    };

    /** Fails unless the role's start-up log has a line with every one of `parts` (say, its Kafka adapter). */
    const expectLogged = (role: Role, parts: string[], what: string) => {
      const lines = deployment.roles.get(role)?.proc.lines ?? [];
      if (!lines.some((line) => parts.every((part) => line.includes(part))))
        throw new Error(`${role} did not log ${what}:\n${lines.slice(-10).join('\n')}`);
    };

    // ── the Kafka clients: the roles restarted with each in turn, on the same figures
    await phase('kafka-clients', async () => {
      const kc = plan.kafkaClients;
      // Left running by the end-to-end phase: the sinks below catch up alone.
      await Promise.all(CONSUMER_ROLES.map((role) => deployment.stop(role)));
      const comparison: KafkaClientsResult = {
        stepSeconds: kc.stepSeconds,
        e2eStepSeconds: kc.e2e?.stepSeconds,
        runs: [],
      };
      results.kafkaClients = comparison;
      // Both clients start a step below the maxima this run found (else the plan's), in finer steps.
      const grpcStepping = below(kc.grpcStream, results.grpcStream?.best);
      const batchStepping = below(kc.restBatch, results.restBatch?.best);
      const e2eStepping = kc.e2e && { ...kc.e2e, start: results.e2e?.best?.rate ?? kc.e2e.start };
      const versionOf = (client: KafkaClient) =>
        client === 'platformatic' ? results.versions.platformaticKafka : results.versions.kafkajs;
      try {
        for (const client of KAFKA_CLIENTS) {
          const library = KAFKA_LIBRARY[client];
          const env = { TALLY_KAFKA_CLIENT: client };
          const run: KafkaClientRun = {
            client,
            library: `${library} ${versionOf(client) ?? ''}`.trim(),
            catchUp: [],
            rawProducer: [],
          };
          comparison.runs.push(run);
          // This client's consumer groups start at the end of the events topic: they catch up on
          // what its own ingest steps write, events no sink has seen (no dedup marker, no row yet).
          deployment.groupPrefix = `${ns.groupPrefix}${client}-`;
          for (const role of CONSUMER_ROLES) await deployment.skipToEnd(role);
          progress(`${library}: restarting ingest and the gateway with TALLY_KAFKA_CLIENT=${client}`);
          await restartIngestPath(env);
          for (const role of ['ingest', 'gateway'] as const)
            expectLogged(role, ['"port":"log"', `kafka (${library},`], `the ${library} adapter`);
          run.grpcStream = await k6Series({
            label: `${client}-grpc-stream`,
            stepping: grpcStepping,
            seconds: kc.stepSeconds,
            ...grpcStreamLoad,
          });
          run.restBatch = await k6Series({
            label: `${client}-rest-batch`,
            stepping: batchStepping,
            seconds: kc.stepSeconds,
            ...restBatchLoad,
          });
          for (const role of kc.catchUpRoles) {
            const r = await catchUpAlone(role, kc.catchUpSeconds, env, `${role} (${library})`);
            if (r) run.catchUp.push(r);
          }
          if (e2eStepping) {
            for (const role of CONSUMER_ROLES) await deployment.skipToEnd(role);
            await Promise.all(CONSUMER_ROLES.map((role) => deployment.start(role, env)));
            try {
              run.e2e = await e2eSearch({
                label: `${client}-e2e`,
                runId: `b${ns.id}${client}`,
                stepping: e2eStepping,
              });
            } finally {
              await Promise.all(CONSUMER_ROLES.map((role) => deployment.stop(role)));
            }
          }
        }
      } finally {
        deployment.groupPrefix = ns.groupPrefix;
      }
      // The libraries alone, one after the other at each size: the first client's ingest writes
      // (the raw producer phase has the largest write, the library's ceiling).
      const first = comparison.runs[0]!;
      const by = KAFKA_LIBRARY[first.client];
      for (const [batch, mirrors] of writeSizes(
        [
          [`REST batch with ${by}`, first.restBatch],
          [`gRPC stream with ${by}`, first.grpcStream],
        ],
        false,
      ))
        for (const run of comparison.runs)
          run.rawProducer.push(await rawProducerRun(run.client, batch, mirrors, kc.rawProducerSeconds));
    });

    // ── what tracing and metrics cost the ingest path
    await phase('overhead', async () => {
      const o = plan.overhead;
      // Only ingest's path runs: consumers would take CPU from it.
      await Promise.all(CONSUMER_ROLES.map((role) => deployment.stop(role)));
      const receiver = await spawnNode('otlp-sink', 'bench/lib/otlp-sink.ts', []);
      try {
        const port = (JSON.parse(receiver.first) as { port: number }).port;
        const received = async () =>
          (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as {
            requests: number;
            bytes: number;
          };
        const tracingEnv = {
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces`,
          OTEL_TRACES_SAMPLER: 'always_on',
        };
        // Both stages start a step below the maxima this run found (else the plan's): a step at the
        // same rate that both pass compares their CPU per event.
        const grpcStepping = below(o.grpcStream, results.grpcStream?.best);
        const singleStepping = below(o.restSingle, results.restSingle?.best);
        const stage = async (tracing: boolean): Promise<OverheadStage> => {
          const name = `tracing-${tracing ? 'on' : 'off'}`;
          progress(
            `tracing ${tracing ? "on (every span exported to the harness's OTLP receiver)" : 'off'}: restarting ingest and the gateway`,
          );
          await restartIngestPath(tracing ? tracingEnv : {});
          if (tracing)
            for (const role of ['ingest', 'gateway'] as const)
              expectLogged(role, ['"msg":"tracing on"'], 'that tracing is on');
          const before = await received();
          const grpcStream = await k6Series({
            label: `${name}-grpc-stream`,
            stepping: grpcStepping,
            seconds: o.stepSeconds,
            ...grpcStreamLoad,
            columns: [...grpcStreamLoad.columns, 'otlp-sink'],
          });
          const restSingle = await k6Series({
            label: `${name}-rest-single`,
            stepping: singleStepping,
            seconds: o.stepSeconds,
            ...restSingleLoad,
            columns: [...restSingleLoad.columns, 'otlp-sink'],
          });
          // Stopped here, so that the spans still buffered are exported (and counted) as they exit.
          const procs = (['gateway', 'ingest'] as const).map((role) => deployment.roles.get(role)?.proc);
          await Promise.all([deployment.stop('gateway'), deployment.stop('ingest')]);
          const after = await received();
          const droppedSpans = procs.reduce((n, proc) => n + droppedSpansIn(proc?.lines ?? []), 0);
          const exported = { requests: after.requests - before.requests, bytes: after.bytes - before.bytes };
          progress(
            `${name}: ${fmt(exported.requests)} OTLP exports (${fmt(exported.bytes / 2 ** 20, 1)} MiB), ${fmt(droppedSpans)} spans dropped`,
          );
          return { tracing, grpcStream, restSingle, exported, droppedSpans };
        };
        const profileDir = join(rawDir, 'cpu-profiles');
        const overhead: OverheadResult = {
          stepSeconds: o.stepSeconds,
          off: await stage(false),
          tracingEnv,
          profileShare: o.profileShare,
          profiles: [],
          profileDir,
        };
        results.overhead = overhead;
        overhead.on = await stage(true);

        // Metrics are always on: their cost is their share of the CPU profile of a fixed-load step.
        mkdirSync(profileDir, { recursive: true });
        const quoted = `"${profileDir.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
        const nodeOptions = [process.env.NODE_OPTIONS, '--cpu-prof', `--cpu-prof-dir=${quoted}`];
        progress('metrics: restarting ingest and the gateway under the CPU profiler (--cpu-prof)');
        await restartIngestPath({ NODE_OPTIONS: nodeOptions.filter(Boolean).join(' ') });
        const pids = new Map(
          (['gateway', 'ingest'] as const).map((role) => [role, deployment.roles.get(role)!.pid]),
        );
        const steps: { load: MetricsProfile['load']; roles: Role[]; step: LoadStep }[] = [];
        for (const [load, roles, series, stepping, spec] of [
          ['REST single', ['gateway', 'ingest'], overhead.off.restSingle, singleStepping, restSingleLoad],
          ['gRPC stream', ['ingest'], overhead.off.grpcStream, grpcStepping, grpcStreamLoad],
        ] as const) {
          const rate = niceRate(o.profileShare * (series?.best?.rate ?? stepping.start));
          const step = await k6Step({
            name: `profile-${load.replace(' ', '-').toLowerCase()}`,
            rate,
            seconds: o.stepSeconds,
            ...spec,
          });
          steps.push({ load, roles: [...roles], step });
          progress(
            `profiled ${load} at ${fmt(rate)} ${spec.iteration}/s: ${fmt(step.achievedEvents)} events/s, p99 ${fmt(step.latency.p99, 1)} ms → ${step.passed ? 'pass' : `FAIL (${step.why})`}`,
          );
        }
        // A role writes its profile as it exits.
        await Promise.all([deployment.stop('gateway'), deployment.stop('ingest')]);
        for (const { load, roles, step } of steps) {
          const profile: MetricsProfile = { load, step, processes: [] };
          for (const role of roles) {
            const pid = pids.get(role as 'gateway' | 'ingest')!;
            const cpuProfile = readProfileOf(profileDir, pid);
            if (!cpuProfile) throw new Error(`no CPU profile of ${role} (pid ${pid}) in ${profileDir}`);
            // The samples inside the load, as for the step's CPU.
            const window = step.loadMs!;
            const a = attribute(
              cpuProfile,
              METRICS_CODE,
              monotonicMicros(window.from + 300),
              monotonicMicros(window.to - 300),
            );
            const own = a.self.promClient! + a.self.metricsModule!;
            profile.processes.push({
              role,
              samples: a.samples,
              busy: a.busy,
              promClient: a.self.promClient!,
              metricsModule: a.self.metricsModule!,
              inclusive: a.inclusive,
              share: a.busy > 0 ? own / a.busy : Number.NaN,
            });
            progress(
              `  ${load}, ${role}: metrics ${fmt(a.busy > 0 ? (own / a.busy) * 100 : Number.NaN, 1)}% of ${fmt(a.busy)} busy samples (prom-client ${fmt(a.self.promClient!)}, metrics.ts ${fmt(a.self.metricsModule!)}; with what they call ${fmt(a.inclusive)})`,
            );
          }
          overhead.profiles.push(profile);
        }
      } finally {
        receiver.child.kill('SIGTERM');
      }
    });
  } finally {
    progress('cleaning up: stopping the roles, deleting the namespace');
    sampler.stop();
    await deployment.cleanup(progress);
  }

  results.seconds = elapsed();
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, renderReport(results));
  writeFileSync(join(rawDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  progress(`wrote ${outPath} (${fmt(results.seconds / 60, 1)} minutes)`);
  return results.errors.length > 0 ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------

function judgeLoad(r: K6Result, blowUpMs: number): { passed: boolean; why: string } {
  const reasons: string[] = [];
  if (r.dropped > 0.01 * r.planned) reasons.push(`${fmt(r.dropped)} of ${fmt(r.planned)} iterations dropped`);
  if (r.failedRate > 0.001) reasons.push(`${fmt(r.failedRate * 100, 2)}% failed`);
  if (!(r.latency.p99 <= blowUpMs)) reasons.push(`p99 ${fmt(r.latency.p99)} ms > ${fmt(blowUpMs)} ms`);
  if (r.iterations === 0) reasons.push('no iteration ran');
  return { passed: reasons.length === 0, why: reasons.join('; ') };
}

/** Spans a role's batch span processor dropped, from its warnings ("Dropped N spans because maxQueueSize reached"). */
function droppedSpansIn(lines: string[]): number {
  let dropped = 0;
  for (const line of lines) {
    const m = /Dropped (\d+) spans/.exec(line);
    if (m) dropped += Number(m[1]);
  }
  return dropped;
}

/** Measures a consumer role catching up alone: committed records per second once it started committing. */
async function measureCatchUp(
  deployment: Deployment,
  role: ConsumerRole,
  backlog: number,
  maxSeconds: number,
  sampler: CpuSampler,
): Promise<CatchUp> {
  const base = await deployment.committed(role);
  const deadline = Date.now() + 60_000;
  // The clock starts at the first commit: joining the group is not catching up.
  let first = base;
  while (first === base && Date.now() < deadline) {
    await sleep(100);
    first = await deployment.committed(role);
  }
  const fromMs = sampler.sample();
  const fromCommitted = first;
  const until = Date.now() + maxSeconds * 1000;
  let last = first;
  while (Date.now() < until && last - base < backlog) {
    await sleep(500);
    last = await deployment.committed(role);
  }
  const toMs = sampler.sample();
  const seconds = (toMs - fromMs) / 1000;
  return {
    role,
    backlog,
    events: last - fromCommitted,
    seconds,
    eventsPerSecond: (last - fromCommitted) / Math.max(0.001, seconds),
    cpu: sampler.use(fromMs, toMs),
  };
}

/** The simulator's scenarios, in the load tests' proportions (pages 50 %, posts 35 %, merchants 15 %). */
const SCENARIO_SHARES = [
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
async function runSimulator(
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

if (import.meta.main && args.render) {
  writeFileSync(outPath, renderReport(JSON.parse(readFileSync(args.render, 'utf8')) as Results));
  process.stderr.write(`wrote ${outPath}\n`);
} else if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exit(1);
    },
  );
}
