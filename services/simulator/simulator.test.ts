import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, type TestContext, test } from 'node:test';
import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { defaultEventLimits, validateEvent } from '../domain/event-rules.ts';
import { type Event, EventSchema } from '../gen/tally/v1/event_pb.js';
import { IngestService, PublishBatchRequestSchema } from '../gen/tally/v1/ingest_pb.js';
import { AppError, Code } from '../infra/app-error.ts';
import { grpcService, startGrpcServer } from '../infra/grpc/grpc-service.ts';
import { createLogger } from '../infra/logger.ts';
import { parseSimulateArgs } from './simulate-args.ts';
import { simulateCommand } from './simulate-command.ts';
import { formatProgress } from './simulation-report.ts';
import { runSimulation, type SimulationSummary } from './simulator.ts';

/** Collects what the simulator writes; `isTTY` / `columns` pretend to be a terminal. */
class Capture extends Writable {
  text = '';
  isTTY: boolean | undefined;
  columns: number | undefined;

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
}

interface Answer {
  status: number;
  delayMs?: number;
  message?: string;
}

/** One request as the fake Tally saw it. */
interface Received {
  path: string;
  events: Event[];
  status: number;
  receivedAtMs: number;
}

/** (target, type) → count, as Tally's counters would show. */
type Counts = Record<string, Record<string, number>>;

function countEvents(events: readonly Event[], into: Counts = {}): Counts {
  for (const e of events) {
    into[e.target] ??= {};
    const types = into[e.target]!;
    types[e.type] = (types[e.type] ?? 0) + 1;
  }
  return into;
}

function acknowledgedCounts(summary: SimulationSummary): Counts {
  const counts: Counts = {};
  for (const [target, types] of Object.entries(summary.acknowledgedByTarget))
    for (const [type, tally] of Object.entries(types)) {
      counts[target] ??= {};
      counts[target][type] = tally.count;
    }
  return counts;
}

/** Decodes and checks events the way Tally does: strict protobuf JSON, then the domain rules. */
function admit(events: Event[], nowMs: number): void {
  events.forEach((event, i) => {
    const violation = validateEvent(
      {
        ...event,
        value: event.value,
        occurredAtMs: event.occurredAt ? timestampMs(event.occurredAt) : undefined,
      },
      defaultEventLimits,
      nowMs,
      `events[${i}].`,
    );
    assert.equal(violation, undefined, JSON.stringify(violation));
    assert.ok(event.occurredAt, 'occurred_at is the send time');
    assert.ok(Math.abs(timestampMs(event.occurredAt) - nowMs) < 5000);
  });
}

/**
 * A stand-in for Tally's REST gateway: POST /v1/events and /v1/events:batch in the protobuf JSON
 * mapping, answering 200 `{"id"}` / `{"ids"}` or an error in Tally's shape as `answer` decides.
 */
async function startFakeTally(
  t: TestContext,
  answer: (index: number, events: Event[]) => Answer = () => ({ status: 200 }),
) {
  const received: Received[] = [];
  const inFlightUsers = new Set<string>();
  let overlaps = 0;
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as JsonValue;
    const path = request.url ?? '';
    assert.equal(request.method, 'POST');
    let events: Event[];
    if (path === '/v1/events') events = [fromJson(EventSchema, json, { ignoreUnknownFields: false })];
    else if (path === '/v1/events:batch')
      events = fromJson(PublishBatchRequestSchema, json, { ignoreUnknownFields: false }).events;
    else throw new Error(`unexpected path ${path}`);
    admit(events, Date.now());
    const users = new Set(events.map((e) => e.userId));
    for (const user of users) if (inFlightUsers.has(user)) overlaps++;
    for (const user of users) inFlightUsers.add(user);
    const index = received.length;
    const a = answer(index, events);
    received.push({ path, events, status: a.status, receivedAtMs: Date.now() });
    if (a.delayMs) await new Promise((resolve) => setTimeout(resolve, a.delayMs).unref());
    for (const user of users) inFlightUsers.delete(user);
    const body =
      a.status === 200
        ? path === '/v1/events'
          ? { id: events[0]!.id }
          : { ids: events.map((e) => e.id) }
        : { error: { code: a.status, status: 'UNAVAILABLE', message: a.message ?? 'failed' } };
    response.writeHead(a.status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body));
  };
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500);
      response.end(String(error));
      throw error;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    /** Requests that had a user in common with a request still in flight. */
    overlaps: () => overlaps,
    events: () => received.flatMap((r) => r.events),
    acknowledged: () => countEvents(received.filter((r) => r.status === 200).flatMap((r) => r.events)),
  };
}

async function simulate(argv: string[], signal?: AbortSignal) {
  const out = new Capture();
  const err = new Capture();
  const options = parseSimulateArgs(argv);
  const summary = await runSimulation(options, { out, err, signal });
  return { summary, out: out.text, err: err.text, options };
}

describe('runSimulation over REST', { concurrency: true }, () => {
  test('sends requests of --batch events to POST /v1/events:batch; the summary matches what Tally acknowledged', async (t) => {
    const tally = await startFakeTally(t);
    const { summary, out, options } = await simulate([
      '--scenario=transactions',
      '--rate=5000',
      '--total=1000',
      '--batch=50',
      '--concurrency=1',
      `--target=${tally.url}`,
      '--seed=7',
    ]);
    assert.deepEqual(
      tally.received.map((r) => [r.path, r.events.length]),
      Array.from({ length: 20 }, () => ['/v1/events:batch', 50]),
    );
    const ids = tally.events().map((e) => e.id);
    assert.deepEqual(
      ids,
      Array.from({ length: 1000 }, (_, i) => `${options.runId}-${i + 1}`),
    );
    assert.equal(summary.sent, 1000);
    assert.equal(summary.acknowledged, 1000);
    assert.equal(summary.failed, 0);
    assert.equal(summary.missed, 0);
    assert.equal(summary.stoppedBy, 'total');
    assert.deepEqual(summary.requests, { sent: 20, acknowledged: 20, failed: 0 });
    assert.deepEqual(summary.byType, { transaction: { sent: 1000, acknowledged: 1000 } });
    assert.deepEqual(acknowledgedCounts(summary), tally.acknowledged());
    // Value sums, in the same order as the server saw them.
    const sums: Record<string, number> = {};
    for (const e of tally.events()) sums[e.target] = (sums[e.target] ?? 0) + (e.value ?? 0);
    for (const [target, types] of Object.entries(summary.acknowledgedByTarget))
      assert.equal(types.transaction?.sum, sums[target]);
    assert.match(out, /transactions → http:\/\/127\.0\.0\.1:\d+ \(REST POST \/v1\/events:batch, batch 50/);
    assert.match(out, /seed 7 /);
    assert.match(out, /1,000 sent: 1,000 acknowledged, 0 failed/);
    assert.match(
      out,
      /repeat {6}tally simulate --scenario transactions --rate 5000 --total 1000 .*--seed 7 /,
    );
  });

  test('--batch 1 sends each event alone to POST /v1/events, on schedule', async (t) => {
    const tally = await startFakeTally(t);
    const started = Date.now();
    const { summary } = await simulate([
      '--rate=400',
      '--batch=1',
      '--total=20',
      `--target=${tally.url}`,
      '--scenario=social',
    ]);
    assert.equal(summary.transport, 'REST POST /v1/events');
    assert.equal(tally.received.length, 20);
    for (const r of tally.received) {
      assert.equal(r.path, '/v1/events');
      assert.equal(r.events.length, 1);
    }
    // Event k is due at k / rate: the 20th not before 50 ms, however fast the server answers.
    assert.ok(tally.received.at(-1)!.receivedAtMs - started >= 49);
    assert.ok(summary.elapsedMs >= 49);
    assert.equal(summary.acknowledged, 20);
  });

  test('error answers are counted by code and never stop the run; the first messages are printed', async (t) => {
    const tally = await startFakeTally(t, (index) =>
      index % 4 === 3
        ? { status: 503, message: 'Kafka did not acknowledge in time, retry' }
        : index % 7 === 6
          ? { status: 400, message: 'events[3].type: is required' }
          : { status: 200, delayMs: index % 3 },
    );
    const { summary, err } = await simulate([
      '--scenario=clickstream',
      '--rate=4000',
      '--total=2000',
      '--batch=20',
      '--concurrency=4',
      `--target=${tally.url}`,
    ]);
    const byStatus = (status: number) => tally.received.filter((r) => r.status === status);
    const eventsIn = (rs: Received[]) => rs.reduce((n, r) => n + r.events.length, 0);
    assert.equal(tally.events().length, 2000);
    assert.equal(summary.sent, 2000);
    assert.ok(byStatus(503).length > 0 && byStatus(400).length > 0);
    assert.deepEqual(summary.errors, {
      '503': {
        requests: byStatus(503).length,
        events: eventsIn(byStatus(503)),
        messages: ['Kafka did not acknowledge in time, retry'],
      },
      '400': {
        requests: byStatus(400).length,
        events: eventsIn(byStatus(400)),
        messages: ['events[3].type: is required'],
      },
    });
    assert.equal(summary.acknowledged, eventsIn(byStatus(200)));
    assert.equal(summary.failed, eventsIn(byStatus(503)) + eventsIn(byStatus(400)));
    assert.equal(summary.requests.failed, byStatus(503).length + byStatus(400).length);
    assert.deepEqual(acknowledgedCounts(summary), tally.acknowledged());
    const types = summary.byType;
    assert.equal((types.VIEW?.acknowledged ?? 0) + (types.CLICK?.acknowledged ?? 0), summary.acknowledged);
    assert.match(err, /^error 503: Kafka did not acknowledge in time, retry$/m);
    assert.match(err, /^error 400: events\[3\]\.type: is required$/m);
    assert.equal(err.match(/^error 503/gm)?.length, 1, 'each distinct message once');
  });

  test('--total stops after exactly that many events, the last request short', async (t) => {
    const tally = await startFakeTally(t);
    const { summary } = await simulate([
      '--scenario=orders',
      '--rate=20000',
      '--total=1234',
      '--batch=50',
      '--concurrency=1',
      `--target=${tally.url}`,
    ]);
    assert.deepEqual(
      tally.received.map((r) => r.events.length),
      [...Array.from({ length: 24 }, () => 50), 34],
    );
    assert.equal(new Set(tally.events().map((e) => e.id)).size, 1234);
    assert.equal(summary.sent, 1234);
    assert.equal(summary.acknowledged, 1234);
    assert.equal(summary.stoppedBy, 'total');
  });

  test('a duration run schedules rate × duration events', async (t) => {
    const tally = await startFakeTally(t);
    const { summary } = await simulate([
      '--rate=2000',
      '--duration=500ms',
      '--batch=25',
      `--target=${tally.url}`,
      '--scenario=social',
    ]);
    assert.equal(summary.stoppedBy, 'duration');
    assert.equal(summary.scheduled, 1000);
    assert.equal(summary.sent, 1000);
    assert.equal(tally.events().length, 1000);
    assert.equal(summary.missed, 0);
    assert.ok(tally.received.every((r) => r.events.length <= 25));
  });

  test('when every request slot stays busy, the shortfall is counted, not hidden', async (t) => {
    const tally = await startFakeTally(t, () => ({ status: 200, delayMs: 100 }));
    const { summary, out } = await simulate([
      '--rate=400',
      '--duration=1s',
      '--batch=1',
      '--concurrency=1',
      `--target=${tally.url}`,
    ]);
    assert.equal(summary.scheduled, 400);
    assert.equal(summary.sent + summary.missed, 400);
    assert.ok(summary.missed > 300, `${summary.missed} missed`);
    assert.equal(tally.events().length, summary.sent);
    assert.equal(summary.acknowledged, summary.sent);
    assert.ok(summary.sendLag.maxMs > 500, 'requests left late, and the summary says so');
    assert.ok(summary.achievedRatePerSecond < 100);
    assert.match(out, /shortfall .* all 1 requests were in flight/);
  });

  test("one user's events are never in two requests at once, so they reach Tally in order", async (t) => {
    const tally = await startFakeTally(t, (index) => ({ status: 200, delayMs: (index * 7) % 13 }));
    const { summary } = await simulate([
      '--scenario=transactions',
      '--users=3',
      '--rate=5000',
      '--total=600',
      '--batch=5',
      '--concurrency=8',
      `--target=${tally.url}`,
    ]);
    assert.equal(summary.acknowledged, 600);
    assert.equal(tally.overlaps(), 0);
    const lastSequence = new Map<string, number>();
    for (const e of tally.events()) {
      const sequence = Number(e.id.slice(e.id.lastIndexOf('-') + 1));
      assert.ok(sequence > (lastSequence.get(e.userId) ?? 0), `${e.userId}: ${e.id} after a later event`);
      lastSequence.set(e.userId, sequence);
    }
  });

  test('stops on abort with the summary of what was done', async (t) => {
    const tally = await startFakeTally(t, () => ({ status: 200, delayMs: 5 }));
    const controller = new AbortController();
    const timer = setInterval(() => {
      if (tally.events().length >= 200) controller.abort();
    }, 5);
    t.after(() => clearInterval(timer));
    const started = Date.now();
    const { summary, out } = await simulate(
      ['--rate=1000', '--duration=1m', '--batch=10', `--target=${tally.url}`],
      controller.signal,
    );
    assert.equal(summary.stoppedBy, 'signal');
    assert.ok(Date.now() - started < 10_000);
    assert.ok(summary.sent >= 200 && summary.sent < 60_000);
    assert.equal(summary.sent, tally.events().length);
    assert.equal(summary.acknowledged, summary.sent, 'requests in flight were answered before the end');
    assert.equal(summary.scheduled, summary.sent + summary.missed);
    assert.match(out, /stopped by signal after/);
  });

  test('a Tally that never answers: after the stop signal, requests in flight get 5 s, then count as no-answer', async (t) => {
    const tally = await startFakeTally(t, () => ({ status: 200, delayMs: 60_000 }));
    const controller = new AbortController();
    const timer = setInterval(() => {
      if (tally.received.length >= 3) controller.abort();
    }, 5);
    t.after(() => clearInterval(timer));
    const started = Date.now();
    const { summary, err } = await simulate(
      ['--rate=100', '--duration=1m', '--batch=10', '--concurrency=3', `--target=${tally.url}`],
      controller.signal,
    );
    const waitedMs = Date.now() - started;
    assert.ok(waitedMs >= 5000 && waitedMs < 8000, `stopped after ${waitedMs} ms`);
    assert.equal(summary.stoppedBy, 'signal');
    assert.equal(summary.requests.sent, 3, 'three requests in flight, then the stop');
    assert.equal(summary.sent, tally.events().length);
    assert.equal(summary.acknowledged, 0);
    assert.deepEqual(Object.keys(summary.errors), ['no-answer']);
    assert.equal(summary.errors['no-answer']?.events, summary.sent);
    assert.match(err, /^error no-answer: no answer 5 s after the stop signal; outcome unknown$/m);
  });

  test('an unreachable Tally is an error count, not a crash', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const { summary, err } = await simulate([
      '--rate=1000',
      '--total=30',
      '--batch=10',
      `--target=http://127.0.0.1:${port}`,
    ]);
    assert.equal(summary.sent, 30);
    assert.equal(summary.failed, 30);
    assert.deepEqual(Object.keys(summary.errors), ['ECONNREFUSED']);
    // Batches of up to 10 (an event whose user has one in flight waits for the next request, so
    // a loaded machine can split them further): every event in a refused request.
    assert.equal(summary.errors.ECONNREFUSED?.events, 30);
    const requests = summary.errors.ECONNREFUSED?.requests ?? 0;
    assert.ok(requests >= 3 && requests <= 30, `${requests} requests`);
    assert.equal(summary.requests.sent, requests);
    assert.match(err, /^error ECONNREFUSED: /m);
  });
  test('--retry-for sends a transiently failed request again, same ids and time, in user order; --ledger lists what was acknowledged', async (t) => {
    // Every third request is refused with 503 on its first attempt; one request is refused for good (400).
    const attempts = new Map<string, number>();
    let firstRefused: string | undefined;
    const tally = await startFakeTally(t, (index, events) => {
      const key = events[0]!.id;
      const n = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, n);
      if (index === 4) {
        firstRefused = key;
        return { status: 400, message: 'events[0].type: bad' };
      }
      if (key === firstRefused) return { status: 400, message: 'events[0].type: bad' };
      return n === 1 && index % 3 === 0 ? { status: 503, message: 'Kafka unavailable' } : { status: 200 };
    });
    const dir = mkdtempSync(join(tmpdir(), 'tally-ledger-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const ledgerPath = join(dir, 'acked.ndjson');
    const { summary, out } = await simulate([
      '--scenario=transactions',
      '--rate=2000',
      '--total=400',
      '--batch=20',
      '--concurrency=4',
      '--users=15',
      '--retry-for=30s',
      `--ledger=${ledgerPath}`,
      `--target=${tally.url}`,
    ]);
    // Batches hold up to 20 events; a loaded machine can split them further (an event whose user
    // has one in flight waits for the next request), so the refused request's size is read back.
    const refused = tally.received.filter((r) => r.status === 400);
    assert.equal(refused.length, 1, 'the 400 is final: not retried');
    const refusedEvents = refused[0]!.events.length;
    assert.ok(refusedEvents >= 1 && refusedEvents <= 20);
    assert.equal(summary.sent, 400);
    assert.equal(summary.failed, refusedEvents, 'the 400 is final: its events fail');
    assert.equal(summary.acknowledged, 400 - refusedEvents, 'every 503 was retried until acknowledged');
    assert.ok(summary.retries.requests >= 5, `retries: ${JSON.stringify(summary.retries)}`);
    assert.deepEqual(Object.keys(summary.retries.byCode), ['503']);
    assert.match(out, /retries .* sent again after 503×/);
    assert.equal(tally.overlaps(), 0, 'a retried request keeps its users: none overtakes it');

    // A retry repeats the events exactly: same ids, same occurred_at.
    const byId = new Map<string, Event[]>();
    for (const e of tally.events()) byId.set(e.id, [...(byId.get(e.id) ?? []), e]);
    let repeated = 0;
    for (const copies of byId.values())
      if (copies.length > 1) {
        repeated++;
        for (const copy of copies) assert.deepEqual(copy, copies[0]);
      }
    const sentAgain = new Set(
      tally.received.filter((r) => r.status === 503).flatMap((r) => r.events.map((e) => e.id)),
    );
    assert.ok(sentAgain.size > 0);
    assert.equal(repeated, sentAgain.size, 'exactly the events of refused-for-now requests were sent again');

    // The ledger holds exactly the acknowledged events, each once.
    const lines = readFileSync(ledgerPath, 'utf8').trimEnd().split('\n');
    const entries = lines.map(
      (line) => JSON.parse(line) as { id: string; type: string; occurredAtMs: number },
    );
    assert.equal(entries.length, 400 - refusedEvents);
    assert.equal(new Set(entries.map((e) => e.id)).size, 400 - refusedEvents);
    const acknowledgedIds = new Set(
      tally.received.filter((r) => r.status === 200).flatMap((r) => r.events.map((e) => e.id)),
    );
    assert.deepEqual(new Set(entries.map((e) => e.id)), acknowledgedIds);
    for (const entry of entries) {
      const sent = byId.get(entry.id)![0]!;
      assert.equal(entry.occurredAtMs, timestampMs(sent.occurredAt!));
      assert.deepEqual((entry as { attributes?: Record<string, string> }).attributes ?? {}, {
        ...sent.attributes,
      });
    }
  });

  test('--ledger to a path that cannot be written is refused before anything is sent', async () => {
    const err = new Capture();
    const code = await simulateCommand(['--ledger=/nonexistent-dir/x.ndjson', '--total=5'], {
      out: new Capture(),
      err,
    });
    assert.equal(code, 2);
    assert.match(err.text, /^tally simulate: --ledger: cannot write "\/nonexistent-dir\/x.ndjson": ENOENT/);
  });
});

describe('runSimulation over gRPC', () => {
  /**
   * `failEvery`: every n-th request fails UNAVAILABLE (a stream message: its range answered
   * `failed`); `streamMessages`: a stream ends UNAVAILABLE after answering that many messages.
   */
  async function startFakeIngest(
    t: TestContext,
    failEvery: number,
    streamMessages = Number.POSITIVE_INFINITY,
  ) {
    const received: { method: string; events: Event[]; ok: boolean }[] = [];
    let streams = 0;
    const fail = () => received.length % failEvery === failEvery - 1;
    const service = grpcService(
      IngestService,
      {
        async publish(request) {
          const events = request.event ? [request.event] : [];
          admit(events, Date.now());
          const ok = !fail();
          received.push({ method: 'Publish', events, ok });
          if (!ok) throw new AppError(Code.UNAVAILABLE, 'Kafka did not acknowledge in time, retry');
          return { id: events[0]!.id };
        },
        async publishBatch(request) {
          admit(request.events, Date.now());
          const ok = !fail();
          received.push({ method: 'PublishBatch', events: request.events, ok });
          if (!ok) throw new AppError(Code.UNAVAILABLE, 'Kafka did not acknowledge in time, retry');
          return { ids: request.events.map((e) => e.id) };
        },
        async publishStream() {
          throw new AppError(Code.UNIMPLEMENTED, 'not used');
        },
        async *publishStreamAcked(requests) {
          streams++;
          let seq = 1;
          let answered = 0;
          for await (const request of requests) {
            admit(request.events, Date.now());
            const ok = !fail();
            received.push({ method: 'PublishStreamAcked', events: request.events, ok });
            const range = { firstSeq: BigInt(seq), lastSeq: BigInt(seq + request.events.length - 1) };
            seq += request.events.length;
            yield ok
              ? { result: { case: 'acked', value: range } }
              : { result: { case: 'failed', value: { ...range, message: 'not acknowledged in time' } } };
            if (++answered === streamMessages)
              throw new AppError(
                Code.UNAVAILABLE,
                'the server is draining: send the rest to another instance',
              );
          }
        },
      },
      { logger: createLogger('error'), accepting: () => true },
    );
    const server = await startGrpcServer([service], { host: '127.0.0.1', port: 0, maxMessageBytes: 4 << 20 });
    t.after(() => server.shutdown(1000));
    return {
      address: `grpc://127.0.0.1:${server.port}`,
      port: server.port,
      received,
      streams: () => streams,
    };
  }

  test('grpc+stream: one PublishStreamAcked stream, a new one when it ends; failed ranges and ended streams are sent again with --retry-for', async (t) => {
    const ingest = await startFakeIngest(t, 7, 12);
    const { summary } = await simulate([
      '--scenario=clickstream',
      '--rate=5000',
      '--total=600',
      '--batch=20',
      '--retry-for=20s',
      `--target=grpc+stream://127.0.0.1:${ingest.port}`,
    ]);
    assert.equal(summary.transport, 'gRPC PublishStreamAcked');
    assert.ok(ingest.received.every((r) => r.method === 'PublishStreamAcked'));
    assert.ok(
      ingest.received.some((r) => !r.ok),
      'some ranges were answered failed',
    );
    assert.ok(ingest.streams() > 1, `a new stream after each end (${ingest.streams()} streams)`);
    assert.equal(summary.sent, 600);
    assert.equal(summary.acknowledged, 600);
    // Every event the simulator counts as acknowledged was acked by the server, once.
    const ackedIds = new Set(ingest.received.filter((r) => r.ok).flatMap((r) => r.events.map((e) => e.id)));
    assert.equal(ackedIds.size, 600);
  });

  test('PublishBatch for batches; UNAVAILABLE counted by code; counts match what was acknowledged', async (t) => {
    const ingest = await startFakeIngest(t, 5);
    const { summary, err } = await simulate([
      '--scenario=orders',
      '--rate=5000',
      '--total=1000',
      '--batch=40',
      `--target=${ingest.address}`,
    ]);
    assert.equal(summary.transport, 'gRPC PublishBatch');
    assert.ok(ingest.received.every((r) => r.method === 'PublishBatch'));
    const failed = ingest.received.filter((r) => !r.ok);
    assert.ok(failed.length > 0);
    assert.equal(summary.sent, 1000);
    assert.deepEqual(summary.errors, {
      UNAVAILABLE: {
        requests: failed.length,
        events: failed.reduce((n, r) => n + r.events.length, 0),
        messages: ['Kafka did not acknowledge in time, retry'],
      },
    });
    assert.deepEqual(
      acknowledgedCounts(summary),
      countEvents(ingest.received.filter((r) => r.ok).flatMap((r) => r.events)),
    );
    assert.match(err, /^error UNAVAILABLE: Kafka did not acknowledge in time, retry$/m);
  });

  test('Publish for --batch 1, with values and attributes intact', async (t) => {
    const ingest = await startFakeIngest(t, 1_000_000);
    const { summary } = await simulate([
      '--scenario=transactions',
      '--rate=1000',
      '--total=25',
      '--batch=1',
      `--target=${ingest.address}`,
    ]);
    assert.equal(summary.transport, 'gRPC Publish');
    assert.equal(summary.acknowledged, 25);
    assert.equal(ingest.received.length, 25);
    for (const { events } of ingest.received) {
      const [e] = events;
      assert.equal(e?.type, 'transaction');
      assert.ok((e?.value ?? 0) > 0);
      assert.match(e?.attributes.card ?? '', /\*{6}/);
    }
  });
});

describe('progress', () => {
  test('formatProgress shows elapsed, sent, acknowledged, errors by code, rate and latency', () => {
    const line = formatProgress({
      elapsedMs: 12_040,
      sent: 2400,
      acknowledged: 2350,
      failed: 50,
      retried: 0,
      errorsByCode: [
        ['503', 40],
        ['400', 10],
      ],
      ratePerSecond: 199.6,
      p50Ms: 3.125,
      p99Ms: 12.43,
      inFlight: 2,
      missed: 0,
    });
    assert.equal(
      line,
      '[  12.0s] sent 2,400 · acked 2,350 · errors 503×40 400×10 · 200/s · p50 3.13 ms · p99 12.4 ms · in flight 2',
    );
  });

  test('on a terminal the line is rewritten in place about once a second', async (t) => {
    const tally = await startFakeTally(t);
    const out = new Capture();
    const err = new Capture();
    err.isTTY = true;
    err.columns = 200;
    const options = parseSimulateArgs([
      '--rate=100',
      '--duration=1.3s',
      '--batch=10',
      `--target=${tally.url}`,
    ]);
    await runSimulation(options, { out, err });
    const clear = '\r\x1b[2K';
    const lines = err.text.split(clear).filter((line) => line !== '');
    assert.ok(err.text.startsWith(clear), 'each line starts by clearing the previous one');
    assert.equal(lines.length, 1, 'one line per second of a 1.3 s run');
    assert.match(
      lines[0]!,
      /^\[ {3}1\.0s\] sent \d+ · acked \d+ · errors 0 · [\d.]+\/s · p50 .* in flight \d+$/,
    );
    assert.ok(err.text.endsWith(clear), 'the line is cleared before the summary');
    assert.ok(!err.text.includes('\n'), 'no new lines on a terminal');
  });
});
