/**
 * The sender in embedded mode: `tally all` with no servers configured, a webhook destination made
 * through `POST /v1/destinations` pointing at `tally receiver`'s server on 127.0.0.1 (allowed by
 * TALLY_DELIVERY_ALLOW_CIDRS, plain HTTP allowed on the destination), records of its topic in the
 * embedded log as the router writes them, and every record delivered once, signed with the secret
 * the API answered, in each user's order — through a receiver failing a fifth of the deliveries.
 * The embedded log is one process's: the records are written while tally is stopped, between two
 * runs on the same data directory.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createEmbeddedEventLog } from './infra/log/embedded-event-log.ts';
import { createLogger } from './infra/logger.ts';
import { startReceiver } from './receiver/receiver.ts';
import { plannedRecords, writeRecords } from './testing/delivery-run.ts';
import { waitFor } from './testing/real-servers.ts';
import { http } from './testing/tally-client.ts';
import { freePort, startTally, type TallyProcess } from './testing/tally-process.ts';

test('embedded mode: a destination made over REST gets its topic’s records, signed, once each, in per-user order', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-sender-'));
  const env = {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '4',
    TALLY_DELIVERY_ALLOW_CIDRS: '127.0.0.1/32',
    TALLY_DESTINATIONS_REFRESH_MS: '200',
    TALLY_SENDER_POLL_MS: '200',
  };
  let tally: TallyProcess = await startTally(['all'], env);
  const receiverPort = await freePort();
  let closeReceiver = async () => {};
  t.after(async () => {
    await tally.kill('SIGKILL');
    await closeReceiver();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const created = await http(tally.httpPort!, 'POST', '/v1/destinations', {
    name: 'local receiver',
    webhook: { url: `http://127.0.0.1:${receiverPort}/hook`, allowPlainHttp: true },
    retry: { delaysSeconds: [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] },
  });
  assert.equal(created.status, 200, created.text);
  const { destination, signingSecrets } = created.body as {
    destination: { id: string };
    signingSecrets: string[];
  };
  const receiver = await startReceiver({
    port: receiverPort,
    host: '127.0.0.1',
    secrets: signingSecrets,
    failRate: 0.2,
    failStatus: 503,
    latencyMs: 0,
    seed: 5,
    toleranceSeconds: 300,
  });
  closeReceiver = () => receiver.close();
  assert.equal(await tally.kill('SIGTERM'), 0, 'drains and exits 0');

  // The destination's topic was made with it; the records go in as the router writes them.
  const topic = `deliveries.${destination.id}`;
  const planned = plannedRecords(destination.id, 12, 10);
  const log = createEmbeddedEventLog({ dataDir: join(dataDir, 'log'), logger: createLogger('error') });
  try {
    assert.equal((await log.endOffsets(topic)).size, 4, 'the destination’s topic, with its partitions');
    await writeRecords(log.producer(), topic, planned, 40);
  } finally {
    await log.close();
  }

  tally = await startTally(['all'], env);
  await waitFor(
    () => receiver.stats().unique === planned.length,
    () => `received ${receiver.stats().unique} of ${planned.length}`,
    60_000,
  );
  const stats = receiver.stats();
  assert.equal(stats.rejected, 0, 'every signature verified with the secret the API answered');
  assert.equal(stats.orderViolations, 0, JSON.stringify(stats.recentViolations));
  assert.equal(stats.duplicates, 0);
  assert.ok(stats.failed > 0, 'the receiver failed some deliveries, retried');
  for (let u = 0; u < 12; u++) assert.equal(stats.users[`user-${u}`]?.last, 10);

  // The delivery log over REST: the retried deliveries, delivered, with their attempts.
  const port = tally.httpPort!;
  await waitFor(
    async () => {
      const pending = await http(port, 'GET', `/v1/deliveries?destinationId=${destination.id}&state=pending`);
      return ((pending.body as { deliveries?: unknown[] }).deliveries ?? []).length === 0;
    },
    async () =>
      `deliveries still pending: ${(await http(port, 'GET', `/v1/deliveries?destinationId=${destination.id}&state=pending`)).text}`,
  );
  const listed = await http(
    port,
    'GET',
    `/v1/deliveries?destinationId=${destination.id}&state=delivered&pageSize=500`,
  );
  assert.equal(listed.status, 200, listed.text);
  const deliveries = (listed.body as { deliveries: { id: string; state: string; attempts: number }[] })
    .deliveries;
  assert.ok(deliveries.length > 0, 'the retried deliveries (and those that waited behind them) are kept');
  for (const x of deliveries) assert.ok(x.state === 'delivered' && x.attempts >= 1, JSON.stringify(x));
  const retried = deliveries.find((x) => x.attempts >= 2);
  assert.ok(retried, 'a delivery that was retried');
  const attempts = await http(port, 'GET', `/v1/deliveries/${retried.id}/attempts`);
  assert.equal(attempts.status, 200, attempts.text);
  const outcomes = (attempts.body as { attempts: { outcome: string; status: number }[] }).attempts;
  assert.deepEqual(outcomes.at(-1), { ...outcomes.at(-1), outcome: 'delivered', status: 200 });
  assert.ok(outcomes.slice(0, -1).every((a) => a.outcome === 'retry' && a.status === 503));
  const missing = await http(port, 'GET', '/v1/deliveries/msg_nosuch/attempts');
  assert.equal(missing.status, 404);
  assert.match(missing.text, /"field":"id"/);
  const bad = await http(port, 'GET', '/v1/deliveries?state=lost');
  assert.equal(bad.status, 400);
  assert.match(bad.text, /"field":"state"/);
  assert.equal(await tally.kill('SIGTERM'), 0);
});
