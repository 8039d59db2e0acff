/**
 * Phase `sinks`: each consumer role alone on its backlog, its rate counted from its first commit:
 * the persister on the events the ingest phases left, then the counter and the aggregator on what
 * it accepted and forwarded meanwhile; then the servers' own baselines (PostgreSQL COPY,
 * redis-benchmark).
 */
import { runPgCopy } from '../baselines/pg-copy.ts';
import { runRedisBenchmark } from '../baselines/redis-bench.ts';
import { createBenchAlertRules } from '../lib/alert-rules.ts';
import { CONSUMER_ROLES, type Deployment, localServers, type SinkRole, TOPIC_OF } from '../lib/deployment.ts';
import { orderRecords } from '../lib/event-mix.ts';
import { type Bench, describeCpu, fmt, repo, sleep } from '../lib/harness.ts';
import type { CpuSampler } from '../lib/proc.ts';
import type { CatchUp } from '../lib/results.ts';

export async function runSinks(b: Bench): Promise<void> {
  const { plan, results, deployment, ns, progress } = b;
  // The persister first (CONSUMER_ROLES' order): the others' backlog is what it forwards.
  for (const role of CONSUMER_ROLES) {
    const r = await catchUpAlone(b, role, plan.catchUpSeconds);
    if (r) results.catchUp.push(r);
  }
  // The alerter, with the rules a social app would have on the mix's likes, comments and
  // transactions (bench/lib/alert-rules.ts), on everything the persister accepted.
  progress(`alert rules: ${(await createBenchAlertRules(deployment)).join('; ')}`);
  // A backlog's partitions are read minutes of event time apart: a lateness bound of a day keeps
  // every event in its window, as docs/alerts.md says to do for a replay.
  const alerter = await catchUpAlone(b, 'alerter', plan.catchUpSeconds, {
    TALLY_ALERT_LATENESS_MS: '86400000',
  });
  if (alerter) results.catchUp.push(alerter);
  // The projector, on the orders scenario's lifecycles alone (the mix has no order events): the
  // persister's and the projector's groups skip what came before, the persister takes in the
  // orders (all of them: a backlog of its own), and the projector catches up on them.
  if (plan.projectorEvents > 0) {
    await deployment.skipToEnd('persister');
    await deployment.skipToEnd('projector');
    const records = orderRecords(plan.projectorEvents, `${ns.id}o`);
    const producer = deployment.log.producer();
    for (let i = 0; i < records.length; i += 5_000)
      await producer.send(deployment.ns.eventsTopic, records.slice(i, i + 5_000));
    progress(`wrote ${fmt(records.length)} events of the orders scenario for the projector`);
    await catchUpAlone(b, 'persister', 4 * plan.catchUpSeconds, {}, 'persister (the orders, not reported)');
    const projector = await catchUpAlone(b, 'projector', plan.catchUpSeconds);
    if (projector) results.catchUp.push(projector);
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
    partitions: ns.partitions,
  });
  for (const row of results.redisBench.rows)
    progress(
      `redis-benchmark ${row.name}: ${fmt(row.requestsPerSecond)} requests/s${row.eventsPerRequest ? ` (${fmt(row.eventsPerSecond)} events/s)` : ''}, p99 ${fmt(row.p99Ms, 2)} ms`,
    );
}

/**
 * Starts a consumer role alone on the backlog of its group (the deployment's prefix) on the topic
 * it reads and measures its catch-up; stops it after. The counter's and the aggregator's backlog
 * is on the accepted topic: what the persister forwarded that their group has not read.
 */
export async function catchUpAlone(
  { deployment, sampler, progress }: Bench,
  role: SinkRole | 'projector',
  seconds: number,
  env: Record<string, string> = {},
  label: string = role,
): Promise<CatchUp | undefined> {
  const end = await deployment.endOffset(role);
  const committedBefore = await deployment.committed(role);
  const backlog = end - committedBefore;
  if (backlog <= 0) {
    progress(
      `${label}: no backlog to catch up on${TOPIC_OF[role] === 'accepted' ? ' (the persister, which runs first, forwarded nothing this group has not read)' : ''}`,
    );
    return undefined;
  }
  await deployment.start(role, env);
  const r = await measureCatchUp(deployment, role, backlog, seconds, sampler);
  await deployment.stop(role);
  progress(
    `${label} alone: ${fmt(r.eventsPerSecond)} events/s over ${fmt(r.seconds, 1)} s (${fmt(r.events)} of a backlog of ${fmt(backlog)}); cpu: ${describeCpu(r.cpu, [role, role === 'counter' || role === 'alerter' ? 'redis' : 'postgres', 'kafka'])}`,
  );
  return r;
}

/** Measures a consumer role catching up alone: committed records per second once it started committing. */
async function measureCatchUp(
  deployment: Deployment,
  role: SinkRole | 'projector',
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
    topic: TOPIC_OF[role],
    backlog,
    events: last - fromCommitted,
    seconds,
    eventsPerSecond: (last - fromCommitted) / Math.max(0.001, seconds),
    cpu: sampler.use(fromMs, toMs),
  };
}
