/**
 * The benchmark harness (bench/bench.ts) in its smoke variant: seconds of tiny load on tiny tables,
 * end to end — the six role processes on the local servers, k6, the simulator and every baseline,
 * GetWindows over loaded aggregates, the router and a sender delivering to local receivers, then
 * the roles restarted with each Kafka client, with tracing on and under the CPU profiler, and
 * with access control off and on —
 * writing its report to a scratch path (never bench/RESULTS.md). Checks that the run succeeds and
 * that the report has every section, a figure on every line of its summary, the Kafka clients'
 * verdict, the observability target's line and the access control target's. No timing is asserted: figures belong to
 * `make bench`. Skipped when k6 is not installed or the local servers are not running
 * (`make services-up`), saying which.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SECTIONS, SUMMARY_ROWS } from '../bench/report.ts';
import { requireRealServers } from '../services/testing/real-servers.ts';

const repo = join(import.meta.dirname, '..');
const k6 = execFileSync(join(repo, 'scripts', 'install-k6.sh'), ['--print-path'], {
  encoding: 'utf8',
}).trim();

async function skipReason(): Promise<string | false> {
  if (!existsSync(k6))
    return process.env.CI ? false : `k6 is not installed at ${k6}: run scripts/install-k6.sh`;
  try {
    await requireRealServers();
  } catch (error) {
    return `${(error as Error).message}`;
  }
  return false;
}

/** The cells of the summary table's row whose first cell is `label`. */
function summaryRow(report: string, label: string): string[] | undefined {
  const summary = report.slice(
    report.indexOf('## Summary'),
    report.indexOf('\n## ', report.indexOf('## Summary') + 1),
  );
  for (const line of summary.split('\n')) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    if (cells[0] === label) return cells;
  }
  return undefined;
}

test('the benchmark harness runs its smoke variant end to end and reports every figure', {
  skip: await skipReason(),
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'RESULTS.md');
  const committed = join(repo, 'bench', 'RESULTS.md');
  const committedBefore = existsSync(committed) ? statSync(committed).mtimeMs : undefined;

  const child = spawn(
    process.execPath,
    [join(repo, 'bench', 'bench.ts'), '--smoke', '--out', out, '--raw-dir', join(dir, 'raw')],
    { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout.on('data', (c: Buffer) => {
    log += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    log += c.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  // Each phase that failed, in full (its stack can be long), then the end of the log.
  const failures = log.split('\n').filter((line) => / failed: /.test(line));
  assert.equal(
    code,
    0,
    `bench/bench.ts --smoke exited with ${code}:\n${failures.join('\n')}\n…\n${log.slice(-4000)}`,
  );

  const report = readFileSync(out, 'utf8');
  assert.match(report, /^# Tally benchmark results/);
  assert.match(report, /\*\*Smoke run\*\*/);
  for (const section of SECTIONS) assert.ok(report.includes(`\n## ${section}\n`), `no section "${section}"`);
  assert.doesNotMatch(report, /\n## Errors\n/, 'a phase failed');
  for (const label of SUMMARY_ROWS) {
    const cells = summaryRow(report, label);
    assert.ok(cells, `the summary has no row "${label}"`);
    assert.match(cells[1]!, /\d/, `"${label}" has no figure: ${cells.join(' | ')}`);
  }
  for (const field of [
    'CPU',
    'RAM',
    'Node.js',
    'Kafka',
    'Redis',
    'PostgreSQL',
    'k6',
    'kafkajs',
    '@platformatic/kafka',
  ])
    assert.match(report, new RegExp(`\\| ${field} *\\| [^|]*\\w`), `machine or version "${field}" missing`);
  // The latency table of the REST single steps, with one row per step at least.
  const single = report.slice(report.indexOf('## REST single events'));
  assert.match(single, /\| offered requests\/s *\|/);
  assert.match(single, /\n\| \d[\d,]* *\| \d/);
  // The edge split and in one process, each load with a CPU figure; start-up times.
  const edge = report.slice(report.indexOf('## The edge in one process'));
  for (const load of ['rest-single', 'rest-batch'])
    for (const shape of ['split \\(gRPC\\)', 'one process'])
      assert.match(
        edge,
        new RegExp(`\\| ${load} *\\| ${shape} *\\| \\d[\\d,]* *\\| \\d`),
        `${load} ${shape}`,
      );
  const startup = report.slice(report.indexOf('## Start-up of `tally all`'));
  for (const kind of ['fresh', 'restart'])
    assert.match(startup, new RegExp(`\\| ${kind} *\\| 1 *\\| \\d`), `start-up ${kind}`);
  // What the sinks keep per event: Redis at two event counts and the growth between them, every
  // table of the schema, and the design before measured beside them.
  const bookkeeping = report.slice(report.indexOf('## Bookkeeping per event'));
  // The growth row is there with a figure (used_memory is the whole server's: other clients'
  // work meanwhile can make it negative).
  assert.match(bookkeeping, /\n\| \d[\d,]* → \d[\d,]* *\| -?\d/, 'no growth between the two event counts');
  for (const t of ['event', 'event_summary', 'consumer_offset'])
    assert.match(bookkeeping, new RegExp(`\\| \`${t}\` *\\| \\d`), `no row for table ${t}`);
  assert.match(bookkeeping, /\*\*Before\*\* \(a marker per event/);
  // Both Kafka clients measured, and a verdict drawn from their figures.
  const clients = report.slice(report.indexOf('## Kafka client: kafkajs against @platformatic/kafka'));
  assert.match(clients, /\*\*Verdict\.\*\* \S/);
  for (const library of ['kafkajs', '@platformatic/kafka'])
    assert.match(clients, new RegExp(`\\| ${library} *\\| \\d`), `no ingest maximum with ${library}`);
  // Tracing off and on, the metrics' profile, and the target's line.
  const overhead = report.slice(report.indexOf('## Cost of tracing and metrics'));
  assert.match(overhead, /\*\*Metrics and tracing on cost ≤ 10 % of throughput: (met|not met)\*\*/);
  assert.match(
    overhead,
    /\| REST single *\| \d+ *\| \d[\d,]* *\| gateway *\| [1-9]/,
    'no profiled gateway samples',
  );

  // Access control off and on, each load with a CPU figure both ways (a smoke step may fail: its
  // CPU is measured all the same), and the target's line.
  const auth = report.slice(report.indexOf('## Cost of access control'));
  assert.match(auth, /\*\*Access control on costs ≤ 5 % of throughput: (met|not met)\*\*/);
  for (const load of ['REST single', 'REST batch', 'gRPC stream'])
    for (const state of ['off', 'on'])
      assert.match(
        auth,
        new RegExp(`\\| ${load} *\\| ${state} *\\|[^|]*\\|[^|]*\\| \\d`),
        `${load} with access control ${state}`,
      );
  assert.match(auth, /TALLY_RATE_LIMIT/, 'says how the rate limits are measured');

  // GetWindows beside its baseline; delivery's isolation runs, all healthy and beside a dead and a slow one.
  const windows = report.slice(report.indexOf('## Sliding-window aggregates'));
  for (const call of ['GetWindows', 'GetCounters \\(baseline\\)'])
    assert.match(windows, new RegExp(`\\| ${call} *\\| \\d`), `no ${call} row`);
  const delivery = report.slice(report.indexOf('## Delivery'));
  for (const others of ['two healthy', 'one dead'])
    assert.match(delivery, new RegExp(`\\| ${others}[^|]*\\| \\d`), `no isolation run beside ${others}`);

  if (committedBefore !== undefined)
    assert.equal(statSync(committed).mtimeMs, committedBefore, 'the smoke run touched bench/RESULTS.md');
});
