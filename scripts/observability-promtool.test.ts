/**
 * Tally's Prometheus rules through promtool (Debian's `prometheus` package): every rule file
 * passes `promtool check rules`, the unit tests of observability/prometheus/tests/ pass
 * `promtool test rules` (for each alert, series that fire it and series that must not), and the
 * local scrape configuration passes `promtool check config`. Fails, saying how to install it,
 * when promtool is missing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { promisify } from 'node:util';
import { localPrometheusConfig, RULE_FILE_PATHS } from '../observability/prometheus/local-config.ts';
import { OBSERVABILITY_DIR } from '../observability/render.ts';

const run = promisify(execFile);
const TESTS_DIR = join(OBSERVABILITY_DIR, 'prometheus', 'tests');

/** Runs promtool; resolves with its output, or rejects with it. */
async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('promtool', args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout + stderr;
  } catch (error) {
    const e = error as { code?: string; stdout?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT')
      throw new Error(
        "promtool not found: install Debian's prometheus package (scripts/install-deps.sh does, " +
          'or: apt-get install prometheus)',
      );
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

before(async () => {
  await promtool('--version');
});

test('promtool check rules accepts every rule file', async () => {
  assert.ok(RULE_FILE_PATHS.length >= 2);
  const output = await promtool('check', 'rules', ...RULE_FILE_PATHS);
  assert.equal(output.match(/SUCCESS/g)?.length, RULE_FILE_PATHS.length, output);
});

test('promtool test rules: every alert fires on its series and stays silent on the others', async () => {
  const files = readdirSync(TESTS_DIR)
    .filter((f) => f.endsWith('.test.yml'))
    .map((f) => join(TESTS_DIR, f));
  assert.ok(files.length >= 3, `only ${files.length} test files in ${TESTS_DIR}`);
  const output = await promtool('test', 'rules', ...files);
  assert.equal(output.match(/SUCCESS/g)?.length, files.length, output);
});

test('promtool check config accepts the local Prometheus configuration', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-promtool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'prometheus.yml');
  writeFileSync(file, localPrometheusConfig({ targets: [{ role: 'all', address: '127.0.0.1:8080' }] }));
  const output = await promtool('check', 'config', file);
  assert.match(output, /SUCCESS/, output);
});
