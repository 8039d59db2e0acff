/**
 * The benchmark harness (`make bench`): runs Tally's roles as six processes on the local Kafka,
 * Redis and PostgreSQL (scripts/services-up.sh) in a namespace of its own, drives them with k6
 * (loadtest/rest-single.js; bench/'s variants of the batch and stream scripts, whose events are
 * built once per VU; bench/grpc-query.js) and the simulator, measures the baselines in the same
 * run (the Kafka client producing directly, a bare Node HTTP server, redis-benchmark, PostgreSQL
 * COPY), measures what the sinks keep per event besides the events (against what the design
 * before kept), samples every process's CPU, and writes bench/RESULTS.md. Then it compares the
 * two Kafka clients (TALLY_KAFKA_CLIENT: the roles restarted with each), measures what tracing
 * and metrics cost the ingest path, and what access control costs it (TALLY_AUTH off against on,
 * the load sending a key; with the harness's TALLY_RATE_LIMIT* variables, the rate limits too).
 * Before those, it measures the alert rules live, GetWindows over 100,000 users' sliding-window
 * aggregates and how soon an event counts there, and delivery (the router and a sender to local
 * receivers: throughput, acknowledged → first attempt, isolation). Each phase is a module of bench/phases/ that fills its part
 * of the results; bench/report.ts renders them, each phase's sections by its
 * bench/phases/<phase>.report.ts.
 *
 *   node bench/bench.ts [--smoke] [--out FILE] [--raw-dir DIR] [--phases a,b,…] [--render FILE]
 *
 *   --smoke     seconds of tiny load on tiny tables (checks the harness end to end)
 *   --out       the report (default bench/RESULTS.md)
 *   --raw-dir   where k6 summaries and outputs go (default: a new temporary directory)
 *   --phases    run only these phases (for working on the harness): seed, bare-http, rest-single,
 *               rest-batch, grpc-stream, raw-producer, sinks, bookkeeping, e2e, queries, event-log,
 *               alerts, windows, delivery, in-process, startup, kafka-clients, overhead, auth
 *   --render    render the report of a previous run's results.json (in its raw directory) and exit
 *   --cpu-prof  a directory: every role process runs under V8's CPU profiler and writes its
 *               profile at exit into <dir>/<role>/ (to find where a phase's CPU goes)
 *
 * The roles use the service's default Kafka client unless TALLY_KAFKA_CLIENT is set in the
 * harness's environment. Progress goes to stderr. Exits 1 when a phase failed (the report says
 * which, and why).
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../services/infra/config.ts';
import { handleProcessWarnings } from '../services/infra/node-warnings.ts';
import { requireRealServers } from '../services/testing/real-servers.ts';
import {
  benchNamespace,
  DELIVERY_ROLES,
  Deployment,
  localServers,
  type Namespace,
  type Role,
  SINK_ROLES,
} from './lib/deployment.ts';
import { type Bench, children, fmt, repo } from './lib/harness.ts';
import { machine, versions } from './lib/machine.ts';
import { CpuSampler, pidListeningOn, processTree } from './lib/proc.ts';
import type { Results } from './lib/results.ts';
import { runAlerts } from './phases/alerts.ts';
import { runAuth } from './phases/auth.ts';
import { runGrpcStream, runRestBatch } from './phases/batches.ts';
import { runBookkeeping } from './phases/bookkeeping.ts';
import { runDelivery } from './phases/delivery.ts';
import { runE2e } from './phases/e2e.ts';
import { runInProcess, runStartup } from './phases/edge.ts';
import { runEventLog } from './phases/event-log.ts';
import { runKafkaClients } from './phases/kafka-clients.ts';
import { runOverhead } from './phases/overhead.ts';
import { runQueries, runSeed } from './phases/queries.ts';
import { runRawProducer } from './phases/raw-producer.ts';
import { runBareHttp, runRestSingle } from './phases/rest-single.ts';
import { runSinks } from './phases/sinks.ts';
import { runWindows } from './phases/windows.ts';
import { FULL, type Plan, SMOKE } from './plan.ts';
import { renderReport } from './report.ts';

handleProcessWarnings();

const PHASES = [
  'seed',
  'bare-http',
  'rest-single',
  'rest-batch',
  'grpc-stream',
  'raw-producer',
  'sinks',
  'bookkeeping',
  'e2e',
  'queries',
  'event-log',
  'alerts',
  'windows',
  'delivery',
  'in-process',
  'startup',
  // The last three restart ingest and the gateway (and query) with settings of their own, and stop
  // the consumers: no phase after them uses the deployment.
  'kafka-clients',
  'overhead',
  'auth',
] as const;
type Phase = (typeof PHASES)[number];

/** What each phase runs. */
const PHASE_RUNS: Record<Phase, (b: Bench) => Promise<void>> = {
  // Seeds the summaries GetReport reads, before anything writes to the schema.
  seed: runSeed,
  'bare-http': runBareHttp,
  'rest-single': runRestSingle,
  'rest-batch': runRestBatch,
  'grpc-stream': runGrpcStream,
  'raw-producer': runRawProducer,
  // The sinks, each alone on its backlog (the persister first: the others read what it forwards),
  // then their baselines.
  sinks: runSinks,
  // What the sinks keep per event besides the events, at two event counts, and what they kept before.
  bookkeeping: runBookkeeping,
  e2e: runE2e,
  queries: runQueries,
  // The event log's pages on a table of its own, loaded by COPY (10 M events in the full run).
  'event-log': runEventLog,
  // The alert rules live under the end-to-end load: notification latency, spike detection, false alarms.
  alerts: runAlerts,
  // Sliding-window aggregates: 100,000 users' loaded, GetWindows at a fixed rate, then their freshness under load.
  windows: runWindows,
  // The router and a sender to local receivers: throughput, acknowledged → delivered, isolation from a dead and a slow destination.
  delivery: runDelivery,
  // The edge split, then in one process (restored after); then `tally all` on embedded backends.
  'in-process': runInProcess,
  startup: runStartup,
  'kafka-clients': runKafkaClients,
  overhead: runOverhead,
  // Access control off, then on (TALLY_AUTH, a bootstrap key, the load's key; TALLY_RATE_LIMIT* passed on).
  auth: runAuth,
};

const { values: args } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    out: { type: 'string' },
    'raw-dir': { type: 'string' },
    phases: { type: 'string' },
    render: { type: 'string' },
    'cpu-prof': { type: 'string' },
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

/** The consumers' tuning variables a run may set (docs/performance.md measures them). */
const BENCH_TUNING = new Set([
  'TALLY_CONSUMER_MAX_WAIT_MS',
  'TALLY_CONSUMER_MIN_BYTES',
  'TALLY_CONSUMER_PACE_MS',
  'TALLY_AGGREGATOR_MAX_WAIT_MS',
  'TALLY_AGGREGATOR_MIN_BYTES',
]);

async function main(): Promise<number> {
  const k6 = k6Path();
  await ensureServers();
  const m = machine();
  const ns = benchNamespace(12);
  // The role processes get no TALLY_* variable of the harness's environment but the client and the
  // consumers' fetch and pacing settings (to measure them against their defaults).
  const passed = Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] =>
        e[1] !== undefined && (BENCH_TUNING.has(e[0]) || e[0] === 'TALLY_KAFKA_CLIENT'),
    ),
  );
  const deployment = new Deployment(ns, localServers, passed);
  deployment.cpuProfileDir = args['cpu-prof'];
  const kafkaPid = pidListeningOn(Number(localServers.kafkaBrokers.split(',')[0]!.split(':')[1]));
  const sampler = startSampler(m.cores, deployment, kafkaPid);
  progress(
    `${m.cpuModel}, ${m.cores} cores, ${m.memGiB.toFixed(1)} GiB; load average ${m.loadAverage.map((l) => l.toFixed(2)).join(' ')}`,
  );
  progress(
    `namespace ${ns.id} on ${localServers.kafkaBrokers}, ${localServers.redisUrl}, PostgreSQL schema ${ns.pgSchema}`,
  );
  progress(`k6 summaries and outputs in ${rawDir}`);
  if (Object.keys(passed).length > 0)
    progress(
      `settings from the environment: ${Object.entries(passed)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
  const results = await initialResults(m, ns, deployment, k6, kafkaPid);
  const bench: Bench = {
    plan,
    rawDir,
    k6,
    ns,
    deployment,
    sampler,
    results,
    progress,
    outOfTime,
  };
  try {
    // ── the roles
    progress('starting ingest and query, then the gateway (one process each)');
    await Promise.all([deployment.start('query'), deployment.start('ingest')]);
    await deployment.start('gateway');
    progress(
      `gateway http://127.0.0.1:${deployment.httpPort}, ingest 127.0.0.1:${deployment.ingestPort}, query 127.0.0.1:${deployment.queryPort}`,
    );
    for (const name of PHASES) await runPhase(bench, name);
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

/** Samples the CPU of every process of the run, by group, every 500 ms. */
function startSampler(cores: number, deployment: Deployment, kafkaPid: number | undefined): CpuSampler {
  const sampler = new CpuSampler(cores);
  const portOf = (url: string, fallback: number) => Number(new URL(url).port || fallback);
  const redisPid = pidListeningOn(portOf(localServers.redisUrl, 6379));
  const pgPid = pidListeningOn(portOf(localServers.pgUrl, 5432));
  for (const role of ['gateway', 'ingest', 'query', ...SINK_ROLES, 'projector', ...DELIVERY_ROLES] as Role[])
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
    'receiver',
  ])
    sampler.add({ name: group, pids: () => [...(children.get(group) ?? [])] });
  sampler.add({ name: 'harness', pids: () => [process.pid] });
  sampler.start(500);

  return sampler;
}

/** The results before any phase: the machine, versions and settings of the run. */
async function initialResults(
  m: ReturnType<typeof machine>,
  ns: Namespace,
  deployment: Deployment,
  k6: string,
  kafkaPid: number | undefined,
): Promise<Results> {
  // What the role processes run with: their environment parsed as they parse it.
  const roleConfig = loadConfig(deployment.env());
  return {
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
}

/** Runs a phase unless left out; a failure is recorded and the run goes on. */
async function runPhase(b: Bench, name: Phase): Promise<void> {
  if (!phases.has(name)) return;
  progress(`── ${name}`);
  try {
    await PHASE_RUNS[name](b);
  } catch (error) {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    progress(`${name} failed: ${text}`);
    b.results.errors.push({ phase: name, error: error instanceof Error ? error.message : String(error) });
  }
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
