/**
 * PublishStreamAcked on the real servers: a stream that outlives a Kafka restart (events sent
 * while Kafka is away are answered `failed`, never `acked`; sent again with the same ids they are
 * acked once Kafka is back), with every acknowledged event read back from the topic; and a stream
 * ended by the server's drain.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { IngestService, type PublishStreamAckedResponse } from './gen/tally/v1/ingest_pb.js';
import { AppError, Code } from './infra/app-error.ts';
import { type BidiCall, createGrpcClient } from './infra/grpc/grpc-service.ts';
import { decodeEvent } from './pipeline/event-codec.ts';
import { createPrivateKafka } from './testing/private-kafka.ts';
import { realServers, requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import type { EventInit } from './testing/tally-client.ts';
import { startTally } from './testing/tally-process.ts';

await requireRealServers();

type Call = BidiCall<{ events: EventInit[] }, PublishStreamAckedResponse>;

/** A client's view of one stream: what it sent by sequence number, and every answer. */
class StreamLedger {
  readonly #bySeq = new Map<number, string>();
  #nextSeq = 1;
  /** Ids acked, each with how many times. */
  readonly acked = new Map<string, number>();
  /** Ids answered `failed` and not yet sent again. */
  failed: string[] = [];
  readonly answeredSeqs = new Set<number>();
  readonly problems: string[] = [];
  ended: AppError | 'OK' | undefined;

  readonly call: Call;

  constructor(call: Call) {
    this.call = call;
  }

  send(events: EventInit[]): void {
    for (const e of events) this.#bySeq.set(this.#nextSeq++, e.id as string);
    this.call.write({ events });
  }

  /** Reads answers until the stream ends. */
  async read(): Promise<void> {
    try {
      for await (const { result } of this.call) {
        if (result.case === 'refused')
          this.problems.push(`refused ${result.value.seq}: ${result.value.message}`);
        if (result.case !== 'acked' && result.case !== 'failed') continue;
        for (let s = Number(result.value.firstSeq); s <= Number(result.value.lastSeq); s++) {
          if (this.answeredSeqs.has(s)) this.problems.push(`sequence ${s} answered twice`);
          this.answeredSeqs.add(s);
          const id = this.#bySeq.get(s);
          if (id === undefined) {
            this.problems.push(`sequence ${s} was never sent`);
            continue;
          }
          if (result.case === 'acked') this.acked.set(id, (this.acked.get(id) ?? 0) + 1);
          else this.failed.push(id);
        }
      }
      this.ended = 'OK';
    } catch (error) {
      this.ended = error instanceof AppError ? error : new AppError(Code.UNKNOWN, String(error));
    }
  }

  get sent(): number {
    return this.#nextSeq - 1;
  }
}

async function readTopic(
  brokers: string,
  topic: string,
  expected: ReadonlySet<string>,
): Promise<Set<string>> {
  const kafka = new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `readback-${topic}` });
  const seen = new Set<string>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value) seen.add(decodeEvent(message.value).id);
      },
    });
    await waitFor(
      () => [...expected].every((id) => seen.has(id)),
      () => `${[...expected].filter((id) => !seen.has(id)).length} acknowledged events missing from ${topic}`,
      60_000,
    );
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

test('a stream outlives a Kafka restart: nothing acked while Kafka is away, every event acked exactly once after it returns, and each acked event is in the topic', async (t) => {
  const kafka = await createPrivateKafka();
  t.after(() => kafka.cleanup());
  await kafka.start();
  const ns = testNamespace(3);
  const tally = await startTally(['ingest'], {
    ...ns.env,
    TALLY_KAFKA_BROKERS: kafka.brokers,
    TALLY_PRODUCE_TIMEOUT_MS: '2000',
  });
  t.after(() => tally.kill('SIGKILL'));
  const client = createGrpcClient(IngestService, `127.0.0.1:${tally.grpcPort}`);
  t.after(() => client.close());
  const ledger = new StreamLedger(client.publishStreamAcked());
  const reading = ledger.read();
  const event = (n: number): EventInit => ({
    id: `${ns.id}-${n}`,
    type: 'VIEW',
    target: `https://restart.example/${n % 5}`,
    userId: `u${n % 7}`,
  });
  const batch = (from: number, count: number) => Array.from({ length: count }, (_, i) => event(from + i));

  for (let m = 0; m < 10; m++) ledger.send(batch(m * 10, 10));
  await waitFor(
    () => ledger.acked.size === 100,
    () => `${ledger.acked.size} of 100 acked before the outage`,
  );

  await kafka.stop();
  for (let m = 10; m < 15; m++) ledger.send(batch(m * 10, 10));
  await waitFor(
    () => ledger.failed.length === 50 || ledger.ended !== undefined,
    () => `${ledger.failed.length} of 50 answered failed while Kafka is away`,
    30_000,
  );
  assert.equal(ledger.ended, undefined, 'the stream stays open');
  assert.equal(ledger.acked.size, 100, 'nothing is acked while Kafka is away');

  await kafka.start();
  // A well-behaved client: sends again, with the same ids, whatever was answered failed.
  let next = 150;
  await waitFor(
    () => {
      if (ledger.ended !== undefined) throw new Error(`the stream ended: ${String(ledger.ended)}`);
      if (ledger.failed.length > 0) {
        const again = ledger.failed.map((id) => event(Number(id.slice(ns.id.length + 1))));
        ledger.failed = [];
        ledger.send(again);
      }
      if (next < 200 && ledger.acked.size >= 100) {
        ledger.send(batch(next, 10));
        next += 10;
      }
      return ledger.acked.size === 200 && ledger.answeredSeqs.size === ledger.sent;
    },
    () => `${ledger.acked.size} of 200 acked, ${ledger.answeredSeqs.size} of ${ledger.sent} answered`,
    120_000,
    100,
  );
  ledger.call.end();
  await reading;
  assert.equal(ledger.ended, 'OK');
  assert.deepEqual(ledger.problems, []);
  assert.ok(ledger.sent >= 250, `the 50 failed events were sent again (${ledger.sent} sent)`);
  for (const [id, times] of ledger.acked) assert.equal(times, 1, `${id} acked ${times} times`);

  const inTopic = await readTopic(kafka.brokers, ns.eventsTopic, new Set(ledger.acked.keys()));
  for (const id of ledger.acked.keys()) assert.ok(inTopic.has(id), `${id} acked but not in the topic`);
});

test('SIGTERM: an open stream is answered for what it sent, then ends UNAVAILABLE saying so; the process exits 0', async (t) => {
  const ns = testNamespace(3);
  const tally = await startTally(['ingest'], ns.env);
  t.after(async () => {
    await tally.kill('SIGKILL');
    const admin = new Kafka({ brokers: [realServers.kafkaBrokers], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [ns.eventsTopic] }).catch(() => {});
    await admin.disconnect();
  });
  const client = createGrpcClient(IngestService, `127.0.0.1:${tally.grpcPort}`);
  t.after(() => client.close());
  const ledger = new StreamLedger(client.publishStreamAcked());
  const reading = ledger.read();
  const events = Array.from({ length: 30 }, (_, n) => ({
    id: `${ns.id}-${n}`,
    type: 'CLICK',
    target: 'https://drain.example/',
    userId: `u${n % 3}`,
  }));
  ledger.send(events.slice(0, 10));
  ledger.send([{ id: `${ns.id}-bad`, type: 'bad type', target: 'x' }]);
  ledger.send(events.slice(10, 20));
  await waitFor(
    () => ledger.acked.size === 20,
    () => `${ledger.acked.size} of 20 acked`,
  );
  assert.equal(ledger.problems.length, 1);
  assert.match(ledger.problems[0]!, /^refused 11: events\[0\]\.type: /);
  ledger.problems.length = 0;

  const exit = tally.kill('SIGTERM');
  await reading;
  assert.ok(ledger.ended instanceof AppError, String(ledger.ended));
  assert.equal(ledger.ended.code, Code.UNAVAILABLE);
  assert.match(ledger.ended.message, /draining/);
  assert.equal(await exit, 0);
  assert.deepEqual(ledger.problems, []);
  const inTopic = await readTopic(realServers.kafkaBrokers, ns.eventsTopic, new Set(ledger.acked.keys()));
  assert.equal(inTopic.size, 20);
});
