import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_GRACE_MS, KeysArgsError, parseDuration, parseKeysArgs } from './keys-args.ts';

const fails = (args: string[], message: RegExp) =>
  assert.throws(
    () => parseKeysArgs(args),
    (error: unknown) => error instanceof KeysArgsError && message.test(error.message),
    args.join(' '),
  );

describe('keys command line', () => {
  test('create with every flag', () => {
    assert.deepEqual(
      parseKeysArgs([
        'create',
        '--name',
        ' web app ',
        '--kind=ingest',
        '--expires',
        '90d',
        '--origins',
        'https://a.example, https://b.example',
        '--types',
        'like,view',
        '--ingest-rate',
        '600',
        '--read-rate=30',
        '--quota',
        '1000000',
      ]),
      {
        action: 'create',
        name: 'web app',
        kind: 'ingest',
        scopes: new Set(['ingest']),
        expiresInMs: 90 * 86_400_000,
        origins: ['https://a.example', 'https://b.example'],
        types: ['like', 'view'],
        ingestRate: 600,
        readRate: 30,
        quota: 1_000_000,
      },
    );
    const secret = parseKeysArgs(['create', '--name', 'ci', '--scopes', 'ingest,read']);
    assert.equal(secret.action === 'create' && secret.kind, 'secret');
    assert.deepEqual(secret.action === 'create' && secret.scopes, new Set(['ingest', 'read']));
    assert.equal(secret.action === 'create' && secret.expiresInMs, undefined);
  });

  test('list, revoke and rotate', () => {
    assert.deepEqual(parseKeysArgs(['list']), { action: 'list' });
    assert.deepEqual(parseKeysArgs(['revoke', 'abcdEF12']), { action: 'revoke', id: 'abcdEF12' });
    assert.deepEqual(parseKeysArgs(['rotate', 'abcdEF12']), {
      action: 'rotate',
      id: 'abcdEF12',
      graceMs: DEFAULT_GRACE_MS,
    });
    assert.deepEqual(parseKeysArgs(['rotate', 'abcdEF12', '--grace', '0s']), {
      action: 'rotate',
      id: 'abcdEF12',
      graceMs: 0,
    });
    assert.deepEqual(parseKeysArgs(['rotate', '--grace=30m', 'abcdEF12']), {
      action: 'rotate',
      id: 'abcdEF12',
      graceMs: 1_800_000,
    });
  });

  test('generate: a secret key by default, or the kind given', () => {
    assert.deepEqual(parseKeysArgs(['generate']), { action: 'generate', kind: 'secret' });
    assert.deepEqual(parseKeysArgs(['generate', '--kind', 'ingest']), { action: 'generate', kind: 'ingest' });
    fails(['generate', '--kind', 'public'], /^--kind: "public" is not a kind/);
    fails(['generate', '--name', 'x'], /^--name: not a flag of keys generate/);
    fails(['generate', 'admin'], /takes no arguments/);
  });

  test('each mistake names its flag', () => {
    fails([], /give an action/);
    fails(['delete'], /unknown action "delete"/);
    fails(['create', '--scopes', 'read'], /^--name: required/);
    fails(['create', '--name', 'x'], /^--scopes: required for a secret key/);
    fails(['create', '--name', 'x', '--scopes', 'read,write'], /^--scopes: unknown scope "write"/);
    fails(
      ['create', '--name', 'x', '--kind', 'ingest', '--scopes', 'ingest,read'],
      /^--scopes: an ingest key/,
    );
    fails(['create', '--name', 'x', '--kind', 'public'], /^--kind: "public" is not a kind/);
    fails(['create', '--name', 'x', '--scopes', 'read', '--expires', '3 months'], /^--expires: "3 months"/);
    fails(['create', '--name', 'x', '--scopes', 'read', '--expires', '0d'], /^--expires/);
    fails(
      ['create', '--name', 'x', '--scopes', 'read', '--origins', 'https://a'],
      /^--origins: only ingest keys/,
    );
    fails(['create', '--name', 'x', '--scopes', 'read', '--types', 'like'], /^--types: only ingest keys/);
    fails(
      ['create', '--name', 'x', '--scopes', 'read', '--quota', '0'],
      /^--quota: "0" is not a whole number/,
    );
    fails(['create', '--name', 'x', '--scopes', 'read', '--read-rate', '1.5'], /^--read-rate/);
    fails(['create', '--name', 'x', '--scopes', 'read', '--ingest-rate'], /^--ingest-rate: needs a value/);
    fails(['create', '--name', 'x', '--name', 'y', '--scopes', 'read'], /^--name: given twice/);
    fails(
      ['create', '--name', 'x', '--scopes', 'read', '--grace', '1h'],
      /^--grace: not a flag of keys create/,
    );
    fails(['create', '--name', '--scopes', 'read'], /^--name: needs a value/);
    fails(['list', 'extra'], /takes no arguments/);
    fails(['revoke'], /give the id of one key/);
    fails(['revoke', 'tly_sk_0000000000'], /is not a key id/);
    fails(['rotate', 'abcdEF12', '--grace', 'a day'], /^--grace: "a day" is not a duration/);
  });

  test('durations', () => {
    assert.equal(parseDuration('45s'), 45_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('24h'), 86_400_000);
    assert.equal(parseDuration('90d'), 90 * 86_400_000);
    for (const bad of ['', '5', 'd', '1.5h', '-1d', '1w', '1 d'])
      assert.equal(parseDuration(bad), undefined, bad);
  });
});
