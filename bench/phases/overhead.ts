/**
 * Phase `overhead`: what tracing and metrics cost the ingest path. Ingest and the gateway run
 * with tracing off, then on (every span exported to the harness's OTLP receiver), at the same
 * steps; then under the CPU profiler at a fixed load, for the metrics' share of the samples.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { attribute, METRICS_CODE, monotonicMicros, readProfileOf } from '../lib/cpu-profile.ts';
import { CONSUMER_ROLES, type Role } from '../lib/deployment.ts';
import { type Bench, expectLogged, fmt, restartIngestPath, spawnNode } from '../lib/harness.ts';
import { below, ingestLoads, k6Series, k6Step } from '../lib/k6-series.ts';
import type { LoadStep, MetricsProfile, OverheadResult, OverheadStage } from '../lib/results.ts';
import { niceRate } from '../lib/steps.ts';
import type { Stepping } from '../plan.ts';

/** Where both tracing stages' searches start. */
interface OverheadSteppings {
  grpcStepping: Stepping;
  singleStepping: Stepping;
}

/** The OTLP receiver's counts so far. */
type Received = () => Promise<{ requests: number; bytes: number }>;

/** A fixed-load step run under the CPU profiler, and the roles whose profiles it reads. */
interface ProfiledStep {
  load: MetricsProfile['load'];
  roles: Role[];
  step: LoadStep;
}

export async function runOverhead(b: Bench): Promise<void> {
  const { plan, results, deployment, rawDir } = b;
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
    const steppings: OverheadSteppings = {
      grpcStepping: below(o.grpcStream, results.grpcStream?.best),
      singleStepping: below(o.restSingle, results.restSingle?.best),
    };
    const stage = (tracing: boolean) => tracingStage(b, tracing, tracingEnv, received, steppings);
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
    await profileMetrics(b, overhead, steppings);
  } finally {
    receiver.child.kill('SIGTERM');
  }
}

/** Ingest's gRPC stream and REST single series with tracing off or on; the spans exported and dropped. */
async function tracingStage(
  b: Bench,
  tracing: boolean,
  tracingEnv: Record<string, string>,
  received: Received,
  { grpcStepping, singleStepping }: OverheadSteppings,
): Promise<OverheadStage> {
  const { plan, deployment, progress } = b;
  const o = plan.overhead;
  const { grpcStreamLoad, restSingleLoad } = ingestLoads(b);
  const name = `tracing-${tracing ? 'on' : 'off'}`;
  progress(
    `tracing ${tracing ? "on (every span exported to the harness's OTLP receiver)" : 'off'}: restarting ingest and the gateway`,
  );
  await restartIngestPath(b, tracing ? tracingEnv : {});
  if (tracing)
    for (const role of ['ingest', 'gateway'] as const)
      expectLogged(b, role, ['"msg":"tracing on"'], 'that tracing is on');
  const before = await received();
  const grpcStream = await k6Series(b, {
    label: `${name}-grpc-stream`,
    stepping: grpcStepping,
    seconds: o.stepSeconds,
    ...grpcStreamLoad,
    columns: [...grpcStreamLoad.columns, 'otlp-sink'],
  });
  const restSingle = await k6Series(b, {
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
}

/** Metrics are always on: their cost is their share of the CPU profile of a fixed-load step. */
async function profileMetrics(
  b: Bench,
  overhead: OverheadResult,
  { grpcStepping, singleStepping }: OverheadSteppings,
): Promise<void> {
  const { plan, deployment, progress } = b;
  const o = plan.overhead;
  const { profileDir } = overhead;
  const { grpcStreamLoad, restSingleLoad } = ingestLoads(b);
  mkdirSync(profileDir, { recursive: true });
  const quoted = `"${profileDir.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  const nodeOptions = [process.env.NODE_OPTIONS, '--cpu-prof', `--cpu-prof-dir=${quoted}`];
  progress('metrics: restarting ingest and the gateway under the CPU profiler (--cpu-prof)');
  await restartIngestPath(b, { NODE_OPTIONS: nodeOptions.filter(Boolean).join(' ') });
  const pids = new Map(
    (['gateway', 'ingest'] as const).map((role) => [role, deployment.roles.get(role)!.pid]),
  );
  const steps: ProfiledStep[] = [];
  for (const [load, roles, series, stepping, spec] of [
    ['REST single', ['gateway', 'ingest'], overhead.off.restSingle, singleStepping, restSingleLoad],
    ['gRPC stream', ['ingest'], overhead.off.grpcStream, grpcStepping, grpcStreamLoad],
  ] as const) {
    const rate = niceRate(o.profileShare * (series?.best?.rate ?? stepping.start));
    const step = await k6Step(b, {
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
  attributeProfiles(b, overhead, steps, pids);
}

/** Each profiled role's samples inside its step: busy, and in prom-client and metrics.ts. */
function attributeProfiles(
  { progress }: Bench,
  overhead: OverheadResult,
  steps: ProfiledStep[],
  pids: Map<'gateway' | 'ingest', number>,
): void {
  const { profileDir } = overhead;
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
