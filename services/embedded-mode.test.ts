/**
 * Embedded mode end to end: `tally all` with no servers configured, events over
 * REST and gRPC counted exactly in every sink; `kill -9` mid-stream, restart on
 * the same data directory, send more: the totals are still exact.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { HOUR_MS, hourStart } from './domain/report.ts';
import { type AppError, Code } from './infra/app-error.ts';
import { createPgliteDatabase } from './infra/sql/pglite-database.ts';
import {
  expectedTotals,
  key,
  makeEvents,
  type Sent,
  sendMix,
  type Totals,
  TYPES,
} from './testing/event-mix.ts';
import { waitFor } from './testing/real-servers.ts';
import { http, ingestClient, mapLimit, queryClient } from './testing/tally-client.ts';
import { freePort, startTally, type TallyProcess } from './testing/tally-process.ts';

/** What the API shows now, in the shape of `expectedTotals`: counters per (target, type), summaries per hour. */
async function observed(tally: TallyProcess, targets: string[], days: string[]) {
  const query = queryClient(tally.grpcPort!);
  try {
    const counters = new Map<string, number>();
    for (const target of targets) {
      for (const c of (await query.getCounters({ target })).counts)
        counters.set(`${target}|${c.type}`, Number(c.count));
    }
    const summaries: Totals = new Map();
    for (const target of targets) {
      for (const date of days) {
        const report = await query.getReport({ target, date });
        const dayStart = Date.parse(`${date}T00:00:00Z`);
        for (const h of report.hours) {
          for (const c of h.counts) {
            if (c.count > 0n)
              summaries.set(key(target, c.type, dayStart + h.hour * HOUR_MS), {
                count: Number(c.count),
                sum: c.sum,
              });
          }
        }
      }
    }
    return { counters, summaries };
  } finally {
    query.close();
  }
}

function countersOf(expected: Totals): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, t] of expected) {
    const [target, type] = k.split('|');
    out.set(`${target}|${type}`, (out.get(`${target}|${type}`) ?? 0) + t.count);
  }
  return out;
}

test('embedded mode counts exactly over REST and gRPC, through kill -9 and restart', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-embedded-'));
  const env = {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '4',
  };
  let tally = await startTally(['all'], env);
  t.after(async () => {
    await tally.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  assert.ok(
    tally.lines.some((l) => l.includes('"port":"log"') && l.includes('embedded')),
    'the start-up log says the event log is embedded',
  );
  assert.ok(tally.lines.some((l) => l.includes('"port":"counters"') && l.includes('embedded')));
  assert.ok(tally.lines.some((l) => l.includes('"port":"sql"') && l.includes('PGlite')));

  // Phase 1: the four channels, then exact counters and reports.
  const phase1 = makeEvents('emb', 2_000);
  await sendMix(tally, phase1);
  const legacyTarget = 'https://legacy.example/page';
  const legacy = await http(tally.httpPort!, 'PUT', '/event_generate/', { type: 'CLICK', url: legacyTarget });
  assert.equal(legacy.status, 200);
  assert.equal(legacy.text, 'OK');
  const targets = [...new Set(phase1.map((s) => s.event.target))];
  const days = [
    ...new Set(phase1.map((s) => new Date(hourStart(s.occurredAtMs)).toISOString().slice(0, 10))),
  ];
  const expected1 = expectedTotals(phase1);
  const same = (a: Map<string, unknown>, b: Map<string, unknown>) =>
    JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
  await waitFor(
    async () => {
      const now = await observed(tally, targets, days);
      return same(now.counters, countersOf(expected1)) && same(now.summaries, expected1);
    },
    async () => `phase 1 not exact: ${JSON.stringify([...(await observed(tally, targets, days)).counters])}`,
  );
  const track = await http(tally.httpPort!, 'POST', '/event_track/', { url: legacyTarget });
  assert.deepEqual(track.body, {
    url: legacyTarget,
    events: [
      { type: 'CLICK', count: 1 },
      { type: 'VIEW', count: 0 },
    ],
  });

  // Phase 2: a steady gRPC stream with retries; kill -9 mid-stream; restart; finish.
  const now = Date.now();
  const phase2: Sent[] = Array.from({ length: 3_000 }, (_, i) => ({
    occurredAtMs: hourStart(now) - HOUR_MS + (i % 3600) * 1000,
    event: {
      id: `kill-${i}`,
      type: TYPES[i % 2]!,
      target: targets[i % 3]!,
      userId: `k${i % 17}`,
      attributes: {},
    },
  }));
  let acknowledged = 0;
  let ingest = ingestClient(tally.grpcPort!);
  const publish = async (s: Sent) => {
    for (;;) {
      try {
        await ingest.publish(
          { event: { ...s.event, occurredAt: timestampFromMs(s.occurredAtMs) } },
          { timeoutMs: 5_000 },
        );
        acknowledged++;
        return;
      } catch (error) {
        const code = (error as AppError).code;
        if (code !== Code.UNAVAILABLE && code !== Code.DEADLINE_EXCEEDED) throw error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const crash = (async () => {
    await waitFor(
      () => acknowledged >= 1_000,
      () => `only ${acknowledged} acknowledged`,
    );
    tally.child.kill('SIGKILL');
    await tally.exited;
    tally = await startTally(['all'], env);
    ingest.close();
    ingest = ingestClient(tally.grpcPort!);
  })();
  await mapLimit(phase2, 8, publish);
  await crash;
  ingest.close();
  assert.equal(acknowledged, phase2.length);

  const expected = expectedTotals([...phase1, ...phase2]);
  const days2 = [...new Set([...days, new Date(hourStart(now) - HOUR_MS).toISOString().slice(0, 10)])];
  await waitFor(
    async () => {
      const seen = await observed(tally, targets, days2);
      return same(seen.counters, countersOf(expected)) && same(seen.summaries, expected);
    },
    async () =>
      `not exact after the crash: ${JSON.stringify([...(await observed(tally, targets, days2)).counters])}`,
  );

  // Stop cleanly, then read the SQL sinks directly: every event once, summaries exact.
  assert.equal(await tally.kill('SIGTERM'), 0);
  const db = await createPgliteDatabase({ dataDir: join(dataDir, 'pg'), schema: 'public' });
  t.after(() => db.close());
  const [rows] = await db.query<{ n: number; ids: number }>(
    'SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM event',
  );
  assert.deepEqual(rows, { n: phase1.length + phase2.length + 1, ids: phase1.length + phase2.length + 1 });
  const summary = await db.query<{
    target: string;
    type: string;
    hour_ms: number;
    count: number;
    sum_value: number;
  }>(
    `SELECT target, type, (extract(epoch FROM hour) * 1000)::float8 AS hour_ms, count, sum_value
       FROM event_summary WHERE target <> $1`,
    [legacyTarget],
  );
  assert.ok(
    same(
      new Map(summary.map((r) => [key(r.target, r.type, r.hour_ms), { count: r.count, sum: r.sum_value }])),
      expected,
    ),
    'event_summary equals the events sent',
  );
});
