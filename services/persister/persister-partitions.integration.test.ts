import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { maintainEventPartitions } from '../infra/events/event-partitions.ts';
import { migratedPostgresSchema } from '../testing/migrated-sql.ts';
import { realServers, requireRealServers } from '../testing/real-servers.ts';
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
