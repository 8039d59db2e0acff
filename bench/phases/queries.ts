/**
 * Phases `seed` and `queries`: the summaries GetReport reads, seeded before anything writes to
 * the schema; then GetCounters and GetReport on the query role at fixed rates (bench/grpc-query.js).
 * The windows phase runs GetWindows the same way (`queryRun`).
 */
import { type Bench, describeCpu, fmt } from '../lib/harness.ts';
import { k6Step, vus } from '../lib/k6-series.ts';
import type { QueryRun } from '../lib/results.ts';
import { seedReportTable } from '../lib/seed-report.ts';

export async function runSeed(b: Bench): Promise<void> {
  const { plan, deployment, progress } = b;
  progress(
    `seeding event_summary: ${plan.seed.targetsPerFamily} targets per family × ${plan.seed.days} days × 24 hours`,
  );
  const seed = await seedReportTable(deployment.pg, plan.seed);
  b.seed = seed;
  progress(
    `seeded ${fmt(seed.rows)} rows summarising ${fmt(seed.events)} events (${fmt(seed.tableBytes / 2 ** 20)} MiB) in ${fmt(seed.seconds, 1)} s`,
  );
}

export async function runQueries(b: Bench): Promise<void> {
  const { plan, results, progress, seed } = b;
  results.getCounters = await queryRun(b, 'get-counters', plan.getCounters.rate, plan.getCounters.seconds, {
    QUERY: 'counters',
  });
  if (seed)
    results.getReport = {
      ...(await queryRun(b, 'get-report', plan.getReport.rate, plan.getReport.seconds, {
        QUERY: 'report',
        TARGETS: String(seed.targetsPerFamily),
        REPORT_FIRST_DATE: seed.firstDate,
        REPORT_DAYS: String(plan.seed.days),
      })),
      seed,
    };
  else progress('get-report skipped: the seed phase did not run');
}

/** One k6 run of bench/grpc-query.js at `rate` calls/s (`env.QUERY` says which method). */
export async function queryRun(
  b: Bench,
  name: string,
  rate: number,
  seconds: number,
  env: Record<string, string>,
): Promise<QueryRun> {
  const { deployment, progress } = b;
  const p99 = env.QUERY === 'report' ? 10 : 5;
  const step = await k6Step(b, {
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
}
