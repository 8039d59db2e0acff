/**
 * SASL and TLS to the brokers, on both Kafka clients, against a Kafka of the test's own whose
 * listeners ask for SASL (PLAIN, SCRAM-SHA-512) and speak TLS (a certificate made for the test).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createPrivateKafka, type PrivateKafka } from '../../testing/private-kafka.ts';
import { requireRealServers } from '../../testing/real-servers.ts';
import { ConfigError, kafkaSecurity, loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { handleProcessWarnings } from '../node-warnings.ts';
import type { EventLog } from './event-log.ts';
import { createKafkaEventLog } from './kafka-event-log.ts';
import type { KafkaSecurity } from './kafka-security.ts';
import { createPlatformaticEventLog } from './platformatic-event-log.ts';

await requireRealServers();
handleProcessWarnings();

let kafka: PrivateKafka;
before(async () => {
  kafka = await createPrivateKafka({ secure: true });
  await kafka.start();
});
after(async () => {
  await kafka?.cleanup();
});

const CLIENTS = {
  kafkajs: createKafkaEventLog,
  platformatic: createPlatformaticEventLog,
} as const;

function open(client: keyof typeof CLIENTS, brokers: string, security?: KafkaSecurity): EventLog {
  return CLIENTS[client]({
    brokers: [brokers],
    clientId: 'tally-security-test',
    produceTimeoutMs: 10_000,
    security,
    logger: createLogger('error'),
  });
}

/** Creates a topic, writes a record and reads it back through `log`. */
async function roundTrip(log: EventLog): Promise<void> {
  const topic = `security-${randomUUID()}`;
  await log.ensureTopics([{ name: topic, partitions: 1 }]);
  await log.producer().send(topic, [{ key: 'k', value: Buffer.from('over a secured connection') }]);
  const consumer = log.consumer({
    groupId: `g-${randomUUID()}`,
    topics: [topic],
    fromBeginning: true,
    maxWaitMs: 200,
  });
  const seen = new Promise<string>((resolve) => {
    void consumer.run(async (batch) => {
      if (batch.records.length > 0) resolve(Buffer.from(batch.records[0]!.value).toString());
    });
  });
  try {
    assert.equal(await seen, 'over a secured connection');
  } finally {
    await consumer.stop();
  }
}

/** Opens a log and fails the test unless creating a topic is refused. */
async function refused(log: EventLog): Promise<void> {
  try {
    await assert.rejects(log.ensureTopics([{ name: `refused-${randomUUID()}`, partitions: 1 }]));
  } finally {
    await log.close().catch(() => {});
  }
}

for (const client of Object.keys(CLIENTS) as (keyof typeof CLIENTS)[]) {
  describe(`Kafka security with ${client}`, { timeout: 180_000 }, () => {
    for (const mechanism of ['plain', 'scram-sha-512'] as const) {
      test(`SASL ${mechanism}: writes and reads with the right password, refused with a wrong one`, async () => {
        const { saslBrokers, user } = kafka.secure!;
        const log = open(client, saslBrokers, { sasl: { mechanism, ...user } });
        try {
          await roundTrip(log);
        } finally {
          await log.close();
        }
        await refused(open(client, saslBrokers, { sasl: { mechanism, ...user, password: 'wrong' } }));
      });
    }

    test('TLS: writes and reads trusting the CA file, refused without it', async () => {
      const { tlsBrokers, caFile } = kafka.secure!;
      // From the configuration, as a process reads it.
      const security = kafkaSecurity(
        loadConfig({ TALLY_KAFKA_BROKERS: tlsBrokers, TALLY_KAFKA_TLS_CA_FILE: caFile }).kafka,
      );
      assert.match(security.tls?.ca ?? '', /BEGIN CERTIFICATE/);
      const log = open(client, tlsBrokers, security);
      try {
        await roundTrip(log);
      } finally {
        await log.close();
      }
      // The certificate is self-signed: without the CA file the client must not trust it.
      await refused(open(client, tlsBrokers, { tls: {} }));
    });

    test('a listener that asks for SASL refuses a client without it', async () => {
      await refused(open(client, kafka.secure!.saslBrokers));
    });
  });
}

test('the configuration names what SASL and TLS lack', () => {
  assert.throws(
    () => loadConfig({ TALLY_KAFKA_SASL_MECHANISM: 'scram-sha-512', TALLY_KAFKA_SASL_USERNAME: 'u' }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /TALLY_KAFKA_SASL_PASSWORD: required/.test(error.message) &&
      !/TALLY_KAFKA_SASL_USERNAME/.test(error.message),
  );
  assert.throws(
    () => loadConfig({ TALLY_KAFKA_SASL_MECHANISM: 'gssapi' }),
    (error: unknown) => error instanceof ConfigError && /TALLY_KAFKA_SASL_MECHANISM/.test(error.message),
  );
  assert.throws(
    () => kafkaSecurity(loadConfig({ TALLY_KAFKA_TLS_CA_FILE: '/nonexistent/ca.pem' }).kafka),
    (error: unknown) =>
      error instanceof ConfigError && /TALLY_KAFKA_TLS_CA_FILE: cannot read/.test(error.message),
  );
  const plain = loadConfig({}).kafka;
  assert.equal(plain.sasl, undefined);
  assert.equal(plain.tls, undefined);
  assert.deepEqual(loadConfig({ TALLY_KAFKA_TLS: 'true' }).kafka.tls, { caFile: undefined });
});
