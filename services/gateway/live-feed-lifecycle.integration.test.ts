/**
 * The live feed reads the events topic only while someone watches: no member of its consumer
 * group before the first socket, one while sockets are open, none again once the last one has
 * been closed for the idle time. Against the real Kafka (group membership as the broker sees it).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { createKafkaEventLog } from '../infra/log/kafka-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { handleProcessWarnings } from '../infra/node-warnings.ts';
import { realServers, requireRealServers, waitFor } from '../testing/real-servers.ts';
import { StreamClient } from '../testing/stream-client.ts';
import { createStreamServer } from './stream-server.ts';

await requireRealServers();
handleProcessWarnings();

test('the live feed joins with the first socket and leaves after the last one', {
  timeout: 120_000,
}, async (t) => {
  const topic = `live-${randomUUID()}`;
  const groupId = `live-feed-${randomUUID()}`;
  const logger = createLogger('error');
  const log = createKafkaEventLog({
    brokers: realServers.kafkaBrokers.split(','),
    clientId: 'tally-test',
    produceTimeoutMs: 10_000,
    logger,
  });
  await log.ensureTopics([{ name: topic, partitions: 2 }]);
  const admin = new Kafka({
    brokers: realServers.kafkaBrokers.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  const members = async () => (await admin.describeGroups([groupId])).groups[0]?.members.length ?? 0;

  // Leaderboards and counters are not what this test is about: a query that has none.
  const query = {
    topTargets: async () => ({ leaders: [] }),
    getCounters: async () => ({ counts: [] }),
  } as never;
  const stream = createStreamServer({
    query,
    live: { log, eventsTopic: topic, groupId, maxWaitMs: 100 },
    logger,
    feedIdleMs: 500,
  });
  const server = createServer((_, response) => response.end());
  server.on('upgrade', (request, socket, head) => stream.handleUpgrade(request, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const clients: StreamClient[] = [];
  t.after(async () => {
    for (const c of clients) c.close();
    await stream.stop();
    server.close();
    await admin.disconnect();
    await log.close();
  });

  await new Promise((resolve) => setTimeout(resolve, 2_000));
  assert.equal(await members(), 0, 'nobody watches: the gateway does not read the topic');

  const first = await StreamClient.connect(port);
  clients.push(first);
  first.send({ op: 'subscribe', channel: 'dashboard' });
  await first.next(
    (m) => m.channel === 'dashboard' && (m.live as { state: string }).state === 'live',
    60_000,
  );
  assert.equal(await members(), 1);

  // A second socket shares the feed; closing the first keeps it.
  const second = await StreamClient.connect(port);
  clients.push(second);
  first.close();
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  assert.equal(await members(), 1, 'a socket is still open: the feed goes on');

  // The events sent now reach the socket still open.
  second.send({ op: 'subscribe', channel: 'dashboard' });
  await log.producer().send(topic, [{ key: 'u', value: Buffer.alloc(0) }]);
  await second.next(
    (m) => m.channel === 'dashboard' && (m.totals as { events: number }).events === 1,
    30_000,
  );

  second.close();
  await waitFor(
    async () => (await members()) === 0,
    () => 'the live feed still reads the topic after every socket closed',
    30_000,
    250,
  );
});
