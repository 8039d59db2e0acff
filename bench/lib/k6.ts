/**
 * Runs one k6 script (loadtest/ or bench/) with its settings in the environment and reads back
 * the figures of its JSON summary (SUMMARY_JSON, written by loadtest/lib/summary.js).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface K6Options {
  k6: string;
  repo: string;
  /** Script path relative to the repository (`loadtest/rest-single.js`). */
  script: string;
  /** Environment for the script: RATE, DURATION, TALLY_URL, … */
  env: Record<string, string>;
  /** Where the JSON summary and k6's output go (`<base>.json`, `<base>.out`). */
  outBase: string;
  /** The trend whose percentiles are the call latency (`http_req_duration`, `grpc_req_duration`, …). */
  latencyMetric: string;
  /** Called with the k6 child once spawned (to account its CPU). */
  onSpawn?: (child: ChildProcess) => void;
}

/** Percentiles of a trend, ms. */
export interface Latency {
  avg: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

export interface K6Result {
  exitCode: number | null;
  /** Iterations offered per second (RATE) and for how long, s. */
  offeredRate: number;
  durationS: number;
  /** Iterations k6 planned, ran, and could not start (every VU busy). */
  planned: number;
  iterations: number;
  dropped: number;
  /** Share of calls that failed or answered something unexpected. */
  failedRate: number;
  eventsSent: number;
  eventsAccepted: number;
  /** Events acknowledged per second of the run. */
  acceptedPerSecond: number;
  latency: Latency;
  /** Most VUs k6 had to use. */
  maxVus: number;
  summaryPath: string;
  /** When the offered load ran (epoch ms), from k6's exit and its run's length. */
  loadFromMs: number;
  loadToMs: number;
}

interface RawSummary {
  metrics: Record<string, { type: string; values: Record<string, number> } | undefined>;
  state?: { testRunDurationMs?: number };
}

/** Seconds of a k6 duration (`10s`, `1m30s`, `500ms`). */
export function durationSeconds(text: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g))
    total += Number(amount) * units[unit!]!;
  return total;
}

export async function runK6(options: K6Options): Promise<K6Result> {
  const summaryPath = `${options.outBase}.json`;
  const child = spawn(
    options.k6,
    ['run', '--quiet', '--no-usage-report', join(options.repo, options.script)],
    {
      cwd: options.repo,
      env: { ...process.env, ...options.env, SUMMARY_JSON: summaryPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  options.onSpawn?.(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [exitCode] = (await once(child, 'exit')) as [number | null];
  const exitedMs = Date.now();
  writeFileSync(`${options.outBase}.out`, output);
  // 0: every threshold held; 99: some crossed (the figures are what matters here).
  if (!existsSync(summaryPath) || (exitCode !== 0 && exitCode !== 99))
    throw new Error(
      `k6 ${options.script} exited with ${exitCode} and no usable summary:\n${output.slice(-3000)}`,
    );
  const result = readSummary(summaryPath, options);
  // k6 ends with the summary (a few ms); the run before it is setup, the scenario and its graceful stop.
  const runMs = result.runMs;
  const loadToMs = exitedMs - 100 - Math.max(0, runMs - result.durationS * 1000);
  return { ...result, exitCode, loadFromMs: loadToMs - result.durationS * 1000, loadToMs };
}

function readSummary(path: string, options: K6Options): K6Result & { runMs: number } {
  const summary = JSON.parse(readFileSync(path, 'utf8')) as RawSummary;
  const m = summary.metrics;
  const values = (name: string) => m[name]?.values ?? {};
  const rate = Number(options.env.RATE ?? 0);
  const durationS = durationSeconds(options.env.DURATION ?? '10s');
  const trend = values(options.latencyMetric);
  const runS = (summary.state?.testRunDurationMs ?? durationS * 1000) / 1000;
  const accepted = values('tally_events_accepted').count ?? 0;
  return {
    exitCode: null,
    offeredRate: rate,
    durationS,
    planned: Math.floor(rate * durationS),
    iterations: values('iterations').count ?? 0,
    dropped: values('dropped_iterations').count ?? 0,
    failedRate: values('tally_requests_failed').rate ?? 0,
    eventsSent: values('tally_events_sent').count ?? 0,
    eventsAccepted: accepted,
    // Over the offered window, not the whole run (setup and the final wait would dilute it).
    acceptedPerSecond: accepted / Math.max(durationS, Math.min(runS, durationS + 1)),
    latency: {
      avg: trend.avg ?? Number.NaN,
      p50: trend.med ?? Number.NaN,
      p90: trend['p(90)'] ?? Number.NaN,
      p95: trend['p(95)'] ?? Number.NaN,
      p99: trend['p(99)'] ?? Number.NaN,
      max: trend.max ?? Number.NaN,
    },
    maxVus: values('vus_max').max ?? values('vus_max').value ?? 0,
    summaryPath: path,
    loadFromMs: 0,
    loadToMs: 0,
    runMs: runS * 1000,
  };
}
