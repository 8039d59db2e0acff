import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { generateSecret, signWebhook } from '../infra/delivery/webhook-signature.ts';
import {
  orderKey,
  type Receiver,
  type ReceiverOptions,
  type ReceiverStats,
  startReceiver,
} from './receiver.ts';
import { parseReceiverArgs } from './receiver-args.ts';
import { LINES_PER_SECOND, receiverCommand } from './receiver-command.ts';

const secret = generateSecret();

async function receiver(t: { after(fn: () => unknown): void }, options: Partial<ReceiverOptions> = {}) {
  const r = await startReceiver({
    port: 0,
    host: '127.0.0.1',
    secrets: [secret],
    failRate: 0,
    failStatus: 503,
    latencyMs: 0,
    seed: 1,
    toleranceSeconds: 300,
    ...options,
  });
  t.after(() => r.close());
  return r;
}

/** POSTs `body` signed by this module's signer (or the library's), answering the status. */
async function post(
  r: Receiver,
  id: string,
  body: unknown,
  how: 'ours' | 'library' | 'unsigned' = 'ours',
  key = secret,
) {
  const text = JSON.stringify(body);
  const now = new Date();
  const headers: Record<string, string> =
    how === 'ours'
      ? { ...signWebhook({ secrets: [key], id, timestamp: now, body: text }) }
      : how === 'library'
        ? {
            'webhook-id': id,
            'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
            'webhook-signature': new Webhook(key).sign(id, now, text),
          }
        : {};
  const response = await fetch(r.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: text,
  });
  await response.arrayBuffer();
  return response.status;
}

describe('receiver', () => {
  test('verifies signatures from our signer and the library; 401 for a wrong secret or none', async (t) => {
    const r = await receiver(t);
    assert.equal(await post(r, 'msg_1', { user_id: 'u', sequence: 1 }), 200);
    assert.equal(await post(r, 'msg_2', { user_id: 'u', sequence: 2 }, 'library'), 200);
    assert.equal(await post(r, 'msg_3', { user_id: 'u', sequence: 3 }, 'ours', generateSecret()), 401);
    assert.equal(await post(r, 'msg_4', { user_id: 'u', sequence: 4 }, 'unsigned'), 401);
    const stats = r.stats();
    assert.deepEqual(
      { requests: stats.requests, received: stats.received, rejected: stats.rejected, unique: stats.unique },
      { requests: 4, received: 2, rejected: 2, unique: 2 },
    );
  });

  test('counts duplicates by webhook-id and order violations per user, reported in GET /stats', async (t) => {
    const r = await receiver(t);
    const sends: [string, object][] = [
      ['m1', { user_id: 'a', sequence: 1 }],
      ['m2', { user_id: 'a', sequence: 2 }],
      ['m2', { user_id: 'a', sequence: 2 }], // a retry of an accepted message
      ['m3', { userId: 'b', occurred_at: '2026-03-01T12:00:02Z' }],
      ['m4', { userId: 'b', occurred_at: '2026-03-01T12:00:01Z' }], // earlier than b's last
      ['m5', { user_id: 'a', seq: 1 }], // below a's 2
      ['m6', { user_id: 'a', sequence: 3 }],
      ['m7', { user_id: 'b', occurred_at: '2026-03-01T12:00:02Z' }], // the same time is in order
      ['m8', { type: 'no user' }],
    ];
    for (const [id, body] of sends) assert.equal(await post(r, id, body), 200);
    const response = await fetch(`${r.url}/stats`);
    const stats = await response.json();
    assert.deepEqual(stats, {
      requests: 9,
      received: 9,
      unique: 8,
      duplicates: 1,
      orderViolations: 2,
      rejected: 0,
      invalid: 0,
      failed: 0,
      users: {
        a: { last: 3, webhookId: 'm6', received: 4 },
        b: { last: Date.parse('2026-03-01T12:00:02Z'), webhookId: 'm7', received: 3 },
      },
      recentViolations: [
        {
          user: 'b',
          webhookId: 'm4',
          previous: Date.parse('2026-03-01T12:00:02Z'),
          got: Date.parse('2026-03-01T12:00:01Z'),
        },
        { user: 'a', webhookId: 'm5', previous: 2, got: 1 },
      ],
    });
  });

  test('injects failures at the given rate, reproducibly by seed; failed deliveries are not counted received', async (t) => {
    const statuses = async (seed: number) => {
      const r = await receiver(t, { failRate: 0.3, failStatus: 502, seed });
      const out: number[] = [];
      for (let i = 0; i < 200; i++) out.push(await post(r, `m${i}`, { user_id: 'u', sequence: i }));
      return { out, stats: r.stats() };
    };
    const first = await statuses(42);
    const again = await statuses(42);
    assert.deepEqual(again.out, first.out, 'same seed, same failures');
    const failures = first.out.filter((s) => s === 502).length;
    assert.ok(failures > 30 && failures < 90, `${failures} of 200 failed at 30 %`);
    assert.equal(first.stats.failed, failures);
    assert.equal(first.stats.received, 200 - failures);
    assert.equal(first.stats.orderViolations, 0);
    assert.notDeepEqual((await statuses(7)).out, first.out);
  });

  test('the latency is waited before answering; a body that is not JSON is 400', async (t) => {
    const r = await receiver(t, { latencyMs: 150 });
    const started = performance.now();
    assert.equal(await post(r, 'm1', { user_id: 'u' }), 200);
    assert.ok(performance.now() - started >= 140);
    const text = 'not json';
    const headers = signWebhook({ secrets: [secret], id: 'm2', timestamp: new Date(), body: text });
    const response = await fetch(r.url, { method: 'POST', headers: { ...headers }, body: text });
    assert.equal(response.status, 400);
    assert.equal(r.stats().invalid, 1);
  });

  test('orderKey: sequence first, else the event time; users from user_id or userId', () => {
    assert.deepEqual(orderKey({ user_id: 'u', sequence: 5, occurred_at: '2026-01-01T00:00:00Z' }), {
      user: 'u',
      place: 5,
    });
    assert.deepEqual(orderKey({ userId: 'u', seq: '7' }), { user: 'u', place: 7 });
    assert.deepEqual(orderKey({ user_id: 'u', timestamp: 1_700_000_000_000 }), {
      user: 'u',
      place: 1_700_000_000_000,
    });
    assert.deepEqual(orderKey({ user_id: '', time: 'never' }), {});
    assert.deepEqual(orderKey([1, 2]), {});
  });

  test('flags: defaults, values and errors naming the flag', () => {
    assert.deepEqual(parseReceiverArgs([]), {
      port: 8787,
      host: '127.0.0.1',
      secrets: [],
      failRate: 0,
      failStatus: 503,
      latencyMs: 0,
      seed: 1,
      toleranceSeconds: 300,
      quiet: false,
    });
    const parsed = parseReceiverArgs([
      '--port',
      '0',
      '--secret',
      secret,
      '--fail-rate',
      '0.3',
      '--latency',
      '1.5s',
      '--status',
      '429',
      '--seed',
      '9',
    ]);
    assert.deepEqual(
      [parsed.port, parsed.secrets, parsed.failRate, parsed.latencyMs, parsed.failStatus, parsed.seed],
      [0, [secret], 0.3, 1500, 429, 9],
    );
    assert.throws(
      () => parseReceiverArgs(['--fail-rate', '2']),
      /^Error: --fail-rate: "2" is not from 0 to 1/,
    );
    assert.throws(() => parseReceiverArgs(['--latency', 'soon']), /--latency: "soon" is not a duration/);
    assert.throws(
      () => parseReceiverArgs(['--secret', 'hunter2']),
      /^Error: --secret: a webhook secret starts with whsec_/,
    );
    assert.throws(() => parseReceiverArgs(['--port']), /--port: needs a value/);
    assert.throws(() => parseReceiverArgs(['--colour', 'red']), /--colour: unknown flag/);
  });
});

describe('tally receiver (a child process)', () => {
  test('prints a line per delivery, answers /stats, and a summary on SIGTERM', async (t) => {
    const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'tally');
    const child = spawn(bin, ['receiver', '--port', '0', '--secret', secret, '--seed', '3'], {
      env: { ...process.env, TALLY_DATA_DIR: '/nonexistent-unused' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      out += c;
    });
    let stderr = '';
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const until = Date.now() + 20_000;
    while (!/listening on (http:\/\/\S+) /.test(out) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    const url = /listening on (http:\/\/\S+) /.exec(out)?.[1];
    assert.ok(url, `no listening line: ${out} ${stderr}`);
    const r = { url } as Receiver;
    assert.equal(await post(r, 'msg_a', { user_id: 'u1', sequence: 2 }), 200);
    assert.equal(await post(r, 'msg_b', { user_id: 'u1', sequence: 1 }, 'library'), 200);
    assert.equal(await post(r, 'msg_a', { user_id: 'u1', sequence: 2 }), 200);
    assert.equal(await post(r, 'msg_c', { user_id: 'u1', sequence: 3 }, 'ours', generateSecret()), 401);
    const stats = (await (await fetch(`${url}/stats`)).json()) as ReceiverStats;
    assert.deepEqual(
      [stats.received, stats.unique, stats.duplicates, stats.orderViolations, stats.rejected],
      [3, 2, 1, 1, 1],
    );
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, stderr);
    assert.match(out, / 200 msg_a user=u1 place=2\n/);
    assert.match(out, / 200 msg_b user=u1 place=1 OUT-OF-ORDER after 2\n/);
    assert.match(out, / 200 msg_a user=u1 place=2 DUPLICATE\n/);
    assert.match(out, / 401 msg_c \(no signature matches\)\n/);
    const summary = JSON.parse(/^summary (.*)$/m.exec(out)![1]!);
    assert.deepEqual(summary, {
      requests: 4,
      received: 3,
      unique: 2,
      duplicates: 1,
      orderViolations: 1,
      rejected: 1,
      invalid: 0,
      failed: 0,
      users: 1,
    });
  });
});

describe('receiverCommand at a high rate', () => {
  test('past 20 deliveries in a second, that second is summed up in one line', async () => {
    let out = '';
    const aborter = new AbortController();
    const io = {
      out: { write: (s: string) => (out += s) },
      err: { write: (s: string) => (out += s) },
      signal: aborter.signal,
    };
    const running = receiverCommand(
      ['--port', '0', '--secret', secret, '--fail-rate', '0.5', '--seed', '5'],
      io,
    );
    while (!/listening on (http:\/\/\S+) /.test(out)) await new Promise((r) => setTimeout(r, 10));
    const r = { url: /listening on (http:\/\/\S+) /.exec(out)![1]! } as Receiver;
    const statuses = await Promise.all(
      Array.from({ length: 100 }, (_, i) => post(r, `m${i}`, { user_id: `u${i % 5}` })),
    );
    // The ticker sums up the second once it ends.
    while (!/ [0-9]+\/s: /.test(out)) await new Promise((r) => setTimeout(r, 50));
    aborter.abort();
    assert.equal(await running, 0);
    const lines = out.split('\n').filter((l) => / (200|503) m[0-9]+/.test(l));
    assert.ok(lines.length >= LINES_PER_SECOND && lines.length < 100, `${lines.length} delivery lines`);
    const perSecond = [...out.matchAll(/ ([0-9]+)\/s: ([0-9]+) ok, ([0-9]+) failed/g)];
    const summed = perSecond.reduce((n, m) => n + Number(m[1]), 0);
    // Every second with more than 20 is summed up; the 100 may straddle a second of 20 or fewer.
    assert.ok(summed >= 100 - LINES_PER_SECOND && summed <= 100, out);
    const summary = JSON.parse(/^summary (.*)$/m.exec(out)![1]!);
    assert.equal(summary.received, statuses.filter((s) => s === 200).length);
    assert.equal(summary.failed, statuses.filter((s) => s === 503).length);
  });
});
