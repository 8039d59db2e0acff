/**
 * `tally keys …` as a user runs it: a child process on real PostgreSQL, in a schema of its own.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { authenticateApiKey, hashApiKey } from '../infra/keys/key-store.ts';
import { createSqlKeyStore } from '../infra/keys/sql-key-store.ts';
import { createPgDatabase } from '../infra/sql/pg-database.ts';
import { realServers, requireRealServers, testNamespace } from '../testing/real-servers.ts';

await requireRealServers();

const TALLY = join(import.meta.dirname, '..', '..', 'bin', 'tally');
const { pgSchema: schema } = testNamespace();
// Only the database: a TALLY_* variable of the test's own environment must not reach the command.
const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
  TALLY_PG_URL: realServers.pgUrl,
  TALLY_PG_SCHEMA: schema,
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tally(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(TALLY, ['keys', ...args], { env, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The `label: value` lines of a create or rotate. */
function fields(run: Run): Record<string, string> {
  return Object.fromEntries(
    run.stdout
      .split('\n')
      .map((line) => /^([a-z ]+):\s+(.*)$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
}

const sql = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema, poolSize: 2 });
const store = createSqlKeyStore({ sql });
after(async () => {
  await store.close();
  await sql.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await sql.close();
});

test('create, list, rotate and revoke, as a user runs them', async () => {
  const created = await tally('create', '--name', 'reporting', '--scopes', 'ingest,read', '--expires', '90d');
  assert.equal(created.code, 0, created.stderr);
  const made = fields(created);
  assert.match(made.key!, /^tly_sk_[0-9A-Za-z]{49}$/);
  assert.equal(made.id, made.key!.slice(7, 15));
  assert.equal(made.scopes, 'ingest,read');
  assert.match(created.stderr, /shown once and never again/);
  const principal = await authenticateApiKey(store, made.key!, new Date());
  assert.deepEqual(principal.scopes, new Set(['ingest', 'read']));
  const expires = (await store.get(made.id!))!.expiresAt!.getTime();
  assert.ok(Math.abs(expires - (Date.now() + 90 * 86_400_000)) < 60_000, 'expires in 90 days');

  const ingest = await tally(
    'create',
    '--name',
    'web app',
    '--kind',
    'ingest',
    '--origins',
    'https://a.example,https://b.example',
    '--types',
    'like,view',
    '--ingest-rate',
    '600',
    '--quota',
    '1000000',
  );
  assert.equal(ingest.code, 0, ingest.stderr);
  const web = fields(ingest);
  assert.match(web.key!, /^tly_ik_/);
  assert.deepEqual(principalOf(await authenticateApiKey(store, web.key!, new Date())), {
    allowedOrigins: ['https://a.example', 'https://b.example'],
    allowedTypes: ['like', 'view'],
    limits: { ingestEventsPerMinute: 600 },
    monthlyQuota: 1_000_000,
  });

  const listed = await tally('list');
  assert.equal(listed.code, 0, listed.stderr);
  const lines = listed.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^ID\s+NAME\s+KIND\s+SCOPES\s+CREATED\s+LAST USED\s+EXPIRES\s+REVOKED$/);
  assert.equal(lines.length, 3);
  assert.match(
    lines[1]!,
    new RegExp(`^${made.id}\\s+reporting\\s+secret\\s+ingest,read\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\dZ`),
  );
  assert.match(lines[2]!, new RegExp(`^${web.id}\\s+web app\\s+ingest\\s+ingest\\s+.*never\\s+—$`));
  for (const secret of [made.key!, web.key!, hashApiKey(made.key!)])
    assert.ok(!listed.stdout.includes(secret.slice(15)), 'a listing shows no key and no hash');

  const rotated = await tally('rotate', made.id!, '--grace', '1h');
  assert.equal(rotated.code, 0, rotated.stderr);
  const next = fields(rotated);
  assert.notEqual(next.key, made.key);
  assert.match(rotated.stdout, new RegExp(`replaces:\\s+${made.id}, which works until`));
  await authenticateApiKey(store, made.key!, new Date()); // within the grace period
  await authenticateApiKey(store, next.key!, new Date());
  await assert.rejects(authenticateApiKey(store, made.key!, new Date(Date.now() + 3_601_000)));
  assert.match((await tally('list')).stdout, new RegExp(`reporting \\(replaced by ${next.id}\\)`));

  const revoked = await tally('revoke', next.id!);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, new RegExp(`revoked API key ${next.id} \\(reporting\\)`));
  await assert.rejects(authenticateApiKey(store, next.key!, new Date()), /is revoked/);
  const after = (await tally('list')).stdout.split('\n').find((l) => l.startsWith(next.id!))!;
  assert.match(after, /\d\d:\d\dZ$/, 'the revoked column has a time');

  for (const run of [created, ingest, rotated, revoked, listed])
    assert.ok(!/"level"|"msg"/.test(run.stdout + run.stderr), 'nothing is logged');
});

test('mistakes name the flag (exit 2); a refused action says why (exit 1)', async () => {
  const bad = await tally('create', '--name', 'x', '--scopes', 'ingest,write');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--scopes: unknown scope "write"/);
  assert.equal(bad.stdout, '');
  const origin = await tally(
    'create',
    '--name',
    'x',
    '--kind',
    'ingest',
    '--origins',
    'https://a.example/path',
  );
  assert.equal(origin.code, 2);
  assert.match(origin.stderr, /--origins: must be an origin/);
  const unknown = await tally('revoke', 'zzzzzzzz');
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no API key with id "zzzzzzzz"/);
  const twice = fields(await tally('create', '--name', 'y', '--scopes', 'read'));
  assert.equal((await tally('rotate', twice.id!)).code, 0);
  const again = await tally('rotate', twice.id!);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already rotated/);
});

function principalOf(p: Awaited<ReturnType<typeof authenticateApiKey>>) {
  const { allowedOrigins, allowedTypes, limits, monthlyQuota } = p;
  return { allowedOrigins, allowedTypes, limits, monthlyQuota };
}
