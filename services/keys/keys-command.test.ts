/**
 * `tally keys …` with no PostgreSQL configured: the keys live in the embedded PGlite database
 * under TALLY_DATA_DIR, as the roles of `tally all` would read them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseApiKey } from '../domain/api-keys.ts';

const TALLY = join(import.meta.dirname, '..', '..', 'bin', 'tally');

test('keys are kept in the embedded database when no PostgreSQL is configured', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-keys-embedded-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
    TALLY_DATA_DIR: dataDir,
  };
  const tally = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(TALLY, ['keys', ...args], { env, timeout: 120_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
      ),
    );

  const created = await tally('create', '--name', 'local', '--scopes', 'read,admin');
  assert.equal(created.code, 0, created.stderr);
  const key = /^key:\s+(\S+)$/m.exec(created.stdout)?.[1] ?? '';
  const parsed = parseApiKey(key);
  assert.ok(parsed.ok && parsed.kind === 'secret', created.stdout);

  const listed = await tally('list');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, new RegExp(`^${parsed.id}\\s+local\\s+secret\\s+read,admin\\s`, 'm'));
  assert.ok(!listed.stdout.includes(key.slice(15)));

  const help = await tally('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /tally keys create --name/);
  const bad = await tally('list', '--all');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--all: not a flag of keys list/);
});

test('keys generate prints a fresh valid key and opens no database', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-keys-generate-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  // A PostgreSQL URL nothing answers at: generate must not try it.
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
    TALLY_DATA_DIR: dataDir,
    TALLY_PG_URL: 'postgres://nobody:nothing@127.0.0.1:1/none',
  };
  const generate = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(TALLY, ['keys', 'generate', ...args], { env, timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
      ),
    );

  const [first, second, ingest] = await Promise.all([generate(), generate(), generate('--kind', 'ingest')]);
  for (const run of [first, second, ingest]) {
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.match(run.stdout, /^tly_(sk|ik)_[0-9A-Za-z]{49}\n$/, 'the key alone, on one line');
  }
  const key = first.stdout.trim();
  const parsed = parseApiKey(key);
  assert.ok(parsed.ok && parsed.kind === 'secret', 'a secret key whose checksum holds');
  assert.notEqual(second.stdout, first.stdout, 'a new key each time');
  const ingestKey = parseApiKey(ingest.stdout.trim());
  assert.ok(ingestKey.ok && ingestKey.kind === 'ingest');
  assert.deepEqual(readdirSync(dataDir), [], 'nothing written to the embedded database');

  const bad = await generate('--kind', 'admin');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--kind: "admin" is not a kind/);
});
