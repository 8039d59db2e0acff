/**
 * The notification writer on PGlite and the embedded log: kept once (and counted once), published
 * once per recipient keyed by it, and written again under the same id and seq when a batch is
 * redelivered.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Notification } from '../infra/alerts/notification-store.ts';
import { createSqlNotificationStore } from '../infra/alerts/sql-notification-store.ts';
import { createEmbeddedEventLog } from '../infra/log/embedded-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { createMetricsRegistry } from '../infra/metrics.ts';
import { migrate } from '../infra/sql/migrate.ts';
import { createPgliteDatabase } from '../infra/sql/pglite-database.ts';
import { decodeNotification } from '../pipeline/notification-codec.ts';
import { notificationWriter } from './notification-writer.ts';

const logger = createLogger('error');

test('kept once, published per recipient, and again under the same id and seq', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tally-notify-'));
  const sql = await createPgliteDatabase({ dataDir: join(dir, 'db'), schema: 'tally' });
  await migrate(sql, 'tally');
  const log = createEmbeddedEventLog({ dataDir: join(dir, 'log'), logger });
  t.after(async () => {
    await log.close();
    await sql.close();
    await rm(dir, { recursive: true, force: true });
  });
  const topic = `notifications-${randomUUID()}`;
  await log.ensureTopics([{ name: topic, partitions: 2 }]);
  const store = createSqlNotificationStore(sql);
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const notify = notificationWriter({ store, producer: log.producer(), topic, metrics });
  const milestone: Notification = {
    id: 'milestone:likes:abc:100',
    ruleId: 'likes',
    kind: 'milestone',
    target: 'post/1',
    type: 'like',
    value: 104,
    threshold: 100,
    occurredAt: new Date(Date.UTC(2026, 11, 6, 12)),
    recipients: ['dashboard', 'user:alice'],
    message: 'post/1 reached 100 like events',
  };
  await notify([milestone]);
  await notify([milestone]); // a redelivered batch

  const { notifications } = await store.list({ limit: 10 });
  assert.equal(notifications.length, 1);
  const raised = await metrics.getSingleMetric('tally_notifications_total')?.get();
  assert.equal(raised?.values[0]?.value, 1, 'tally_notifications_total counts the notification once');
  const seq = notifications[0]!.seq;

  const records: { key: string | null; value: ReturnType<typeof decodeNotification> }[] = [];
  const consumer = log.consumer({ groupId: `g-${randomUUID()}`, topics: [topic], maxWaitMs: 20 });
  const all = new Promise<void>((resolve) => {
    void consumer.run(async (batch) => {
      for (const r of batch.records) records.push({ key: r.key, value: decodeNotification(r.value) });
      if (records.length >= 4) resolve();
    });
  });
  await all;
  await consumer.stop();
  assert.deepEqual(records.map((r) => r.key).sort(), ['dashboard', 'dashboard', 'user:alice', 'user:alice']);
  for (const { key, value } of records) {
    assert.equal(value.id, milestone.id);
    assert.equal(value.seq, BigInt(seq));
    assert.equal(value.recipient, key);
    assert.equal(value.threshold, 100);
    assert.deepEqual(value.recipients, ['dashboard', 'user:alice']);
  }
});
