/**
 * The k6 load tests of loadtest/ run against `tally all` on embedded backends: each script, at a
 * tiny rate for about 3 s, exits 0 and writes a JSON summary with its metrics, and every event
 * the scripts got acknowledged is counted by the suite. Latency bounds are relaxed here: this
 * test checks that the scripts work and the suite counts what they send; figures come from
 * `scripts/loadtest.sh`. Skipped when k6 is not installed (scripts/install-k6.sh).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, startTally } from '../services/testing/tally-process.ts';

const repo = join(import.meta.dirname, '..');
const k6 = execFileSync(join(repo, 'scripts', 'install-k6.sh'), ['--print-path'], {
  encoding: 'utf8',
}).trim();
// Under CI (which installs k6) a missing k6 is a failure, not a skip.
const skip =
  existsSync(k6) || process.env.CI
    ? false
    : `k6 is not installed at ${k6}: run scripts/install-k6.sh to build it`;

/** Targets per family: few enough that `GET /v1/top?limit=100` lists every counted target. */
const TARGETS = 20;

const COMMON_METRICS = [
  'checks',
  'iterations',
  'tally_events_sent',
  'tally_events_accepted',
  'tally_requests_failed',
];

/** Each script, with its tiny load and the metrics its summary must hold. */
const SCRIPTS: Record<string, { env: Record<string, string>; metrics: string[] }> = {
  'rest-single': { env: { RATE: '5' }, metrics: ['http_req_duration', 'http_req_failed'] },
  'rest-batch': { env: { RATE: '2', BATCH_SIZE: '10' }, metrics: ['http_req_duration', 'http_req_failed'] },
  'grpc-unary': { env: { RATE: '5' }, metrics: ['grpc_req_duration'] },
  'grpc-stream': { env: { RATE: '1', STREAM_EVENTS: '10' }, metrics: ['tally_stream_duration'] },
  'grpc-stream-acked': {
    env: { RATE: '1', STREAM_EVENTS: '20', MESSAGE_EVENTS: '5' },
    metrics: ['tally_ack_delay'],
  },
  'ws-subscribers': {
    env: { RATE: '5', SUBSCRIBERS: '3', WATCH_TARGETS: '3' },
    metrics: [
      'http_req_duration',
      'ws_connecting',
      'tally_ws_subscribe_duration',
      'tally_ws_dashboard_messages',
      'tally_ws_counters_messages',
      'tally_live_delay',
    ],
  },
};

interface Summary {
  tally: { script: string; thresholdsOk: boolean };
  metrics: Record<string, { type: string; values: Record<string, number> }>;
}

/** Runs `k6 run` on a script; resolves with its exit code and output. */
async function runK6(
  script: string,
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(k6, ['run', '--quiet', '--no-usage-report', join(repo, 'loadtest', `${script}.js`)], {
    cwd: repo,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

/** Every count of `GET /v1/top?limit=100`, summed over types and targets. */
async function countedEvents(httpPort: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${httpPort}/v1/top?limit=100`);
  assert.equal(response.status, 200);
  const body = (await response.json()) as { leaders?: { targets?: { count: string }[] }[] };
  let total = 0;
  for (const leader of body.leaders ?? []) for (const t of leader.targets ?? []) total += Number(t.count);
  return total;
}

test('every load test script runs against tally all, and the suite counts what it sent', {
  skip,
}, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-loadtest-'));
  const summaries = mkdtempSync(join(tmpdir(), 'tally-loadtest-summaries-'));
  const tally = await startTally(['all'], {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '4',
  });
  t.after(async () => {
    await tally.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(summaries, { recursive: true, force: true });
  });

  let accepted = 0;
  for (const [script, { env, metrics }] of Object.entries(SCRIPTS)) {
    await t.test(script, async () => {
      const summaryPath = join(summaries, `${script}.json`);
      const { code, output } = await runK6(script, {
        TALLY_URL: `http://127.0.0.1:${tally.httpPort}`,
        TALLY_GRPC: `127.0.0.1:${tally.grpcPort}`,
        DURATION: '3s',
        VUS: '10',
        TARGETS: String(TARGETS),
        // Correctness, not timing: a busy machine must not fail the run on latency.
        P99_MS: '10000',
        LIVE_P95_MS: '10000',
        SUMMARY_JSON: summaryPath,
        ...env,
      });
      assert.equal(code, 0, `k6 run ${script} exited with ${code}:\n${output}`);
      assert.ok(existsSync(summaryPath), `no summary at ${summaryPath}:\n${output}`);

      const summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as Summary;
      assert.equal(summary.tally.script, script);
      assert.equal(summary.tally.thresholdsOk, true);
      for (const name of [...COMMON_METRICS, ...metrics])
        assert.ok(summary.metrics[name], `${script}: summary lacks ${name}`);
      const count = (name: string) => summary.metrics[name]?.values.count ?? 0;
      assert.ok(count('iterations') > 0, `${script}: no iterations`);
      assert.ok(count('tally_events_accepted') > 0, `${script}: no event accepted`);
      assert.equal(count('tally_events_accepted'), count('tally_events_sent'));
      assert.equal(summary.metrics.checks?.values.fails, 0, `${script}: failed checks:\n${output}`);
      if (script === 'ws-subscribers') assert.ok(count('tally_ws_dashboard_messages') > 0);
      accepted += count('tally_events_accepted');
    });
  }

  await t.test('the suite counts every event the scripts got acknowledged', async () => {
    // Every id is unique, so the counters must reach exactly the number acknowledged.
    const deadline = Date.now() + 30_000;
    let counted = await countedEvents(tally.httpPort!);
    while (counted < accepted && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      counted = await countedEvents(tally.httpPort!);
    }
    assert.equal(counted, accepted);
  });
});
