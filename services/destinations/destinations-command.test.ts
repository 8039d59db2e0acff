/**
 * `tally destinations` on a migrated PGlite database and an embedded event log: what it prints,
 * its exit statuses, and each destination's topic made and deleted with it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createDestinationAdmin } from '../infra/delivery/destination-admin.ts';
import { createLogDestinationTopics } from '../infra/delivery/destination-topics.ts';
import { createSqlDestinationStore } from '../infra/delivery/sql-destination-store.ts';
import { createEmbeddedEventLog } from '../infra/log/embedded-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { migratedPgliteCopies } from '../testing/migrated-sql.ts';
import { destinationsCommand } from './destinations-command.ts';

const databases = migratedPgliteCopies('destinations-command');

async function setup(t: { after(fn: () => Promise<void>): void }) {
  const db = await databases();
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-destinations-log-'));
  const log = createEmbeddedEventLog({ dataDir, logger: createLogger('warn') });
  t.after(async () => {
    await log.close();
    await rm(dataDir, { recursive: true, force: true });
    await db.cleanup();
  });
  const topics = createLogDestinationTopics({ log, partitions: 2 });
  const destinations = createDestinationAdmin({ store: createSqlDestinationStore({ sql: db.sql }), topics });
  const topicExists = async (id: string) =>
    log.endOffsets(topics.topicOf(id)).then(
      (ends) => ends.size === 2,
      () => false,
    );
  const run = async (...args: string[]) => {
    let out = '';
    let err = '';
    const code = await destinationsCommand(args, async () => ({ destinations, close: async () => {} }), {
      out: { write: (s: string) => (out += s) },
      err: { write: (s: string) => (err += s) },
    });
    return { code, out, err };
  };
  return { run, topicExists, destinations };
}

test('create prints the destination and its secret once; get, list and update show hints only', async (t) => {
  const { run, topicExists } = await setup(t);
  const made = await run(
    'create',
    '--name',
    'orders',
    '--url',
    'https://hooks.example.com/tally',
    '--header',
    'Authorization=Bearer s3cret',
    '--types',
    'purchase,refund',
    '--field',
    'data.user=from:user_id',
    '--field',
    'text=template:{{user_id}} on {{target}}',
    '--retry',
    '0,5,60',
  );
  assert.equal(made.code, 0, made.err);
  const id = /^id:\s+(ds_\w{10})$/m.exec(made.out)![1]!;
  const secret = /^secret:\s+(whsec_\S+)/m.exec(made.out)![1]!;
  assert.match(made.out, /^headers:\s+authorization: \*\*\*$/m, 'a credential header is never printed');
  assert.ok(!made.out.includes('s3cret'));
  assert.match(made.out, /^filter:\s+types purchase, refund$/m);
  assert.match(made.out, /^retry:\s+3 attempts after 0, 5, 60 s$/m);
  assert.ok(await topicExists(id), 'its topic was made');

  const got = await run('get', id);
  assert.equal(got.code, 0);
  assert.ok(!got.out.includes(secret), 'get never prints the secret');
  assert.match(got.out, /^signing:\s+whsec_\S{4}…/m);
  assert.match((await run('list')).out, new RegExp(`^${id}\\s+orders\\s+webhook`, 'm'));

  const off = await run('update', id, '--disable', '--reason', 'receiver down', '--types', '');
  assert.equal(off.code, 0, off.err);
  assert.match(off.out, /^enabled:\s+no \(receiver down\)$/m);
  assert.match(off.out, /^filter:\s+every event$/m);
  assert.match(off.out, /^endpoint:\s+https:\/\/hooks\.example\.com\/tally$/m, 'what the flags omit is kept');

  const rotated = await run('rotate-secret', id, '--grace-seconds', '60');
  assert.equal(rotated.code, 0, rotated.err);
  const next = /^secret:\s+(whsec_\S+)/m.exec(rotated.out)![1]!;
  assert.notEqual(next, secret);
  assert.equal(rotated.out.match(/^signing:/gm)?.length, 2, 'the old secret signs during its grace');

  assert.equal((await run('delete', id)).code, 0);
  assert.equal(await topicExists(id), false, 'its topic went with it');
  assert.equal((await run('get', id)).code, 1);
});

test('errors name the flag: invalid fields exit 2, unknown ids and refused rotations exit 1', async (t) => {
  const { run } = await setup(t);
  const bad = await run('create', '--name', 'x', '--url', 'http://plain.example.com', '--concurrency', '0');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^tally: --url \(webhook\.url\): must be https:\/\//m);
  assert.match(bad.err, /^tally: --concurrency \(concurrency\): /m);
  const field = await run('create', '--name', 'x', '--kafka-topic', 't', '--field', 'a=from:nope');
  assert.equal(field.code, 2);
  assert.match(field.err, /^tally: --field \(transform\.fields\[0\]\.from\): /m);
  assert.equal((await run('create', '--name', 'x')).code, 2);
  assert.equal((await run('create', '--name', 'x', '--url', 'https://a.example.com', '--bogus')).code, 2);
  assert.equal((await run('get', 'nope')).code, 2);
  assert.equal((await run('delete', 'ds_0000000000')).code, 1);

  const k = await run(
    'create',
    '--name',
    'copy',
    '--kafka-topic',
    'audit.events',
    '--kafka-brokers',
    'other:9092',
  );
  assert.equal(k.code, 0, k.err);
  assert.ok(!k.out.includes('secret:'), 'a Kafka destination has no secret');
  const id = /^id:\s+(ds_\w{10})$/m.exec(k.out)![1]!;
  const kind = await run('update', id, '--url', 'https://a.example.com');
  assert.equal(kind.code, 2);
  assert.match(kind.err, /kind stays/);
  const rotate = await run('rotate-secret', id);
  assert.equal(rotate.code, 1);
  assert.match(rotate.err, /only a webhook signs/);
});
