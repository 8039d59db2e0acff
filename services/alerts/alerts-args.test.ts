import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AlertsArgsError, parseAlertsArgs } from './alerts-args.ts';

const ID = 'ar_0123456789';

function refused(args: string[], flag: string) {
  assert.throws(
    () => parseAlertsArgs(args),
    (error: Error) => {
      assert.ok(error instanceof AlertsArgsError, String(error));
      assert.ok(error.message.startsWith(flag), `${error.message} should start with ${flag}`);
      return true;
    },
    args.join(' '),
  );
}

test('create: each kind, its subject and recipients', () => {
  assert.deepEqual(
    parseAlertsArgs([
      'create',
      '--name',
      'posts',
      '--type',
      'view',
      '--milestone',
      '100, 1000,10000',
      '--prefix=post/',
      '--notify-owner',
      '--dashboard',
    ]),
    {
      action: 'create',
      rule: {
        name: 'posts',
        eventType: 'view',
        kind: 'milestone',
        thresholds: [100, 1000, 10000],
        subject: { kind: 'target_prefix', value: 'post/' },
        targetOwner: true,
        dashboard: true,
      },
    },
  );
  assert.deepEqual(
    parseAlertsArgs([
      'create',
      '--name',
      'spend',
      '--type',
      'purchase',
      '--window',
      '60',
      '--threshold',
      '99.5',
      '--measure',
      'sum',
      '--rearm-minutes',
      '0',
      '--user',
      'u1',
      '--notify-users',
      'a,b',
      '--notify-groups',
      'sales',
      '--disabled',
    ]),
    {
      action: 'create',
      rule: {
        name: 'spend',
        eventType: 'purchase',
        enabled: false,
        kind: 'threshold',
        windowMinutes: 60,
        threshold: 99.5,
        measure: 'sum',
        rearmMinutes: 0,
        subject: { kind: 'user_id', value: 'u1' },
        userIds: ['a', 'b'],
        groups: ['sales'],
      },
    },
  );
  const spike = parseAlertsArgs(
    'create --name s --type like --spike --z 5 --z-clear 1 --half-life 30 --min-count 9 --min-ratio 3 --warmup 0 --target t --dashboard'.split(
      ' ',
    ),
  );
  assert.deepEqual(spike, {
    action: 'create',
    rule: {
      name: 's',
      eventType: 'like',
      kind: 'spike',
      zThreshold: 5,
      zClear: 1,
      halfLifeMinutes: 30,
      minCount: 9,
      warmupMinutes: 0,
      minRatio: 3,
      subject: { kind: 'target', value: 't' },
      dashboard: true,
    },
  });
});

test('list, get, update and delete take an id where they need one', () => {
  assert.deepEqual(parseAlertsArgs(['list']), { action: 'list' });
  assert.deepEqual(parseAlertsArgs(['get', ID]), { action: 'get', id: ID });
  assert.deepEqual(parseAlertsArgs(['delete', ID]), { action: 'delete', id: ID });
  assert.deepEqual(parseAlertsArgs(['update', ID, '--enable', '--no-dashboard', '--notify-users', '']), {
    action: 'update',
    id: ID,
    rule: { enabled: true, dashboard: false, userIds: [] },
  });
});

test('mistakes name their flag', () => {
  const create = ['create', '--name', 'n', '--type', 'view'];
  refused([], 'alerts:');
  refused(['frob'], 'alerts:');
  refused(['list', 'x'], 'alerts list');
  refused(['get'], 'alerts get');
  refused(['get', 'nope'], 'alerts get');
  refused(['update', ID], 'alerts update');
  refused(['create', '--type', 'v', '--spike', '--target', 't'], '--name');
  refused(['create', '--name', 'n', '--spike', '--target', 't'], '--type');
  refused([...create, '--target', 't'], '--milestone, --window or --spike');
  refused([...create, '--spike'], '--target, --prefix or --user');
  refused([...create, '--spike', '--window', '5', '--target', 't'], '--spike');
  refused([...create, '--spike', '--target', 't', '--prefix', 'p'], '--prefix');
  refused([...create, '--spike', '--threshold', '5', '--target', 't'], '--threshold');
  refused([...create, '--milestone', '10,x', '--target', 't'], '--milestone');
  refused([...create, '--milestone', '0', '--target', 't'], '--milestone');
  refused([...create, '--window', '1441', '--threshold', '1', '--target', 't'], '--window');
  refused(
    [...create, '--window', '5', '--threshold', '1', '--rearm-minutes', 'soon', '--target', 't'],
    '--rearm-minutes',
  );
  refused([...create, '--spike', '--warmup', '-1', '--target', 't'], '--warmup');
  refused([...create, '--milestone', '10', '--warmup', '5', '--target', 't'], '--warmup');
  refused([...create, '--window', '5', '--threshold', 'lots', '--target', 't'], '--threshold');
  refused([...create, '--window', '5', '--threshold', '1', '--measure', 'avg', '--target', 't'], '--measure');
  refused([...create, '--spike', '--target', ''], '--target');
  refused([...create, '--spike', '--target', 't', '--colour', 'red'], '--colour');
  refused([...create, '--spike', '--target', 't', '--name', 'again'], '--name');
  refused([...create, '--spike', '--target'], '--target');
  refused([...create, '--spike=yes', '--target', 't'], '--spike');
  refused([...create, '--spike', '--target', 't', '--enable'], '--enable');
  refused(['update', ID, '--enable', '--disable'], '--enable');
  refused(['update', ID, '--dashboard', '--no-dashboard'], '--dashboard');
});
