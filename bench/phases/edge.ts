/**
 * Phases `startup` and `in-process`.
 *
 * `startup`: `tally all` on embedded backends, as `npm start` runs it, from a fresh data directory
 * and then restarted on it: time from the spawn to `/healthz` 200 (the gateway listening), to the
 * first event acknowledged over REST, and to `/readyz` 200 (every backend answering).
 *
 * `in-process`: the same REST load (single events, then batches) at fixed rates through the split
 * edge (gateway and ingest in processes of their own, calling over gRPC) and through one process
 * running both (the gateway calling ingest in-process): CPU per event of the edge, and latency.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startTally } from '../../services/testing/tally-process.ts';
import { type Bench, describeCpu, fmt } from '../lib/harness.ts';
import { ingestLoads, k6Step } from '../lib/k6-series.ts';
import type { LoadStep } from '../lib/results.ts';

/** One start of `tally all`: milliseconds from the spawn to each moment. */
export interface StartupRun {
  /** `fresh`: a new data directory; `restart`: the directory of the run before. */
  kind: 'fresh' | 'restart';
  healthzMs: number;
  firstEventMs: number;
  readyMs: number;
}

export interface InProcessRun {
  load: 'rest-single' | 'rest-batch';
  /** The edge split (gateway → ingest over gRPC), then in one process (in-process calls). */
  split: LoadStep;
  combined: LoadStep;
}

export async function runStartup(b: Bench): Promise<void> {
  const { plan, progress, results } = b;
  const runs: StartupRun[] = [];
  for (let i = 0; i < plan.startupRuns; i++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'tally-bench-startup-'));
    try {
      for (const kind of ['fresh', 'restart'] as const) {
        const run = await timeStart(dataDir, kind);
        runs.push(run);
        progress(
          `  ${kind}: /healthz ${fmt(run.healthzMs)} ms, first event ${fmt(run.firstEventMs)} ms, /readyz ${fmt(run.readyMs)} ms`,
        );
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  results.startup = runs;
}

/** Starts `tally all` on `dataDir` (embedded backends), times it, and stops it with SIGTERM. */
async function timeStart(dataDir: string, kind: StartupRun['kind']): Promise<StartupRun> {
  const httpPort = await freePort();
  const base = `http://127.0.0.1:${httpPort}`;
  const startedMs = performance.now();
  const since = () => performance.now() - startedMs;
  // Polls begin at the spawn: startTally resolves only once the process says it started.
  const answered = (path: string, init?: RequestInit) =>
    (async () => {
      for (;;) {
        try {
          const res = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(2_000) });
          await res.arrayBuffer();
          if (res.status === 200) return since();
        } catch {
          // not listening yet
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
  const healthz = answered('/healthz');
  const firstEvent = answered('/v1/events', {
    method: 'POST',
    body: JSON.stringify({ type: 'bench.startup', target: 'bench/startup' }),
  });
  const ready = answered('/readyz');
  const proc = await startTally(
    ['all'],
    {
      TALLY_DATA_DIR: dataDir,
      TALLY_BIND_HOST: '127.0.0.1',
      TALLY_HTTP_PORT: String(httpPort),
      TALLY_GRPC_PORT: String(await freePort()),
    },
    120_000,
  );
  try {
    const [healthzMs, firstEventMs, readyMs] = await Promise.all([healthz, firstEvent, ready]);
    return { kind, healthzMs, firstEventMs, readyMs };
  } finally {
    await proc.kill('SIGTERM');
  }
}

export async function runInProcess(b: Bench): Promise<void> {
  const { plan, progress, results, deployment } = b;
  const { restSingleLoad, restBatchLoad } = ingestLoads(b);
  const loads = [
    { load: 'rest-single' as const, options: restSingleLoad, rate: plan.inProcess.restSingleRate },
    {
      load: 'rest-batch' as const,
      options: restBatchLoad,
      rate: plan.inProcess.restBatchEventsRate / plan.restBatch.batchSize,
    },
  ];
  const measure = async (shape: 'split' | 'combined') => {
    const steps: LoadStep[] = [];
    for (const { load, options, rate } of loads) {
      const step = await k6Step(b, { name: `in-process-${shape}-${load}`, rate, ...options });
      progress(
        `  ${shape} ${load}: ${fmt(step.achievedEvents)} events/s, p50 ${fmt(step.latency.p50, 1)} ms, p99 ${fmt(step.latency.p99, 1)} ms; cpu: ${describeCpu(step.cpu, ['gateway', 'ingest', 'kafka', 'k6'])}`,
      );
      steps.push(step);
    }
    return steps;
  };
  progress('the edge split: gateway and ingest in processes of their own');
  const split = await measure('split');
  progress('the edge in one process: gateway and ingest together, calling in-process');
  await Promise.all([deployment.stop('gateway'), deployment.stop('ingest')]);
  await deployment.startCombined('gateway', ['gateway', 'ingest']);
  try {
    const combined = await measure('combined');
    results.inProcess = loads.map(({ load }, i) => ({ load, split: split[i]!, combined: combined[i]! }));
  } finally {
    await deployment.stop('gateway');
    await Promise.all([deployment.start('ingest'), deployment.start('gateway')]);
  }
}
