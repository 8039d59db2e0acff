/**
 * The event-counting spine end to end on the real servers: 10,000 events over
 * REST single, REST batch, gRPC unary and gRPC stream; every sink exact; a
 * re-send of 1,000 ids changes nothing; bad input is refused before Kafka.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HOUR_MS, hourStart } from './domain/report.ts';
import { type AppError, Code } from './infra/app-error.ts';
import { expectedTotals, key, makeEvents, sendMix, TYPES } from './testing/event-mix.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, http, ingestClient, queryClient } from './testing/tally-client.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

const TOTAL = 10_000;

describe('the spine on real Kafka, Redis and PostgreSQL', () => {
  const ns = testNamespace(6);
  const backends = new Backends(ns);
  const events = makeEvents(ns.id, TOTAL);
  const expected = expectedTotals(events);
  const targets = [...new Set(events.map((s) => s.event.target))];
  let tally: TallyProcess;

  before(async () => {
    tally = await startTally(['all'], ns.env);
  });
  after(async () => {
    const code = await tally?.kill('SIGTERM');
    assert.equal(code, 0, 'tally drains and exits 0 on SIGTERM');
    await backends.cleanup();
  });

  /** Checks Redis counters, `event` rows and `event_summary` against `expected`. */
  async function assertSinksExact(): Promise<void> {
    const query = queryClient(tally.grpcPort!);
    try {
      for (const target of targets) {
        const counters = await query.getCounters({ target });
        const want = TYPES.map((type) => {
          let count = 0;
          let sum = 0;
          for (const [k, t] of expected) {
            if (!k.startsWith(`${target}|${type}|`)) continue;
            count += t.count;
            sum += t.sum;
          }
          return { type, count: BigInt(count), sum };
        });
        assert.deepEqual(
          counters.counts.map((c) => ({ type: c.type, count: c.count, sum: c.sum })),
          want,
          `Redis counters of ${target}`,
        );
      }
    } finally {
      query.close();
    }
    const eventRows = await backends.rows<{
      target: string;
      type: string;
      hour_ms: number;
      count: number;
      sum: number;
    }>(
      `SELECT target, type, (extract(epoch FROM date_trunc('hour', occurred_at)) * 1000)::float8 AS hour_ms,
              count(*)::int AS count, coalesce(sum(value), 0)::float8 AS sum
         FROM event GROUP BY 1, 2, 3`,
    );
    assert.deepEqual(
      new Map(eventRows.map((r) => [key(r.target, r.type, r.hour_ms), { count: r.count, sum: r.sum }])),
      expected,
      'event rows per (target, type, hour)',
    );
    const summaryRows = await backends.rows<{
      target: string;
      type: string;
      hour_ms: number;
      count: number;
      sum_value: number;
    }>(
      `SELECT target, type, (extract(epoch FROM hour) * 1000)::float8 AS hour_ms, count::int AS count, sum_value
         FROM event_summary`,
    );
    assert.deepEqual(
      new Map(
        summaryRows.map((r) => [key(r.target, r.type, r.hour_ms), { count: r.count, sum: r.sum_value }]),
      ),
      expected,
      'event_summary per (target, type, hour)',
    );
  }

  test('10,000 events over REST single, REST batch, gRPC unary and gRPC stream are counted exactly in every sink', async () => {
    await sendMix(tally, events);
    assert.equal(await backends.totalEndOffset(), BigInt(TOTAL), 'every event was written to Kafka once');
    await waitFor(
      () => backends.caughtUp(),
      async () => `consumers behind the end offsets of ${ns.eventsTopic}`,
      120_000,
    );
    await assertSinksExact();
  });

  test('/event_track/ and /event_report/ answer in the seed shapes', async () => {
    const target = targets[0]!;
    const track = await http(tally.httpPort!, 'POST', '/event_track/', { url: target });
    assert.equal(track.status, 200);
    assert.match(track.headers.get('content-type') ?? '', /application\/json/);
    const perType = (type: string) =>
      [...expected].filter(([k]) => k.startsWith(`${target}|${type}|`)).reduce((n, [, t]) => n + t.count, 0);
    assert.deepEqual(track.body, {
      url: target,
      events: TYPES.map((type) => ({ type, count: perType(type) })),
    });

    const days = [
      ...new Set(events.map((s) => new Date(hourStart(s.occurredAtMs)).toISOString().slice(0, 10))),
    ];
    for (const date of days) {
      const report = await http(tally.httpPort!, 'POST', '/event_report/', { url: target, date });
      assert.equal(report.status, 200, report.text);
      const dayStart = Date.parse(`${date}T00:00:00Z`);
      assert.deepEqual(report.body, {
        url: target,
        date,
        dateHourEventCounts: Array.from({ length: 24 }, (_, hour) => ({
          datehour: hour,
          eventCounts: TYPES.map((type) => ({
            type,
            count: expected.get(key(target, type, dayStart + hour * HOUR_MS))?.count ?? 0,
          })),
        })),
      });
    }
    const empty = await http(tally.httpPort!, 'POST', '/event_report/', {
      url: 'https://never.example/',
      date: '2020-01-01',
    });
    assert.equal(empty.status, 200);
    assert.deepEqual(
      (empty.body as { dateHourEventCounts: unknown[] }).dateHourEventCounts,
      Array.from({ length: 24 }, (_, hour) => ({ datehour: hour, eventCounts: [] })),
    );
  });

  test('/v1/top ranks the targets of each type by their counts', async () => {
    const r = await http(tally.httpPort!, 'GET', '/v1/top?types=VIEW&types=CLICK&limit=2');
    assert.equal(r.status, 200, r.text);
    const leaders = TYPES.map((type) => {
      const ranked = targets
        .map((target) => ({
          target,
          count: [...expected]
            .filter(([k]) => k.startsWith(`${target}|${type}|`))
            .reduce((n, [, t]) => n + t.count, 0),
        }))
        .sort((a, b) => b.count - a.count || (a.target < b.target ? 1 : -1))
        .slice(0, 2);
      return { type, targets: ranked.map((t) => ({ target: t.target, count: String(t.count) })) };
    });
    assert.deepEqual(r.body, { leaders });
  });

  test('re-sending 1,000 of those events with the same ids changes no count anywhere', async () => {
    const before = await backends.totalEndOffset();
    const again = events.filter((_, i) => i % 10 === 3 || i % 10 === 6).slice(0, 1000);
    assert.equal(again.length, 1000);
    await sendMix(tally, again);
    assert.equal(await backends.totalEndOffset(), before + 1000n, 'the re-sent events did reach Kafka again');
    await waitFor(
      () => backends.caughtUp(),
      () => 'consumers behind after the re-send',
      120_000,
    );
    await assertSinksExact();
  });

  test('bad input gets a 4xx or gRPC error naming the problem, and nothing reaches Kafka', async () => {
    const before = await backends.totalEndOffset();
    const port = tally.httpPort!;
    const valid = { type: 'CLICK', target: 'https://x.example/' };
    const cases: [string, string, string, unknown, number, string | undefined, RegExp][] = [
      ['malformed JSON', 'POST', '/v1/events', '{"type":', 400, 'body', /malformed JSON/],
      ['a JSON array for a batch', 'POST', '/v1/events:batch', '[1,2]', 400, 'body', /JSON object/],
      ['a number for a string', 'POST', '/v1/events', { ...valid, type: 5 }, 400, 'event.type', /5/],
      [
        'a string for a number',
        'POST',
        '/v1/events',
        { ...valid, value: 'lots' },
        400,
        'event.value',
        /lots/,
      ],
      [
        'an unknown field',
        'POST',
        '/v1/events',
        { ...valid, colour: 'red' },
        400,
        'event.colour',
        /not a known field/,
      ],
      ['a missing type', 'POST', '/v1/events', { target: 'x' }, 400, 'event.type', /required/],
      ['NaN as a value', 'POST', '/v1/events', { ...valid, value: 'NaN' }, 400, 'event.value', /finite/],
      [
        'a time far ahead',
        'POST',
        '/v1/events',
        { ...valid, occurredAt: '2999-01-01T00:00:00Z' },
        400,
        'event.occurred_at',
        /future/,
      ],
      ['a bad id', 'POST', '/v1/events', { ...valid, id: 'a b' }, 400, 'event.id', /UUID/],
      [
        'a bad event in a batch',
        'POST',
        '/v1/events:batch',
        { events: [valid, valid, { ...valid, type: '' }] },
        400,
        'events[2].type',
        /required/,
      ],
      [
        'too many events in a batch',
        'POST',
        '/v1/events:batch',
        { events: Array.from({ length: 1001 }, () => valid) },
        400,
        'events',
        /at most 1000/,
      ],
      [
        'a body over the limit',
        'POST',
        '/v1/events:batch',
        JSON.stringify({ events: [{ ...valid, target: 'x'.repeat(2 * 1024 * 1024) }] }),
        413,
        'body',
        /at most 1048576 bytes/,
      ],
      [
        'an unknown route',
        'GET',
        '/v1/nothing-here',
        undefined,
        404,
        undefined,
        /no route for GET \/v1\/nothing-here/,
      ],
      ['a wrong method', 'DELETE', '/v1/events', undefined, 405, undefined, /accepts POST/],
      ['a seed event without url', 'PUT', '/event_generate/', { type: 'CLICK' }, 400, 'url', /required/],
      [
        'a seed event with a numeric type',
        'PUT',
        '/event_generate/',
        { type: 1, url: 'x' },
        400,
        'type',
        /string/,
      ],
      [
        'a report with a bad date',
        'POST',
        '/event_report/',
        { url: 'x', date: '2026-13-01' },
        400,
        'date',
        /YYYY-MM-DD|calendar/,
      ],
      ['a report without a date', 'POST', '/event_report/', { url: 'x' }, 400, 'date', /required/],
      ['a counter query without target', 'GET', '/v1/counters', undefined, 400, 'target', /required/],
      [
        'an unknown query parameter',
        'GET',
        '/v1/counters?target=x&colour=red',
        undefined,
        400,
        'colour',
        /not a known field/,
      ],
    ];
    for (const [name, method, path, body, status, field, message] of cases) {
      const r = await http(port, method, path, body);
      assert.equal(r.status, status, `${name}: ${r.text}`);
      const error = (r.body as { error?: { code: number; message: string; field?: string } }).error;
      assert.ok(error, `${name}: an error body`);
      assert.equal(error.code, status, name);
      assert.equal(error.field, field, `${name}: ${error.message}`);
      assert.match(error.message, message, name);
    }

    const ingest = ingestClient(tally.grpcPort!);
    try {
      await assert.rejects(ingest.publish({ event: { type: 'CLICK' } }), (e: AppError) => {
        assert.equal(e.code, Code.INVALID_ARGUMENT);
        assert.equal(e.message, 'event.target: is required');
        assert.equal(e.field, 'event.target');
        return true;
      });
      await assert.rejects(
        ingest.publish({}),
        (e: AppError) => e.code === Code.INVALID_ARGUMENT && /event: is required/.test(e.message),
      );
      await assert.rejects(
        ingest.publishBatch({
          events: [
            { type: 'CLICK', target: 'x' },
            { type: 'CLICK', target: 'x', value: Number.NaN },
          ],
        }),
        (e: AppError) => e.code === Code.INVALID_ARGUMENT && e.field === 'events[1].value',
      );
      await assert.rejects(
        ingest.publish({ event: { type: 'CLICK', target: 'x'.repeat(5 * 1024 * 1024) } }),
        (e: AppError) => e.code === Code.RESOURCE_EXHAUSTED,
      );
      await assert.rejects(
        ingest.publishStream([{ event: { type: 'bad type', target: 'x' } }]),
        (e: AppError) =>
          e.code === Code.INVALID_ARGUMENT &&
          e.field === 'events[0].type' &&
          /0 events before it/.test(e.message),
      );
    } finally {
      ingest.close();
    }
    assert.ok((await tally.child.exitCode) === null, 'the process is still up');
    assert.equal(await backends.totalEndOffset(), before, 'the events topic end offsets did not move');
  });
});
