/**
 * `tally deliveries` over the delivery admin API on a migrated PGlite database holding a
 * destination's parked and dead deliveries: what it prints, paging, its exit statuses and the
 * errors naming the flag; and `bin/tally deliveries` wired in main.ts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { deliveriesCommand } from './destinations/deliveries-command.ts';
import type { ParkedDelivery } from './infra/delivery/delivery-store.ts';
import { createSqlDeliveryLog } from './infra/delivery/sql-delivery-log.ts';
import { createSqlDeliveryStore } from './infra/delivery/sql-delivery-store.ts';
import { createSqlDestinationStore } from './infra/delivery/sql-destination-store.ts';
import { messageIdOf } from './pipeline/delivery-record.ts';
import { deliveryAdmin } from './query/delivery-admin.ts';
import { migratedPgliteCopies } from './testing/migrated-sql.ts';

const databases = migratedPgliteCopies('deliveries-command');

async function setup(t: { after(fn: () => Promise<void>): void }) {
  const db = await databases();
  t.after(() => db.cleanup());
  const destinations = createSqlDestinationStore({ sql: db.sql });
  const d = await destinations.create({
    name: 'orders',
    endpoint: { kind: 'webhook', url: 'https://hooks.example.com/tally' },
  });
  const nowMs = Date.now();
  const parked = (user: string, seq: number, state: 'pending' | 'dead'): ParkedDelivery => {
    const eventId = `ev-${user}-${seq}`;
    return {
      messageId: messageIdOf(d.id, eventId),
      userKey: user,
      eventId,
      eventType: 'purchase',
      occurredAtMs: nowMs - 60_000,
      sourcePartition: 0,
      sourceOffset: BigInt(seq),
      body: new TextEncoder().encode('{}'),
      state,
      attempts: state === 'dead' ? 2 : 0,
      nextAttemptAtMs: nowMs + 600_000,
      log:
        state === 'dead'
          ? [
              {
                attempt: 1,
                atMs: nowMs - 30_000,
                outcome: 'retry',
                status: 503,
                latencyMs: 12,
                error: 'HTTP 503',
              },
              {
                attempt: 2,
                atMs: nowMs - 20_000,
                outcome: 'dead',
                status: 400,
                latencyMs: 8,
                error: 'HTTP 400',
              },
            ]
          : [],
    };
  };
  const rows = [parked('alice', 1, 'dead'), parked('bob', 2, 'dead'), parked('carol', 3, 'pending')];
  await createSqlDeliveryStore({ sql: db.sql }).settle(d.id, 0, rows, new Map([[0, 3n]]), nowMs);
  const api = deliveryAdmin({ log: createSqlDeliveryLog({ sql: db.sql }), destinations });
  const run = async (...args: string[]) => {
    let out = '';
    let err = '';
    const code = await deliveriesCommand(args, async () => ({ deliveries: api, close: async () => {} }), {
      out: { write: (s: string) => (out += s) },
      err: { write: (s: string) => (err += s) },
    });
    return { code, out, err };
  };
  return { run, id: d.id, ids: rows.map((r) => r.messageId) };
}

test('list, page by page and filtered; attempts; redeliver and recover set dead letters pending again', async (t) => {
  const { run, id, ids } = await setup(t);
  const all = await run('list', '--destination', id);
  assert.equal(all.code, 0, all.err);
  const lines = all.out.trimEnd().split('\n');
  assert.match(lines[0]!, /^ID\s+DESTINATION\s+STATE\s+USER\s+EVENT\s+ATTEMPTS\s+NEXT\s+LAST\s+CREATED$/);
  assert.equal(lines.length, 4, all.out);
  for (const m of ids) assert.ok(all.out.includes(m), `${m} listed`);
  assert.match(
    all.out,
    new RegExp(`^${ids[0]}\\s+${id}\\s+dead\\s+alice\\s+purchase ev-alice-1\\s+2\\s+—\\s+400 HTTP 400`, 'm'),
  );
  assert.match(
    all.out,
    new RegExp(`^${ids[2]}\\s+${id}\\s+pending\\s+carol\\s+purchase ev-carol-3\\s+0\\s+\\d{4}-`, 'm'),
  );

  const first = await run('list', '--state', 'dead', '--limit', '1');
  assert.equal(first.code, 0, first.err);
  const token = /^next page: --page (\S+)$/m.exec(first.out)?.[1];
  assert.ok(token, first.out);
  const second = await run('list', '--state', 'dead', '--limit', '1', '--page', token);
  assert.equal(second.code, 0, second.err);
  const shown = [first.out, second.out].map((o) => ids.findIndex((m) => o.includes(m)));
  assert.deepEqual(shown.sort(), [0, 1], 'the two pages hold the two dead letters');

  const attempts = await run('attempts', ids[0]!);
  assert.equal(attempts.code, 0, attempts.err);
  assert.match(attempts.out, /^ATTEMPT\s+AT\s+OUTCOME\s+STATUS\s+LATENCY\s+ERROR$/m);
  assert.match(attempts.out, /^1\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z\s+retry\s+503\s+12 ms\s+HTTP 503$/m);
  assert.match(attempts.out, /^2\s+\S+ \S+\s+dead\s+400\s+8 ms\s+HTTP 400$/m);
  assert.match((await run('attempts', ids[2]!)).out, /not attempted yet/);

  const again = await run('redeliver', ids[0]!);
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, new RegExp(`^delivery ${ids[0]} is pending again`));
  const pending = await run('redeliver', ids[2]!);
  assert.equal(pending.code, 1);
  assert.match(
    pending.err,
    /^tally: deliveries redeliver: delivery msg_\S+ is pending: it will be attempted$/m,
  );

  const recovered = await run('recover', id, '--since', '1h');
  assert.equal(recovered.code, 0, recovered.err);
  assert.match(recovered.out, new RegExp(`^1 dead letter of ${id} since \\S+ \\S+ pending again$`, 'm'));
  assert.equal((await run('list', '--state', 'dead')).out, 'no deliveries\n');
});

test('errors name the flag: bad input exits 2, unknown ids and refusals exit 1', async (t) => {
  const { run, id } = await setup(t);
  const state = await run('list', '--state', 'lost');
  assert.equal(state.code, 2);
  assert.equal(state.err, 'tally: --state: must be one of pending, delivered, dead\n');
  const until = await run('list', '--since', '2026-01-02T00:00:00Z', '--until', '2026-01-01T00:00:00Z');
  assert.equal(until.code, 2);
  assert.equal(until.err, 'tally: --until: must be after since\n');
  assert.equal((await run('list', '--limit', '501')).err, 'tally: --limit: must be 1 to 500\n');
  assert.match(
    (await run('list', '--page', 'bm9wZQ')).err,
    /^tally: --page: is not a token this server made$/m,
  );
  const unknown = await run('list', '--destination', 'ds_0000000000');
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /^tally: deliveries list: no destination with id "ds_0000000000"$/m);
  const noDelivery = await run('attempts', 'msg_nope');
  assert.equal(noDelivery.code, 1);
  assert.match(noDelivery.err, /no delivery with id "msg_nope"/);

  const cases: [string[], RegExp][] = [
    [['list', '--since', 'yesterday'], /^tally: --since: must be an ISO 8601 time with its zone/],
    [['list', '--destination', 'orders'], /^tally: --destination: "orders" is not a destination id/],
    [['list', '--bogus', 'x'], /^tally: --bogus: unknown flag for list/],
    [['attempts'], /^tally: attempts: needs a delivery id \(msg_…\)/],
    [['attempts', 'ev-1'], /^tally: attempts: "ev-1" is not a delivery id/],
    [['recover', id], /^tally: --since: is required/],
    [['recover', 'ds_bad'], /^tally: recover: "ds_bad" is not a destination id/],
    [['resend'], /^tally: deliveries: unknown action "resend"/],
  ];
  for (const [args, message] of cases) {
    const r = await run(...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, message, args.join(' '));
    assert.match(r.err, /^usage:/m, 'the usage follows a command-line mistake');
  }
  const future = await run('recover', id, '--since', '2999-01-01T00:00:00Z');
  assert.equal(future.code, 2);
  assert.equal(future.err, 'tally: --since: must not be in the future\n');
  assert.equal((await run('recover', 'ds_0000000000', '--since', '2d')).code, 1);
});

test('bin/tally deliveries: its usage, and an empty embedded database listed', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-deliveries-cli-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const tally = join(import.meta.dirname, '..', 'bin', 'tally');
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', TALLY_DATA_DIR: dataDir };
  const help = await promisify(execFile)(tally, ['deliveries', '--help'], { env });
  assert.match(help.stdout, /^ {2}tally deliveries recover <ds_…> --since <time>$/m);
  const bad = await promisify(execFile)(tally, ['deliveries', 'list', '--limit', 'many'], { env }).catch(
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal((bad as { code: number }).code, 2);
  assert.match((bad as { stderr: string }).stderr, /^tally: --limit: must be a whole number, got "many"$/m);
  const listed = await promisify(execFile)(tally, ['deliveries', 'list'], { env });
  assert.equal(listed.stdout, 'no deliveries\n');
});
