/**
 * Phases `bare-http` and `rest-single`: REST single events against a bare Node.js HTTP server
 * (the baseline) and against the gateway, stepped to their maxima; then the gateway at 70 % of
 * its maximum.
 */
import { type Bench, describeCpu, fmt, spawnNode } from '../lib/harness.ts';
import { ingestLoads, k6Series, k6Step, restEnv } from '../lib/k6-series.ts';
import { niceRate } from '../lib/steps.ts';

export async function runBareHttp(b: Bench): Promise<void> {
  const { plan, results } = b;
  const { child, first } = await spawnNode('bare-http', 'bench/baselines/bare-http.ts', []);
  const port = (JSON.parse(first) as { port: number }).port;
  try {
    results.bareHttp = await k6Series(b, {
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
}

export async function runRestSingle(b: Bench): Promise<void> {
  const { plan, results, progress } = b;
  const { restSingleLoad } = ingestLoads(b);
  const series = await k6Series(b, { label: 'rest-single', stepping: plan.restSingle, ...restSingleLoad });
  results.restSingle = series;
  if (!series.best) return;
  const rate = niceRate(series.best.rate * 0.7);
  progress(`rest-single at 70 % of the maximum: ${fmt(rate)} requests/s for ${plan.at70Seconds} s`);
  results.at70 = await k6Step(b, {
    name: 'rest-single-70pct',
    rate,
    seconds: plan.at70Seconds,
    ...restSingleLoad,
  });
  progress(
    `  70 %: ${fmt(results.at70.achievedEvents)} events/s, p50 ${fmt(results.at70.latency.p50, 1)} ms, p99 ${fmt(results.at70.latency.p99, 1)} ms; cpu: ${describeCpu(results.at70.cpu, ['gateway', 'ingest', 'kafka', 'k6'])}`,
  );
}
