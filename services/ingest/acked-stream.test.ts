/**
 * PublishStreamAcked on the embedded event log, served by the ingest role over a real gRPC server:
 * acknowledged ranges, refusals that do not end the stream, all-or-nothing messages, ranges the
 * log did not acknowledge, the bound on unanswered events, and the drain.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { defaultEventLimits } from '../domain/event-rules.ts';
import type { Event, EventSchema } from '../gen/tally/v1/event_pb.js';
import { IngestService, type PublishStreamAckedResponse } from '../gen/tally/v1/ingest_pb.js';
import { AppError, Code } from '../infra/app-error.ts';
import { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import { createGrpcClient, type GrpcServer } from '../infra/grpc/grpc-service.ts';
import { createEmbeddedEventLog } from '../infra/log/embedded-event-log.ts';
import type { EventLog, LogProducer, LogRecord } from '../infra/log/event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { createMetricsRegistry } from '../infra/metrics.ts';
import { decodeEvent } from '../pipeline/event-codec.ts';
import { start } from './ingest.ts';

const logger = createLogger('error');
type EventInit = Exclude<MessageInitShape<typeof EventSchema>, Event>;
type Answer = PublishStreamAckedResponse['result'];

/** The embedded log, whose sends a test may hold (`gate`) or fail (`failing`). */
class ControlledLog {
  failing = false;
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  /** Records handed to the log so far (sent, held or failed). */
  received = 0;

  hold(): void {
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
  }

  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }

  wrap(log: EventLog): EventLog {
    const inner = log.producer();
    const producer: LogProducer = {
      send: async (topic: string, records: readonly LogRecord[]) => {
        this.received += records.length;
        await this.#gate;
        if (this.failing) throw new AppError(Code.UNAVAILABLE, 'the event log did not acknowledge (test)');
        await inner.send(topic, records);
      },
    };
    return Object.assign(Object.create(log) as EventLog, { producer: () => producer });
  }
}

async function startIngest(
  t: { after: (fn: () => Promise<void> | void) => void },
  options: { maxBatchEvents?: number; produceTimeoutMs?: number } = {},
) {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-acked-'));
  const embedded = createEmbeddedEventLog({ dataDir, logger });
  const control = new ControlledLog();
  const log = control.wrap(embedded);
  const topic = `t-${randomUUID()}`;
  const registry = new GrpcRegistry(logger);
  const metrics = createMetricsRegistry();
  /** Events admitted (read and checked), refused ones included. */
  let admitted = 0;
  await log.ensureTopics([{ name: topic, partitions: 3 }]);
  const ingest = await start(
    {
      log,
      grpc: registry,
      logger,
      metrics,
      now: () => {
        admitted++; // once per event admitted
        return Date.now();
      },
    },
    {
      eventsTopic: topic,
      maxBatchEvents: options.maxBatchEvents ?? 1000,
      limits: defaultEventLimits,
      lingerMs: 2,
      maxProduceBatchEvents: 5000,
      produceTimeoutMs: options.produceTimeoutMs ?? 30_000,
      trustedProxies: [],
    },
  );
  const server: GrpcServer = await registry.listen({ host: '127.0.0.1', port: 0, maxMessageBytes: 4 << 20 });
  const client = createGrpcClient(IngestService, `127.0.0.1:${server.port}`);
  t.after(async () => {
    control.release();
    client.close();
    await server.shutdown(1_000);
    await ingest.stop();
    await embedded.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  /** The ids of every record in the topic, as often as each was written. */
  const idsInLog = async (): Promise<string[]> => {
    const ends = await embedded.endOffsets(topic);
    const total = [...ends.values()].reduce((n, end) => n + Number(end), 0);
    const ids: string[] = [];
    if (total === 0) return ids;
    const consumer = embedded.consumer({ groupId: `g-${randomUUID()}`, topics: [topic], maxWaitMs: 50 });
    let done!: () => void;
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    await consumer.run(async (batch) => {
      for (const r of batch.records) ids.push(decodeEvent(r.value).id);
      if (ids.length >= total) done();
    });
    await all;
    await consumer.stop();
    return ids;
  };
  return {
    client,
    control,
    metrics,
    registry,
    server,
    idsInLog,
    admitted: () => admitted,
  };
}

const event = (id: string, extra: Partial<EventInit> = {}): EventInit => ({
  id,
  type: 'VIEW',
  target: 'https://acked.example/',
  userId: `u-${id}`,
  ...extra,
});

/** Reads answers until `until` says enough (or the stream ends); returns them and how it ended. */
async function collect(
  answers: AsyncIterator<PublishStreamAckedResponse>,
  until: (seen: Answer[]) => boolean = () => false,
): Promise<{ answers: Answer[]; ended?: AppError | 'OK' }> {
  const seen: Answer[] = [];
  try {
    while (!until(seen)) {
      const next = await answers.next();
      if (next.done) return { answers: seen, ended: 'OK' };
      seen.push(next.value.result);
    }
    return { answers: seen };
  } catch (error) {
    assert.ok(error instanceof AppError, String(error));
    return { answers: seen, ended: error };
  }
}

/** Every sequence number answered `acked`, in answer order. */
function ackedSeqs(answers: readonly Answer[]): number[] {
  const seqs: number[] = [];
  for (const a of answers)
    if (a.case === 'acked')
      for (let s = Number(a.value.firstSeq); s <= Number(a.value.lastSeq); s++) seqs.push(s);
  return seqs;
}

test('acks every event by sequence number; an invalid event mid-stream is refused and the stream goes on; generated ids are named', async (t) => {
  const ingest = await startIngest(t);
  const call = ingest.client.publishStreamAcked();
  const answers = call[Symbol.asyncIterator]();
  call.write({ events: [event('a1'), event('a2'), event('a3')] });
  call.write({ events: [event('a4'), event('a5', { type: 'bad type' }), event('a6')] });
  call.write({ events: [event('')] });
  call.end();
  const result = await collect(answers);
  assert.equal(result.ended, 'OK');
  assert.deepEqual(
    ackedSeqs(result.answers).sort((x, y) => x - y),
    [1, 2, 3, 4, 6, 7],
  );
  const refused = result.answers.filter((a) => a.case === 'refused');
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!.value.seq, 5n);
  assert.equal(refused[0]!.value.field, 'events[1].type');
  assert.match(refused[0]!.value.message, /^events\[1\]\.type: /);
  const generated = result.answers.flatMap((a) =>
    a.case === 'acked' ? Object.entries(a.value.generatedIds) : [],
  );
  assert.equal(generated.length, 1);
  assert.equal(generated[0]![0], '7');
  // No acknowledged range covers the refused event.
  for (const a of result.answers)
    if (a.case === 'acked') assert.ok(!(a.value.firstSeq <= 5n && 5n <= a.value.lastSeq));

  const inLog = (await ingest.idsInLog()).sort();
  assert.deepEqual(inLog, ['a1', 'a2', 'a3', 'a4', 'a6', generated[0]![1]].sort());
  const metrics = await ingest.metrics.getSingleMetricAsString('tally_ingest_events_total');
  assert.match(metrics, /tally_ingest_events_total\{method="PublishStreamAcked"\} 6/);
});

test('all_or_nothing: an invalid event ends the stream naming the field and sequence number, and nothing of its message is written', async (t) => {
  const ingest = await startIngest(t);
  const call = ingest.client.publishStreamAcked();
  const answers = call[Symbol.asyncIterator]();
  call.write({ events: [event('b1'), event('b2')], allOrNothing: true });
  call.write({ events: [event('b3'), event('b4', { target: '' })], allOrNothing: true });
  const result = await collect(answers);
  assert.ok(result.ended instanceof AppError);
  assert.equal(result.ended.code, Code.INVALID_ARGUMENT);
  assert.equal(result.ended.field, 'events[1].target');
  assert.match(result.ended.message, /sequence number 4; no event of its message, 3 to 4, was written/);
  assert.deepEqual(ackedSeqs(result.answers), [1, 2], 'the earlier message is answered before the end');
  assert.deepEqual((await ingest.idsInLog()).sort(), ['b1', 'b2']);
});

test('a message over the batch maximum ends the stream with INVALID_ARGUMENT on `events`', async (t) => {
  const ingest = await startIngest(t, { maxBatchEvents: 3 });
  const call = ingest.client.publishStreamAcked();
  call.write({ events: [event('c1')] });
  call.write({ events: [event('c2'), event('c3'), event('c4'), event('c5')] });
  const result = await collect(call[Symbol.asyncIterator]());
  assert.ok(result.ended instanceof AppError);
  assert.equal(result.ended.code, Code.INVALID_ARGUMENT);
  assert.equal(result.ended.field, 'events');
  assert.deepEqual(ackedSeqs(result.answers), [1]);
});

test('events the log did not acknowledge are answered `failed` by range; the stream stays open and the same events sent again are acked', async (t) => {
  const ingest = await startIngest(t);
  const call = ingest.client.publishStreamAcked();
  const answers = call[Symbol.asyncIterator]();
  ingest.control.failing = true;
  call.write({ events: [event('d1'), event('d2'), event('d3')] });
  const failed = await collect(answers, (seen) => seen.length === 1);
  const f = failed.answers[0]!;
  assert.equal(f.case, 'failed');
  assert.equal(f.value.firstSeq, 1n);
  assert.equal(f.value.lastSeq, 3n);
  assert.match(f.value.message, /did not acknowledge/);

  ingest.control.failing = false;
  call.write({ events: [event('d1'), event('d2'), event('d3')] });
  call.end();
  const rest = await collect(answers);
  assert.equal(rest.ended, 'OK');
  assert.deepEqual(ackedSeqs(rest.answers), [4, 5, 6]);
  assert.deepEqual((await ingest.idsInLog()).sort(), ['d1', 'd2', 'd3']);
});

test('flow control: at most 4 × the batch maximum events wait for the log; then the server stops reading and the client is held', async (t) => {
  const maxBatchEvents = 5;
  const bound = 4 * maxBatchEvents;
  const ingest = await startIngest(t, { maxBatchEvents });
  ingest.control.hold();
  const call = ingest.client.publishStreamAcked();
  const answers = call[Symbol.asyncIterator]();
  let written = 0;
  let held = false;
  // Fill the server's window, then HTTP/2's and the client's buffers, until a write says to wait.
  while (written < 20_000 / maxBatchEvents) {
    const ok = call.write({
      events: Array.from({ length: maxBatchEvents }, (_, i) => event(`e${written * maxBatchEvents + i}`)),
    });
    written++;
    if (!ok) {
      held = true;
      break;
    }
  }
  assert.ok(held, `the client was never held (${written} messages written)`);
  // The server reads up to the bound…
  const deadline = Date.now() + 10_000;
  while (ingest.admitted() < bound && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  // …and no further, though far more messages reached it: calls answered on the same connection
  // after them prove the server received what the connection's window let through.
  for (let i = 0; i < 3; i++) {
    const refused = await ingest.client.publish({ event: event('x', { type: 'bad type' }) }).catch((e) => e);
    assert.equal((refused as AppError).code, Code.INVALID_ARGUMENT);
  }
  assert.ok(written * maxBatchEvents > 2 * bound, `${written} messages written`);
  assert.equal(ingest.admitted(), bound + 3);
  assert.ok(ingest.control.received <= bound, `${ingest.control.received} records reached the log`);

  ingest.control.release();
  call.end();
  const result = await collect(answers);
  assert.equal(result.ended, 'OK');
  const seqs = ackedSeqs(result.answers).sort((x, y) => x - y);
  assert.equal(seqs.length, written * maxBatchEvents);
  assert.deepEqual(
    seqs,
    Array.from({ length: written * maxBatchEvents }, (_, i) => i + 1),
  );
});

/**
 * Drains the server while a stream has events 1 and 2 acknowledged and 3 and 4 held by the log;
 * `afterDrain` runs once the drain started, before the log acknowledges 3 and 4. The stream must
 * answer 3 and 4, then end UNAVAILABLE, and the server close without waiting for its drain timeout.
 */
async function drainMidStream(
  t: { after: (fn: () => Promise<void> | void) => void },
  afterDrain: (call: { write(request: { events: EventInit[] }): boolean }) => void,
): Promise<void> {
  const ingest = await startIngest(t);
  const call = ingest.client.publishStreamAcked();
  const answers = call[Symbol.asyncIterator]();
  call.write({ events: [event('f1'), event('f2')] });
  const first = await collect(answers, (seen) => ackedSeqs(seen).length === 2);
  assert.deepEqual(ackedSeqs(first.answers), [1, 2]);

  ingest.control.hold();
  const before = ingest.control.received;
  call.write({ events: [event('f3'), event('f4')] });
  const deadline = Date.now() + 10_000;
  while (ingest.control.received < before + 2 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 5));
  assert.equal(ingest.control.received, before + 2, 'the second message reached the log');

  ingest.registry.drain();
  const shutdown = ingest.server.shutdown(20_000);
  afterDrain(call);
  ingest.control.release();
  const rest = await collect(answers);
  assert.ok(rest.ended instanceof AppError, `ended ${String(rest.ended)}`);
  assert.equal(rest.ended.code, Code.UNAVAILABLE);
  assert.match(rest.ended.message, /draining.*sequence numbers up to 4/);
  assert.deepEqual(ackedSeqs(rest.answers), [3, 4]);
  const started = Date.now();
  await shutdown;
  assert.ok(Date.now() - started < 10_000, 'the server did not wait for its drain timeout');
  assert.deepEqual((await ingest.idsInLog()).sort(), ['f1', 'f2', 'f3', 'f4']);
}

test('drain: the stream stops reading, answers what the log acknowledged, then ends UNAVAILABLE; the server closes without waiting for the client', async (t) => {
  // After the drain: never read, never answered.
  await drainMidStream(t, (call) => call.write({ events: [event('f5')] }));
});

test('drain while the client sends nothing more: the read the stream left pending does not cost the client its status', async (t) => {
  // Nothing arrives to settle that read: it waits until the call ends, and the status is sent
  // after the last answer's write completes, whatever the order.
  await drainMidStream(t, () => {});
});
