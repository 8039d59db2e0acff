/**
 * Sliding-window aggregates end to end, through `tally all` on the real Kafka, Redis and
 * PostgreSQL: events over a week (late ones, one sent twice, values negative, zero and absent) go
 * in over REST, and GET /v1/users/{id}/aggregates and GET /v1/targets/{target}/aggregates answer
 * for each window exactly what SQL computes over the stored rows; bad parameters are 400s naming
 * the field.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, http } from './testing/tally-client.ts';
import { startTally } from './testing/tally-process.ts';

await requireRealServers();

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** What SQL says over the stored rows of the window [at - ms, at): the answer's fields. */
const WINDOW_SQL = `SELECT count(*)::int AS count, count(value)::int AS "valueCount",
       coalesce(sum(value), 0) AS sum, min(value) AS min, max(value) AS max, avg(value) AS avg
  FROM event
 WHERE type = $1 AND (CASE WHEN $2 = 'user' THEN user_id ELSE target END) = $3
   AND occurred_at >= 'epoch'::timestamptz + $4::bigint * interval '1 millisecond'
   AND occurred_at < 'epoch'::timestamptz + $5::bigint * interval '1 millisecond'`;

interface Answer {
  at: string;
  windows: {
    window: string;
    start: string;
    end: string;
    count: string;
    valueCount: string;
    sum: number;
    min?: number;
    max?: number;
    avg?: number;
  }[];
}

test('tally all: the aggregates of a user and of a target over REST equal SQL over the stored rows', async (t) => {
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], ns.env);
  t.after(async () => {
    await tally.kill('SIGKILL');
    await backends.cleanup();
  });
  const port = tally.httpPort!;
  const user = `card-${ns.id}`;
  // A target with characters a path segment must encode.
  const target = `https://shop.example/${ns.id}/pay?x=1 y`;
  const nowMs = Date.now();
  const events = Array.from({ length: 120 }, (_, i) => {
    // Spread over the week, most in the last day, a few in the last minutes.
    const back =
      i % 3 === 0
        ? (i * 7919 * 60_000) % (7 * DAY_MS - HOUR_MS)
        : (i * 104_729) % (i % 2 ? DAY_MS : 5 * MINUTE_MS);
    const value = i % 5 === 0 ? undefined : ((i * 37) % 21) - 10; // negative, zero, positive, absent
    return {
      id: `${ns.id}-${i}`,
      type: i % 4 === 3 ? 'view' : 'txn',
      target: i % 6 === 5 ? `${target}-other` : target,
      userId: i % 7 === 6 ? `${user}-other` : user,
      occurredAt: new Date(nowMs - back - 1_000).toISOString(),
      ...(value === undefined ? {} : { value }),
    };
  });
  // Sent out of time order, in batches, and one batch twice (a client's retry: the same ids).
  const shuffled = events.map((_, i) => events[(i * 47) % events.length]!); // 47 is prime to 120
  for (let i = 0; i < shuffled.length; i += 25) {
    const r = await http(port, 'POST', '/v1/events:batch', { events: shuffled.slice(i, i + 25) });
    assert.equal(r.status, 200, r.text);
  }
  const again = await http(port, 'POST', '/v1/events:batch', { events: shuffled.slice(0, 25) });
  assert.equal(again.status, 200, again.text);
  await waitFor(
    () => backends.caughtUp(),
    () => 'consumer groups behind',
    120_000,
  );
  const [{ n } = { n: 0 }] = await backends.rows<{ n: number }>('SELECT count(*)::int AS n FROM event');
  assert.equal(n, events.length, 'each id stored once');

  const at = new Date(nowMs + 500).toISOString();
  const windows = '1m,7m,1h,90m,6h,24h,3d,7d';
  const cases = [
    { kind: 'user', subject: user, path: `/v1/users/${encodeURIComponent(user)}/aggregates` },
    { kind: 'target', subject: target, path: `/v1/targets/${encodeURIComponent(target)}/aggregates` },
  ] as const;
  for (const { kind, subject, path } of cases) {
    for (const type of ['txn', 'view']) {
      const r = await http(
        port,
        'GET',
        `${path}?type=${type}&windows=${windows}&at=${encodeURIComponent(at)}`,
      );
      assert.equal(r.status, 200, r.text);
      const answer = r.body as Answer;
      assert.equal(answer.at, at);
      assert.deepEqual(
        answer.windows.map((w) => w.window),
        windows.split(','),
      );
      for (const w of answer.windows) {
        const startMs = Date.parse(w.start);
        const endMs = Date.parse(w.end);
        assert.equal(endMs, Date.parse(at));
        const [row] = await backends.rows<Record<string, number | null>>(WINDOW_SQL, [
          type,
          kind,
          subject,
          startMs,
          endMs,
        ]);
        const expected = {
          count: String(row!.count),
          valueCount: String(row!.valueCount),
          sum: Number(row!.sum),
          ...(row!.min !== null && { min: Number(row!.min) }),
          ...(row!.max !== null && { max: Number(row!.max) }),
          ...(row!.avg !== null && { avg: Number(row!.avg) }),
        };
        const { window: _, start: __, end: ___, ...got } = w;
        assert.deepEqual(got, expected, `${kind} ${type} ${w.window}`);
      }
      // Something was counted: the comparison is not of empty windows only.
      if (type === 'txn') assert.ok(Number(answer.windows.at(-1)!.count) > 20);
    }
  }

  // Without `at`: windows end now.
  const live = await http(port, 'GET', `/v1/users/${user}/aggregates?type=txn&windows=7d`);
  assert.equal(live.status, 200, live.text);
  assert.ok(Math.abs(Date.parse((live.body as Answer).at) - Date.now()) < 60_000);

  // Bad input: 400 naming the field.
  const bad = [
    [`/v1/users/${user}/aggregates?type=txn&windows=1h,8d`, 'windows[1]'],
    [`/v1/users/${user}/aggregates?type=txn&windows=1h&windows=2w`, 'windows[1]'],
    [`/v1/users/${user}/aggregates?windows=1h`, 'type'],
    [`/v1/users/${user}/aggregates?type=txn`, 'windows'],
    [`/v1/users/${user}/aggregates?type=txn&windows=1h&at=${new Date(nowMs + HOUR_MS).toISOString()}`, 'at'],
    [
      `/v1/users/${user}/aggregates?type=txn&windows=2d&at=${new Date(nowMs - 6 * DAY_MS).toISOString()}`,
      'at',
    ],
    [`/v1/users/${user}/aggregates?type=txn&windows=1h&at=yesterday`, 'at'],
    [`/v1/targets/%E0%A4%A/aggregates?type=txn&windows=1h`, 'target'],
  ] as const;
  for (const [path, field] of bad) {
    const r = await http(port, 'GET', path);
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.match(r.text, new RegExp(`"field":"${field.replace(/[[\]]/g, '\\$&')}"`), `${path}: ${r.text}`);
  }
});

test('tally all: GET /v1/aggregates/top ranks users and targets over a window as SQL does over the stored rows', async (t) => {
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], ns.env);
  t.after(async () => {
    await tally.kill('SIGKILL');
    await backends.cleanup();
  });
  const port = tally.httpPort!;
  const nowMs = Date.now();
  // 40 card holders at 8 merchants over the last 30 hours; some refunds (negative values).
  const events = Array.from({ length: 400 }, (_, i) => {
    const holder = (i * 7) % 40;
    const back = (i * 104_729 * 1_000) % (30 * HOUR_MS);
    return {
      id: `${ns.id}-${i}`,
      type: 'txn',
      target: `merchant-${ns.id}-${i % 8}`,
      userId: `holder-${ns.id}-${holder}`,
      occurredAt: new Date(nowMs - back - 1_000).toISOString(),
      value: i % 9 === 0 ? -((i * 13) % 50) : ((i * 37) % 200) + holder,
    };
  });
  for (let i = 0; i < events.length; i += 100) {
    const r = await http(port, 'POST', '/v1/events:batch', { events: events.slice(i, i + 100) });
    assert.equal(r.status, 200, r.text);
  }
  await waitFor(
    () => backends.caughtUp(),
    () => 'consumer groups behind',
    120_000,
  );
  const at = new Date(nowMs).toISOString();
  for (const [of, column] of [
    ['user', 'user_id'],
    ['target', 'target'],
  ] as const)
    for (const [window, ms] of [
      ['6h', 6 * HOUR_MS],
      ['24h', DAY_MS],
      ['45m', 45 * MINUTE_MS],
    ] as const)
      for (const by of ['sum', 'count'] as const) {
        const r = await http(
          port,
          'GET',
          `/v1/aggregates/top?type=txn&of=${of}&window=${window}&by=${by}&limit=5&at=${encodeURIComponent(at)}`,
        );
        assert.equal(r.status, 200, r.text);
        const answer = r.body as {
          entries: { userId: string; target: string; count: string; sum: number }[];
        };
        const rows = await backends.rows<{ subject: string; count: number; sum: number }>(
          `SELECT ${column} AS subject, count(*)::int AS count, coalesce(sum(value), 0)::float8 AS sum
             FROM event
            WHERE type = 'txn' AND ${column} LIKE $3
              AND occurred_at >= 'epoch'::timestamptz + $1::bigint * interval '1 millisecond'
              AND occurred_at < 'epoch'::timestamptz + $2::bigint * interval '1 millisecond'
            GROUP BY 1 ORDER BY ${by === 'sum' ? 'sum' : 'count'} DESC LIMIT 5`,
          [nowMs - ms, nowMs, `%-${ns.id}-%`],
        );
        const measure = (e: { count: string | number; sum: number }) =>
          by === 'sum' ? e.sum : Number(e.count);
        const context = `${of} ${window} ${by}: ${r.text}`;
        assert.ok(rows.length > 0, context);
        assert.deepEqual(answer.entries.map(measure), rows.map(measure), context);
        // Each entry is its subject's own exact figure.
        for (const e of answer.entries) {
          const subject = of === 'user' ? e.userId : e.target;
          const [own] = await backends.rows<{ count: number; sum: number }>(
            `SELECT count(*)::int AS count, coalesce(sum(value), 0)::float8 AS sum FROM event
              WHERE type = 'txn' AND ${column} = $3
                AND occurred_at >= 'epoch'::timestamptz + $1::bigint * interval '1 millisecond'
                AND occurred_at < 'epoch'::timestamptz + $2::bigint * interval '1 millisecond'`,
            [nowMs - ms, nowMs, subject],
          );
          assert.deepEqual({ count: Number(e.count), sum: e.sum }, own, context);
        }
      }
  const bad = [
    ['/v1/aggregates/top?window=6h', 'type'],
    ['/v1/aggregates/top?type=txn', 'window'],
    ['/v1/aggregates/top?type=txn&window=2d', 'window'],
    ['/v1/aggregates/top?type=txn&window=6h&of=card', 'of'],
    ['/v1/aggregates/top?type=txn&window=6h&by=avg', 'by'],
    ['/v1/aggregates/top?type=txn&window=6h&limit=101', 'limit'],
    [`/v1/aggregates/top?type=txn&window=6h&at=${new Date(nowMs - 2 * DAY_MS).toISOString()}`, 'at'],
  ] as const;
  for (const [path, field] of bad) {
    const r = await http(port, 'GET', path);
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.match(r.text, new RegExp(`"field":"${field}"`), `${path}: ${r.text}`);
  }
});
