/**
 * Phases `rest-batch` and `grpc-stream`: REST batches to the gateway and gRPC client streams to
 * ingest, stepped to their maxima with events built once per VU; then the load tests' own
 * scripts at the same rate, for what generating the events costs k6.
 */
import { type Bench, describeCpu, fmt } from '../lib/harness.ts';
import { ingestLoads, type K6Load, k6Series, k6Step } from '../lib/k6-series.ts';
import type { LoadStep, Series } from '../lib/results.ts';

export async function runRestBatch(b: Bench): Promise<void> {
  const { plan, results } = b;
  const { restBatchLoad } = ingestLoads(b);
  results.restBatch = await k6Series(b, { label: 'rest-batch', stepping: plan.restBatch, ...restBatchLoad });
  results.restBatchLoadtestScript = await loadtestScriptAtBest(b, 'rest-batch', results.restBatch, {
    ...restBatchLoad,
    script: 'loadtest/rest-batch.js',
  });
}

export async function runGrpcStream(b: Bench): Promise<void> {
  const { plan, results } = b;
  const { grpcStreamLoad } = ingestLoads(b);
  results.grpcStream = await k6Series(b, {
    label: 'grpc-stream',
    stepping: plan.grpcStream,
    ...grpcStreamLoad,
  });
  results.grpcStreamLoadtestScript = await loadtestScriptAtBest(b, 'grpc-stream', results.grpcStream, {
    ...grpcStreamLoad,
    script: 'loadtest/grpc-stream.js',
  });
}

/**
 * The load tests' own script (`load.script`) at the best rate of `series`, for what generating
 * the events costs k6; undefined when no step passed.
 */
async function loadtestScriptAtBest(
  b: Bench,
  label: string,
  series: Series,
  load: K6Load & { iteration: string; columns: string[] },
): Promise<LoadStep | undefined> {
  if (!series.best) return undefined;
  const rate = series.best.rate;
  const step = await k6Step(b, { name: `${label}-loadtest-script`, rate, ...load });
  const unit = load.iteration.startsWith('batch') ? 'batches' : 'streams';
  b.progress(
    `${label} with ${load.script} at ${fmt(rate)} ${unit}/s: ${fmt(step.achievedEvents)} events/s, p99 ${fmt(step.latency.p99, 1)} ms → ${step.passed ? 'pass' : `FAIL (${step.why})`}; cpu: ${describeCpu(step.cpu, load.columns)}`,
  );
  return step;
}
