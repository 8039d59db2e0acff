import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import {
  dayOf,
  dayText,
  ensureEventDays,
  eventDays,
  maintainEventPartitions,
} from '../infra/events/event-partitions.ts';
import type { Logger } from '../infra/logger.ts';
import { createMetricsRegistry } from '../infra/metrics.ts';
import { migratedPostgresSchema } from '../testing/migrated-sql.ts';
import { realServers, requireRealServers, testNamespace, waitFor } from '../testing/real-servers.ts';
import { Backends } from '../testing/tally-client.ts';
import { start } from './persister.ts';
import { eventPartitionsContract } from './persister-partitions.contract.ts';

await requireRealServers();

eventPartitionsContract('PostgreSQL', migratedPostgresSchema);

test('the maintenance runs in one place at a time: a process that finds the lock held skips it', async (t) => {
  const { sql, cleanup } = await migratedPostgresSchema();
  t.after(cleanup);
  const other = new pg.Client({ connectionString: realServers.pgUrl });
  await other.connect();
  t.after(() => other.end());
  // Another process's maintenance, in the middle of a step.
  await other.query('BEGIN');
  await other.query('SELECT pg_advisory_xact_lock(7245016)');
  const skipped = await maintainEventPartitions(sql, { nowMs: Date.now(), retentionDays: 1 });
  assert.deepEqual(skipped, { ran: false, made: [], dropped: [], idsDeleted: 0, pending: [] });
  await other.query('COMMIT');
  assert.equal((await maintainEventPartitions(sql, { nowMs: Date.now(), retentionDays: 1 })).ran, true);
});

test('the role maintains the partitions from its start: days made ahead, days past the retention dropped, logged and counted', async (t) => {
  const ns = testNamespace(1);
  const { sql, cleanup } = await migratedPostgresSchema();
  const backends = new Backends(ns);
  t.after(async () => {
    await backends.cleanup();
    await cleanup();
  });
  const today = dayOf(Date.now());
  await ensureEventDays(sql, [today - 30, today - 9]);
  await backends.log.ensureTopics([
    { name: ns.eventsTopic, partitions: 1 },
    { name: ns.acceptedTopic, partitions: 1 },
  ]);
  const infos: { msg: string; fields: Record<string, unknown> | undefined }[] = [];
  const logger: Logger = {
    debug() {},
    info: (msg, fields) => infos.push({ msg, fields }),
    warn() {},
    error() {},
    child: () => logger,
  };
  const metrics = createMetricsRegistry();
  const role = await start(
    { log: backends.log, logger, metrics, sql },
    {
      groupId: `${ns.groupPrefix}group_persistence`,
      eventsTopic: ns.eventsTopic,
      acceptedTopic: ns.acceptedTopic,
      dlqTopic: ns.dlqTopic,
      eventRetentionDays: 10,
      maxWaitMs: 100,
      lagIntervalMs: 60_000,
    },
  );
  t.after(() => role.stop());
  await waitFor(
    async () =>
      /tally_event_partition_maintenance_runs_total\{outcome="done"\} 1\n/.test(await metrics.metrics()),
    () => 'a maintenance run at start',
    30_000,
  );
  const days = await eventDays(sql);
  assert.ok(!days.includes(today - 30), 'the day past the retention is dropped');
  assert.ok(days.includes(today - 9), 'a day within it is kept');
  for (const d of [today - 1, today, today + 1, today + 2, today + 3])
    assert.ok(days.includes(d), `day ${d}`);
  assert.match(await metrics.metrics(), /tally_event_partitions_dropped_total 1\n/);
  const line = infos.find((i) => i.msg === 'event retention dropped the days past it');
  assert.deepEqual(line?.fields, { retentionDays: 10, dropped: [dayText(today - 30)], idsDeleted: 0 });
});

test('a drop that cannot lock the table in time is left for the next run, and its day keeps its ids', async (t) => {
  const { sql, cleanup } = await migratedPostgresSchema();
  t.after(cleanup);
  const now = Date.now();
  const today = dayOf(now);
  await ensureEventDays(sql, [today - 20]);
  await sql.query(`INSERT INTO event_id (id, occurred_at) VALUES ('old', to_timestamp($1::float8 / 1000))`, [
    (today - 20) * 86_400_000 + 1,
  ]);
  const reader = new pg.Client({ connectionString: realServers.pgUrl });
  await reader.connect();
  t.after(() => reader.end());
  // A long read of the event table holds its lock.
  const [schema] = await sql.query<{ s: string }>('SELECT current_schema() AS s');
  await reader.query('BEGIN');
  await reader.query(`SELECT count(*) FROM "${schema!.s}".event`);
  const held = await maintainEventPartitions(sql, { nowMs: now, retentionDays: 10 });
  assert.deepEqual([held.dropped, held.pending, held.idsDeleted], [[], [today - 20], 0]);
  assert.ok((await eventDays(sql)).includes(today - 20));
  await reader.query('COMMIT');
  const next = await maintainEventPartitions(sql, { nowMs: now, retentionDays: 10 });
  assert.deepEqual([next.dropped, next.pending, next.idsDeleted], [[today - 20], [], 1]);
});
