/**
 * The sender as `tally sender` runs in production, on the real servers, delivering to a flaky
 * receiver (30 % of deliveries answered 503) on 127.0.0.1 (allowed by TALLY_DELIVERY_ALLOW_CIDRS),
 * killed with SIGKILL mid-stream and started again: every record is delivered at least once,
 * under one webhook-id each (a record delivered again after the crash carries the same id), and
 * no user's records ever arrive out of order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DELIVERY_TOPIC_PREFIX } from './domain/destinations.ts';
import { createSqlDestinationStore } from './infra/delivery/sql-destination-store.ts';
import { generateSecret } from './infra/delivery/webhook-signature.ts';
import { createKafkaEventLog } from './infra/log/kafka-event-log.ts';
import { createLogger } from './infra/logger.ts';
import { createPgDatabase } from './infra/sql/pg-database.ts';
import { startReceiver } from './receiver/receiver.ts';
import { plannedRecords, webhookTo, writeRecords } from './testing/delivery-run.ts';
import { realServers, requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

test('per-user order and every record at least once under one webhook-id, through a flaky receiver and a SIGKILL of the sender', async (t) => {
  const ns = testNamespace(4);
  const env = {
    ...ns.env,
    TALLY_DELIVERY_ALLOW_CIDRS: '127.0.0.1/32',
    TALLY_DESTINATIONS_REFRESH_MS: '200',
    TALLY_SENDER_POLL_MS: '200',
    TALLY_SENDER_LEASE_MARGIN_MS: '1000',
    TALLY_KAFKA_SESSION_TIMEOUT_MS: '6000',
  };
  const secret = generateSecret();
  const receiver = await startReceiver({
    port: 0,
    host: '127.0.0.1',
    secrets: [secret],
    failRate: 0.3,
    failStatus: 503,
    latencyMs: 0,
    seed: 11,
    toleranceSeconds: 300,
  });
  const log = createKafkaEventLog({
    brokers: realServers.kafkaBrokers.split(','),
    clientId: 'tally-test-sender-process',
    produceTimeoutMs: 10_000,
    logger: createLogger('warn'),
  });
  let sender: TallyProcess = await startTally(['sender'], env); // migrates the schema
  const sql = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema: ns.pgSchema, poolSize: 2 });
  let topic = '';
  t.after(async () => {
    await sender.kill('SIGKILL');
    await receiver.close();
    await log.deleteTopics([topic]).catch(() => {});
    await log.close();
    await sql.query(`DROP SCHEMA IF EXISTS ${ns.pgSchema} CASCADE`).catch(() => {});
    await sql.close();
  });

  // 20 attempts a second apart: a record fails them all with probability 0.3^20.
  const d = await createSqlDestinationStore({ sql }).create(
    webhookTo(`${receiver.url}/hook`, {
      retryDelaysSeconds: Array.from({ length: 20 }, (_, i) => (i === 0 ? 0 : 1)),
    }),
    [secret],
  );
  topic = `${ns.groupPrefix}${DELIVERY_TOPIC_PREFIX}${d.id}`;
  await log.ensureTopics([{ name: topic, partitions: 4 }]);
  const users = 30;
  const perUser = 40;
  const planned = plannedRecords(d.id, users, perUser);
  const half = Math.floor(planned.length / 2);
  await writeRecords(log.producer(), topic, planned.slice(0, half));
  await waitFor(
    () => receiver.stats().received >= half / 3,
    () => `received ${receiver.stats().received} before the kill`,
    60_000,
  );
  const rest = writeRecords(log.producer(), topic, planned.slice(half));
  sender.child.kill('SIGKILL');
  await sender.exited;
  const atKill = receiver.stats().unique;
  await rest;
  sender = await startTally(['sender'], env, 120_000);

  await waitFor(
    () => receiver.stats().unique >= planned.length,
    () => `received ${receiver.stats().unique} of ${planned.length}`,
    150_000,
  );
  const stats = receiver.stats();
  assert.ok(atKill < planned.length, 'the SIGKILL came mid-stream');
  assert.equal(stats.unique, planned.length, 'each record under exactly one webhook-id');
  assert.equal(stats.orderViolations, 0, JSON.stringify(stats.recentViolations));
  assert.equal(stats.rejected, 0, 'every signature verified');
  for (let u = 0; u < users; u++) assert.equal(stats.users[`user-${u}`]?.last, perUser, `user-${u}`);
  t.diagnostic(
    `${stats.unique} delivered (${atKill} before the SIGKILL), ${stats.duplicates} delivered again after it, ${stats.failed} answered 503`,
  );
});
