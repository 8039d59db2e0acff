/**
 * Baseline: the Kafka client's own rate, with ingest's producer settings (kafkajs, idempotent,
 * acks=all, one request in flight, the default partitioner) and ingest's way of batching (one
 * send of `--batch` records at a time, as BatchingProducer sends), on records encoded exactly as
 * ingest encodes events. Run as a process of its own, like ingest:
 *
 *   node bench/baselines/raw-producer.ts --brokers H:P --topic T --partitions 12 --batch 500 --seconds 10
 *
 * Prints `{"ready":true}` once connected and warmed up (the measured sends start then), and at
 * the end one JSON line: {"batch","sends","events","seconds","eventsPerSecond","sendP50Ms","sendP99Ms"}.
 */
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
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
  },
});
const batch = Number(values.batch);
const seconds = Number(values.seconds);
if (!values.brokers || !values.topic || !(batch >= 1) || !(seconds > 0)) {
  process.stderr.write(
    'usage: raw-producer.ts --brokers H:P --topic T [--partitions N] --batch N --seconds S\n',
  );
  process.exit(2);
}

const kafka = new Kafka({
  clientId: 'tally-bench-raw',
  brokers: values.brokers.split(','),
  logLevel: logLevel.WARN,
});
const admin = kafka.admin();
await admin.connect();
if (!(await admin.listTopics()).includes(values.topic))
  await admin
    .createTopics({
      waitForLeaders: true,
      topics: [{ topic: values.topic, numPartitions: Number(values.partitions) }],
    })
    .catch(() => {}); // created meanwhile by another run of this baseline
await admin.disconnect();

// The same settings as the ingest role's producer (services/infra/log/kafka-event-log.ts).
const producer = kafka.producer({
  idempotent: true,
  retry: { initialRetryTime: 100, retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5_000 },
  maxInFlightRequests: 1,
  allowAutoTopicCreation: false,
  createPartitioner: Partitioners.DefaultPartitioner,
});
await producer.connect();

// A pool of distinct records, sent round-robin: the encoding is not what is measured.
const pool = mixRecords(Math.max(batch * 4, 20_000), `raw${Date.now().toString(36)}`).map((r) => ({
  key: r.key,
  value: Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength),
}));
let next = 0;
const take = () => {
  const out = [];
  for (let i = 0; i < batch; i++) {
    out.push(pool[next]!);
    next = (next + 1) % pool.length;
  }
  return out;
};

// One send first, not measured: metadata, the producer id, connections to the leaders.
await producer.send({ topic: values.topic, acks: -1, messages: take() });
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

const sendMs: number[] = [];
let events = 0;
const start = performance.now();
const end = start + seconds * 1000;
while (performance.now() < end) {
  const messages = take();
  const t0 = performance.now();
  await producer.send({ topic: values.topic, acks: -1, messages });
  sendMs.push(performance.now() - t0);
  events += messages.length;
}
const elapsed = (performance.now() - start) / 1000;
await producer.disconnect();

sendMs.sort((a, b) => a - b);
const pct = (q: number) => sendMs[Math.min(sendMs.length - 1, Math.floor(q * sendMs.length))] ?? Number.NaN;
process.stdout.write(
  `${JSON.stringify({
    batch,
    sends: sendMs.length,
    events,
    seconds: elapsed,
    eventsPerSecond: events / elapsed,
    sendP50Ms: pct(0.5),
    sendP99Ms: pct(0.99),
  })}\n`,
);
