/**
 * Baseline: the Kafka client's own rate, with ingest's producer settings (idempotent, acks=all,
 * one request in flight, the Java client's partitioner) and ingest's way of batching (one send of
 * `--batch` records at a time, as BatchingProducer sends), on records encoded exactly as ingest
 * encodes events. `--client` picks the library, configured as its event log adapter configures it
 * (services/infra/log/kafka-event-log.ts, platformatic-event-log.ts). Run as a process of its
 * own, like ingest:
 *
 *   node bench/baselines/raw-producer.ts --brokers H:P --topic T --partitions 12 --batch 500 --seconds 10 [--client kafkajs|platformatic]
 *
 * Prints `{"ready":true}` once connected and warmed up (the measured sends start then), and at
 * the end one JSON line: {"client","batch","sends","events","seconds","eventsPerSecond","sendP50Ms","sendP99Ms"}.
 */
import { parseArgs } from 'node:util';
import { ProduceAcks, Producer, stringSerializer } from '@platformatic/kafka';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { createJavaCompatiblePartitioner } from '../../services/infra/log/platformatic-event-log.ts';
import { handleProcessWarnings } from '../../services/infra/node-warnings.ts';
import { mixRecords } from '../lib/event-mix.ts';

handleProcessWarnings();

const { values } = parseArgs({
  options: {
    brokers: { type: 'string' },
    topic: { type: 'string' },
    partitions: { type: 'string', default: '12' },
    batch: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '10' },
    client: { type: 'string', default: 'kafkajs' },
  },
});
const batch = Number(values.batch);
const seconds = Number(values.seconds);
const client = values.client;
if (
  !values.brokers ||
  !values.topic ||
  !(batch >= 1) ||
  !(seconds > 0) ||
  (client !== 'kafkajs' && client !== 'platformatic')
) {
  process.stderr.write(
    'usage: raw-producer.ts --brokers H:P --topic T [--partitions N] --batch N --seconds S [--client kafkajs|platformatic]\n',
  );
  process.exit(2);
}
const brokers = values.brokers.split(',');
const topic = values.topic;

// The topic, with kafkajs's admin whichever client produces (setting up is not measured).
const kafka = new Kafka({ clientId: 'tally-bench-raw', brokers, logLevel: logLevel.WARN });
const admin = kafka.admin();
await admin.connect();
if (!(await admin.listTopics()).includes(topic))
  await admin
    .createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: Number(values.partitions) }],
    })
    .catch(() => {}); // created meanwhile by another run of this baseline
await admin.disconnect();

interface RawRecord {
  key: string | null;
  value: Buffer;
}

/** One send of `records`, resolved once the broker acknowledged every one. */
type Send = (records: RawRecord[]) => Promise<unknown>;

/** The kafkajs producer, with the same settings as the ingest role's. */
async function kafkajsSend(): Promise<{ send: Send; close: () => Promise<void> }> {
  const producer = kafka.producer({
    idempotent: true,
    retry: { initialRetryTime: 100, retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5_000 },
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  return {
    send: (messages) => producer.send({ topic, acks: -1, messages }),
    close: () => producer.disconnect(),
  };
}

/** The @platformatic/kafka producer, with the same settings as the ingest role's (it keeps one request in flight when idempotent). */
async function platformaticSend(): Promise<{ send: Send; close: () => Promise<void> }> {
  const producer = new Producer<string, Buffer, string, string>({
    clientId: 'tally-bench-raw',
    bootstrapBrokers: brokers,
    connectTimeout: 3_000,
    retryDelay: (_client, _operation, attempt) => Math.min(100 * 2 ** Math.max(0, attempt - 1), 5_000),
    idempotent: true,
    acks: ProduceAcks.ALL,
    retries: Number.MAX_SAFE_INTEGER,
    autocreateTopics: false,
    partitioner: createJavaCompatiblePartitioner(),
    serializers: { key: stringSerializer, headerKey: stringSerializer, headerValue: stringSerializer },
  });
  return {
    send: (records) =>
      producer.send({
        messages: records.map((r) => ({ topic, key: r.key ?? undefined, value: r.value })),
      }),
    close: () => producer.close(),
  };
}

const producer = client === 'platformatic' ? await platformaticSend() : await kafkajsSend();

// A pool of distinct records, sent round-robin: the encoding is not what is measured.
const pool: RawRecord[] = mixRecords(Math.max(batch * 4, 20_000), `raw${Date.now().toString(36)}`).map(
  (r) => ({
    key: r.key,
    value: Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength),
  }),
);
let next = 0;
const take = () => {
  const out: RawRecord[] = [];
  for (let i = 0; i < batch; i++) {
    out.push(pool[next]!);
    next = (next + 1) % pool.length;
  }
  return out;
};

// One send first, not measured: metadata, the producer id, connections to the leaders.
await producer.send(take());
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

const sendMs: number[] = [];
let events = 0;
const start = performance.now();
const end = start + seconds * 1000;
while (performance.now() < end) {
  const messages = take();
  const t0 = performance.now();
  await producer.send(messages);
  sendMs.push(performance.now() - t0);
  events += messages.length;
}
const elapsed = (performance.now() - start) / 1000;
await producer.close();

sendMs.sort((a, b) => a - b);
const pct = (q: number) => sendMs[Math.min(sendMs.length - 1, Math.floor(q * sendMs.length))] ?? Number.NaN;
process.stdout.write(
  `${JSON.stringify({
    client,
    batch,
    sends: sendMs.length,
    events,
    seconds: elapsed,
    eventsPerSecond: events / elapsed,
    sendP50Ms: pct(0.5),
    sendP99Ms: pct(0.99),
  })}\n`,
);
