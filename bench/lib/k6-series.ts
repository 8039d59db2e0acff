/**
 * k6 runs for the benchmark harness: one step at a rate (`k6Step`, judged against its blow-up
 * latency, with ingest's Kafka writes and every process's CPU), a search for the highest rate
 * that passes (`k6Series`), and the ingest loads the phases run (REST single events, REST
 * batches, gRPC streams).
 */
import { join } from 'node:path';
import type { Stepping } from '../plan.ts';
import { type Bench, describeCpu, fmt, repo, track } from './harness.ts';
import { type K6Result, runK6 } from './k6.ts';
import { has, histogram, histogramDelta, quantile, scrape } from './prom.ts';
import type { LoadStep, Series } from './results.ts';
import { searchMax } from './steps.ts';

/** A k6 script and how to drive it: what a step's figures and verdict are made of. */
export interface K6Load {
  script: string;
  latencyMetric: string;
  eventsPerIteration: number;
  blowUpMs: number;
  env: (rate: number) => Record<string, string>;
  /** Sample ingest's /metrics before and after (its Kafka writes). */
  withIngest: boolean;
}

export interface K6StepOptions extends K6Load {
  /** Names the step's raw files. */
  name: string;
  rate: number;
  /** Default: the plan's. */
  seconds?: number;
}

export interface K6SeriesOptions extends K6Load {
  label: string;
  stepping: Stepping;
  /** Of each step (default: the plan's). */
  seconds?: number;
  /** What one iteration is, e.g. `request`, `batch of 100`. */
  iteration: string;
  /** The CPU groups its tables show. */
  columns: string[];
}

/** Steps k6's rate up (and down) to the highest that passes. */
export async function k6Series(b: Bench, options: K6SeriesOptions): Promise<Series> {
  const { plan, progress, outOfTime } = b;
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
      const step = await k6Step(b, { ...options, rate, name: `${options.label}-${++n}-${rate}` });
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
}

/** One k6 run at `options.rate` for the step's seconds, judged. */
export async function k6Step(b: Bench, options: K6StepOptions): Promise<LoadStep> {
  const { plan, deployment, rawDir, k6, sampler } = b;
  const ingestMetricsPort = () => deployment.roles.get('ingest')?.metricsPort;
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
}

function judgeLoad(r: K6Result, blowUpMs: number): { passed: boolean; why: string } {
  const reasons: string[] = [];
  if (r.dropped > 0.01 * r.planned) reasons.push(`${fmt(r.dropped)} of ${fmt(r.planned)} iterations dropped`);
  if (r.failedRate > 0.001) reasons.push(`${fmt(r.failedRate * 100, 2)}% failed`);
  if (!(r.latency.p99 <= blowUpMs)) reasons.push(`p99 ${fmt(r.latency.p99)} ms > ${fmt(blowUpMs)} ms`);
  if (r.iterations === 0) reasons.push('no iteration ran');
  return { passed: reasons.length === 0, why: reasons.join('; ') };
}

/**
 * VUs for an open model: enough allocated up front for 100 ms per iteration (k6 drops
 * iterations while it initialises VUs mid-run), at most enough for the blow-up latency.
 */
export function vus(rate: number, blowUpMs: number, preMs = 100): { VUS: string; MAX_VUS: string } {
  const pre = Math.max(10, Math.ceil((rate * preMs) / 1000));
  return {
    VUS: String(Math.min(1500, pre)),
    MAX_VUS: String(Math.min(2000, Math.max(pre, Math.ceil((rate * blowUpMs) / 1000) + 10))),
  };
}

export const restEnv = (url: () => string, blowUpMs: number) => (rate: number) => ({
  TALLY_URL: url(),
  ...vus(rate, blowUpMs),
  P99_MS: String(blowUpMs),
});

/** `stepping` from a step below `best`'s rate, when there is one. */
export const below = (stepping: Stepping, best: { rate: number } | undefined): Stepping => ({
  ...stepping,
  start: best ? best.rate / stepping.factor : stepping.start,
});

/** The ingest loads, as the phases run them (the Kafka client and overhead phases too). */
export function ingestLoads({ plan, deployment }: Bench) {
  const gatewayUrl = () => `http://127.0.0.1:${deployment.httpPort}`;
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
  return { restSingleLoad, restBatchLoad, grpcStreamLoad };
}
