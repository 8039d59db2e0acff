/**
 * Phases `rest-batch` and `grpc-stream`: REST batches to the gateway and gRPC client streams to
 * ingest, stepped to their maxima with events built once per VU; then the load tests' own
 * scripts at the same rate, for what generating the events costs k6.
 */
import { type Bench, describeCpu, fmt } from '../lib/harness.ts';
import { ingestLoads, k6Series, k6Step } from '../lib/k6-series.ts';

export async function runRestBatch(b: Bench): Promise<void> {
  const { plan, results, progress } = b;
  const { restBatchLoad } = ingestLoads(b);
  const series = await k6Series(b, { label: 'rest-batch', stepping: plan.restBatch, ...restBatchLoad });
  results.restBatch = series;
  if (!series.best) return;
  // The load tests' own script at the same rate, for the generator's cost.
  const rate = series.best.rate;
  const step = await k6Step(b, {
    name: 'rest-batch-loadtest-script',
    rate,
    ...restBatchLoad,
    script: 'loadtest/rest-batch.js',
  });
  results.restBatchLoadtestScript = step;
  progress(
    `rest-batch with loadtest/rest-batch.js at ${fmt(rate)} batches/s: ${fmt(step.achievedEvents)} events/s, p99 ${fmt(step.latency.p99, 1)} ms → ${step.passed ? 'pass' : `FAIL (${step.why})`}; cpu: ${describeCpu(step.cpu, ['gateway', 'ingest', 'kafka', 'k6'])}`,
  );
}

export async function runGrpcStream(b: Bench): Promise<void> {
  const { plan, results, progress } = b;
  const { grpcStreamLoad } = ingestLoads(b);
  const series = await k6Series(b, { label: 'grpc-stream', stepping: plan.grpcStream, ...grpcStreamLoad });
  results.grpcStream = series;
  if (!series.best) return;
  const rate = series.best.rate;
  const step = await k6Step(b, {
    name: 'grpc-stream-loadtest-script',
    rate,
    ...grpcStreamLoad,
    script: 'loadtest/grpc-stream.js',
  });
  results.grpcStreamLoadtestScript = step;
  progress(
    `grpc-stream with loadtest/grpc-stream.js at ${fmt(rate)} streams/s: ${fmt(step.achievedEvents)} events/s, p99 ${fmt(step.latency.p99, 1)} ms → ${step.passed ? 'pass' : `FAIL (${step.why})`}; cpu: ${describeCpu(step.cpu, ['ingest', 'kafka', 'k6'])}`,
  );
}
