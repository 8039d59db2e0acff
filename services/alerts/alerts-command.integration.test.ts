/**
 * `tally alerts …` as a user runs it: a child process on real PostgreSQL, in a schema of its own;
 * the rules it writes are the ones the store (and so AlertService) reads.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createSqlRuleStore } from '../infra/alerts/sql-rule-store.ts';
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
    execFile(TALLY, ['alerts', ...args], { env, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The `label: value` lines of a rule. */
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
const store = createSqlRuleStore({ sql });
after(async () => {
  await sql.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await sql.close();
});

test('create, list, get, update and delete, as a user runs them', async () => {
  const created = await tally(
    'create',
    '--name',
    'post milestones',
    '--type',
    'view',
    '--milestone',
    '100,1000,10000',
    '--prefix',
    'post/',
    '--notify-owner',
    '--dashboard',
  );
  assert.equal(created.code, 0, created.stderr);
  const made = fields(created);
  assert.match(made.id!, /^ar_[0-9A-Za-z]{10}$/);
  assert.equal(made.kind, 'milestone');
  assert.equal(made.subject, 'prefix post/');
  assert.equal(made.notify, 'target owner, dashboard');
  const stored = (await store.get(made.id!))!;
  assert.deepEqual(stored.condition, {
    kind: 'milestone',
    subject: { kind: 'target_prefix', value: 'post/' },
    thresholds: [100, 1000, 10000],
  });

  const spike = await tally(
    'create',
    '--name',
    'checkout spike',
    '--type',
    'purchase',
    '--spike',
    '--target',
    'shop/checkout',
    '--notify-groups',
    'oncall',
  );
  assert.equal(spike.code, 0, spike.stderr);
  assert.equal(
    fields(spike).condition,
    'z ≥ 4 (clears below 2), half-life 60 min, at least 5/min and 2× the baseline, after 60 min of warm-up',
    'the defaults are shown',
  );
  const spikeId = fields(spike).id!;

  const listed = await tally('list');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /^ID\s+NAME\s+KIND\s+TYPE\s+SUBJECT\s+ENABLED\s+UPDATED$/m);
  assert.match(
    listed.stdout,
    new RegExp(`^${made.id}\\s+post milestones\\s+milestone\\s+view\\s+prefix post/\\s+yes\\s`, 'm'),
  );
  assert.match(
    listed.stdout,
    new RegExp(`^${spikeId}\\s+checkout spike\\s+spike\\s+purchase\\s+target shop/checkout\\s+yes\\s`, 'm'),
  );

  const got = await tally('get', made.id!);
  assert.equal(got.code, 0, got.stderr);
  assert.deepEqual(fields(got), made);

  // Only what the flags give changes; the thresholds and recipients stay.
  const renamed = await tally('update', made.id!, '--name', 'posts', '--disable', '--no-dashboard');
  assert.equal(renamed.code, 0, renamed.stderr);
  const after = (await store.get(made.id!))!;
  assert.equal(after.name, 'posts');
  assert.equal(after.enabled, false);
  assert.deepEqual(after.recipients, { userIds: [], groups: [], targetOwner: true, dashboard: false });
  assert.deepEqual(after.condition, stored.condition);
  assert.ok(after.revision > stored.revision);

  // A kind flag replaces the condition; the subject stays.
  const window = await tally('update', made.id!, '--window', '30', '--threshold', '50');
  assert.equal(window.code, 0, window.stderr);
  assert.deepEqual((await store.get(made.id!))!.condition, {
    kind: 'threshold',
    subject: { kind: 'target_prefix', value: 'post/' },
    measure: 'count',
    windowMinutes: 30,
    threshold: 50,
    rearmMinutes: 30,
  });

  const deleted = await tally('delete', made.id!);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.match(deleted.stdout, new RegExp(`deleted alert rule ${made.id} \\(posts\\)`));
  assert.equal(await store.get(made.id!), undefined);
  const gone = await tally('get', made.id!);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no alert rule with id/);
  assert.equal((await tally('delete', made.id!)).code, 1);
  assert.equal((await tally('update', made.id!, '--enable')).code, 1);
  const changes = await store.changesSince(0);
  assert.deepEqual(changes.deleted, [made.id]);
});

test('mistakes name their flag and exit 2; nothing is stored', async () => {
  const before = (await store.list()).length;
  for (const [args, message] of [
    [
      ['create', '--name', 'x', '--type', 'view', '--milestone', '100,10', '--target', 't', '--dashboard'],
      /^tally: --milestone \(milestone\.thresholds\[1\]\): must be above/m,
    ],
    [
      [
        'create',
        '--name',
        'x',
        '--type',
        'view',
        '--window',
        '5',
        '--threshold',
        '2.5',
        '--target',
        't',
        '--dashboard',
      ],
      /^tally: --threshold \(threshold\.threshold\): must be a whole number/m,
    ],
    [
      ['create', '--name', 'x', '--type', 'view', '--spike', '--target', 't'],
      /^tally: --notify-users, --notify-groups, --notify-owner or --dashboard \(recipients\)/m,
    ],
    [
      ['create', '--name', 'x', '--type', 'view', '--spike', '--user', 'u', '--dashboard'],
      /^tally: --user \(spike\.subject\.user_id\)/m,
    ],
    [
      ['create', '--name', 'x', '--type', '9lives', '--spike', '--target', 't', '--dashboard'],
      /^tally: --type \(event_type\)/m,
    ],
    [
      [
        'create',
        '--name',
        'x',
        '--type',
        'view',
        '--spike',
        '--z',
        '2',
        '--z-clear',
        '3',
        '--target',
        't',
        '--dashboard',
      ],
      /^tally: --z-clear \(spike\.z_clear\)/m,
    ],
    [
      ['create', '--name', 'x', '--type', 'view', '--spike', '--target', 't', '--dashboard', '--bogus', '1'],
      /^tally: --bogus: not a flag of alerts create/m,
    ],
    [['get', 'nope'], /is not a rule id/],
  ] as const) {
    const run = await tally(...args);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
  }
  assert.equal((await store.list()).length, before);

  const spike = fields(
    await tally('create', '--name', 's', '--type', 'like', '--spike', '--prefix', 'p/', '--dashboard'),
  );
  const wrongKind = await tally('update', spike.id!, '--threshold', '5');
  assert.equal(wrongKind.code, 2);
  assert.match(
    wrongKind.stderr,
    /^tally: --threshold: belongs to a threshold rule, and ar_\w+ is a spike rule \(give --window to change its kind\)$/m,
  );
});

test('--help prints the usage and exits 0', async () => {
  const help = await tally('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage:\n {2}tally alerts create/);
  const none = await tally();
  assert.equal(none.code, 2);
  assert.match(none.stderr, /alerts: give an action/);
});
