/**
 * The live feed reads the events topic only while someone watches: no member of its consumer
 * group before the first socket, one while sockets are open, none again once the last one has
 * been closed for the idle time. Against the real Kafka (group membership as the broker sees it).
 * Each "nothing happens" is checked against a second stream server on the same topic where the
 * same thing does happen, in no more time.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { EventLog } from '../infra/log/event-log.ts';
import { createKafkaEventLog } from '../infra/log/kafka-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { handleProcessWarnings } from '../infra/node-warnings.ts';
import { realServers, requireRealServers, waitFor } from '../testing/real-servers.ts';
import { StreamClient } from '../testing/stream-client.ts';
import { untilEvent } from '../testing/until-event.ts';
import { createStreamServer, type StreamServer } from './stream-server.ts';

await requireRealServers();
handleProcessWarnings();

/** `log`, counting the consumers it opens and stops; `changed` emits at each. */
function spiedLog(log: EventLog) {
  const spy = { opened: 0, stopped: 0, changed: new EventEmitter() };
  const spied = new Proxy(log, {
    get(target, property) {
      if (property === 'consumer')
        return (options: Parameters<EventLog['consumer']>[0]) => {
          const consumer = target.consumer(options);
          spy.opened++;
          spy.changed.emit('change');
          return {
            run: consumer.run.bind(consumer),
            stop() {
              spy.stopped++;
              spy.changed.emit('change');
              return consumer.stop();
            },
          };
        };
      const value = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { log: spied, spy };
}

/** Resolves once `condition()` holds, checked at each `emitter` 'change'; fails after 30 s. */
const when = (emitter: EventEmitter, condition: () => boolean, what: string) =>
  untilEvent(emitter, 'change', condition, () => what, 30_000);

test('the live feed joins with the first socket and leaves after the last one', {
  timeout: 180_000,
}, async (t) => {
  const topic = `live-${randomUUID()}`;
  const logger = createLogger('error');
  const kafkaLog = createKafkaEventLog({
    brokers: realServers.kafkaBrokers.split(','),
    clientId: 'tally-test',
    produceTimeoutMs: 10_000,
    logger,
  });
  await kafkaLog.ensureTopics([{ name: topic, partitions: 2 }]);
  const admin = new Kafka({
    brokers: realServers.kafkaBrokers.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  const members = async (groupId: string) =>
    (await admin.describeGroups([groupId])).groups[0]?.members.length ?? 0;

  // Leaderboards and counters are not what this test is about: a query that has none.
  const query = {
    topTargets: async () => ({ leaders: [] }),
    getCounters: async () => ({ counts: [] }),
  } as never;
  const clients: StreamClient[] = [];
  const stops: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const c of clients) c.close();
    for (const stop of stops) await stop();
    await admin.disconnect();
    await kafkaLog.close();
  });
  /** A stream server on its own port and consumer group, reading `topic` through a spied log. */
  const streamServer = async () => {
    const groupId = `live-feed-${randomUUID()}`;
    const { log, spy } = spiedLog(kafkaLog);
    const stream = createStreamServer({
      query,
      live: { log, eventsTopic: topic, groupId, maxWaitMs: 100 },
      logger,
      feedIdleMs: 500,
    });
    const server = createServer((_, response) => response.end());
    server.on('upgrade', (request, socket, head) => stream.handleUpgrade(request, socket, head));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    stops.push(async () => {
      await stream.stop();
      server.close();
    });
    return { stream, groupId, spy, port: (server.address() as AddressInfo).port };
  };
  /** Resolves once `stream` holds `count` sockets (it has seen the opens and closes before). */
  const sockets = (stream: StreamServer, count: number) =>
    waitFor(
      () => stream.socketCount === count,
      () => `${stream.socketCount} sockets open, not ${count}`,
      30_000,
      20,
    );
  const live = (client: StreamClient) =>
    client.next((m) => m.channel === 'dashboard' && (m.live as { state: string }).state === 'live', 60_000);

  // `main` is the server under test; `control` shows, each time, that what must not happen on
  // `main` does happen on a server in the opposite situation, in no more time.
  const main = await streamServer();
  const control = await streamServer();

  // Nobody watches `control`: while `main`'s first socket makes it join the group, `control` does
  // not open a consumer nor appear in the broker's view of its group.
  const first = await StreamClient.connect(main.port);
  clients.push(first);
  first.send({ op: 'subscribe', channel: 'dashboard' });
  await live(first);
  assert.equal(await members(main.groupId), 1);
  assert.equal(main.spy.opened, 1);
  assert.equal(control.spy.opened, 0, 'nobody watches: the gateway does not read the topic');
  assert.equal(await members(control.groupId), 0, 'nobody watches: no member of the group');

  // A second socket shares the feed; closing the first keeps it. `control`'s only socket closes
  // after `main` saw the first close: `control`'s feed stops after the idle time, and by then
  // `main`'s would have stopped too were it going to.
  const watcher = await StreamClient.connect(control.port);
  clients.push(watcher);
  watcher.send({ op: 'subscribe', channel: 'dashboard' });
  await live(watcher);
  const second = await StreamClient.connect(main.port);
  clients.push(second);
  await sockets(main.stream, 2);
  first.close();
  await sockets(main.stream, 1);
  watcher.close();
  await sockets(control.stream, 0);
  await when(control.spy.changed, () => control.spy.stopped === 1, 'the idle control feed stops');
  assert.equal(main.spy.stopped, 0, 'a socket is still open: the feed goes on');
  assert.equal(await members(main.groupId), 1, 'a socket is still open: the group keeps its member');

  // The events sent now reach the socket still open.
  second.send({ op: 'subscribe', channel: 'dashboard' });
  await kafkaLog.producer().send(topic, [{ key: 'u', value: Buffer.alloc(0) }]);
  await second.next(
    (m) => m.channel === 'dashboard' && (m.totals as { events: number }).events === 1,
    30_000,
  );

  second.close();
  await waitFor(
    async () => (await members(main.groupId)) === 0,
    () => 'the live feed still reads the topic after every socket closed',
    30_000,
    250,
  );
  assert.equal(main.spy.stopped, 1);
});
