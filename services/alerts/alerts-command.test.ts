/**
 * `tally alerts …` with no PostgreSQL configured: the rules live in the embedded PGlite database
 * under TALLY_DATA_DIR, as the query role of `tally all` would read them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const TALLY = join(import.meta.dirname, '..', '..', 'bin', 'tally');

test('rules are kept in the embedded database when no PostgreSQL is configured', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-alerts-embedded-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
    TALLY_DATA_DIR: dataDir,
  };
  const tally = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(TALLY, ['alerts', ...args], { env, timeout: 120_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
      ),
    );

  const refused = await tally('create', '--name', 'spend', '--type', 'purchase', '--window', '60');
  assert.equal(refused.code, 2, 'no threshold, no subject');
  const made = await tally(
    ...['create', '--name', 'spend', '--type', 'purchase', '--window', '60', '--threshold', '500'],
    ...['--measure', 'sum', '--user', 'user-42', '--notify-groups', 'sales'],
  );
  assert.equal(made.code, 0, made.stderr);
  const id = /^id:\s+(\S+)$/m.exec(made.stdout)?.[1] ?? '';
  assert.match(id, /^ar_[0-9A-Za-z]{10}$/);
  assert.match(
    made.stdout,
    /^condition: sum over 60 min reaches 500 \(again once below it, 60 min after\)$/m,
  );

  const listed = await tally('list');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(
    listed.stdout,
    new RegExp(`^${id}\\s+spend\\s+threshold\\s+purchase\\s+user user-42\\s+yes\\s`, 'm'),
  );
  assert.equal((await tally('delete', id)).code, 0);
  assert.equal((await tally('list')).stdout, 'no alert rules\n');
});
