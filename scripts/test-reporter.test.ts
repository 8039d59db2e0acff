import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

test('the reporter lists every skipped test with its reason before the totals, and keeps the exit status', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-reporter-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'fixture.test.mjs');
  writeFileSync(
    file,
    [
      "import { test } from 'node:test';",
      "test('needs helm', { skip: 'helm is not installed' }, () => {});",
      "test('runs', () => {});",
      "test('needs k6', (t) => t.skip('k6 is not installed'));",
      "test('fails', () => { throw new Error('boom'); });",
    ].join('\n'),
  );
  const reporter = join(import.meta.dirname, 'test-reporter.ts');
  // Without NODE_TEST_CONTEXT, which would make the child report to this runner instead of printing.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const run = promisify(execFile)(process.execPath, ['--test', `--test-reporter=${reporter}`, file], {
    cwd: dir,
    env,
  });
  const { stdout, code } = await run.then(
    (r) => ({ stdout: r.stdout, code: 0 }),
    (e: { stdout: string; code: number }) => ({ stdout: e.stdout, code: e.code }),
  );
  assert.equal(code, 1, 'a failing test still fails the run');
  const list = stdout.indexOf('skipped 2 test(s):');
  const totals = stdout.indexOf('ℹ tests 4');
  assert.ok(list >= 0 && totals > list, `the list precedes the totals:\n${stdout}`);
  assert.match(stdout, /- fixture\.test\.mjs: needs helm: helm is not installed\n/);
  assert.match(stdout, /- fixture\.test\.mjs: needs k6: k6 is not installed\n/);
  assert.match(stdout, /✖ fails/);
});
