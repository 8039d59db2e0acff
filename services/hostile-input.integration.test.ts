/**
 * Hostile input over REST and gRPC, as properties (fast-check): random bytes, random and
 * truncated JSON, deep nesting, huge and invalid-UTF-8 bodies, odd numbers, mutated events,
 * random protobuf bytes, arbitrary Event fields, oversized batches and messages, a trickled
 * body and a connection flood. Every rejection is a clean 4xx / non-OK gRPC status naming the
 * problem, never a 5xx, a hang or a crash; rejected input never reaches Kafka; memory stays bounded.
 *
 * The seed is fixed under CI, random otherwise (printed as a diagnostic); TALLY_TEST_SEED forces one.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { create, fromBinary, fromJson, type JsonValue, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { defaultEventLimits, isIpAddress, validateEvent } from './domain/event-rules.ts';
import { type Event, EventSchema } from './gen/tally/v1/event_pb.js';
import { PublishBatchRequestSchema, PublishRequestSchema } from './gen/tally/v1/ingest_pb.js';
import { type AppError, Code } from './infra/app-error.ts';
import { toEventInput } from './pipeline/event-codec.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, type EventInit, ingestClient } from './testing/tally-client.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

const SEED = process.env.TALLY_TEST_SEED
  ? Number(process.env.TALLY_TEST_SEED)
  : process.env.CI
    ? 20261122
    : Math.floor(Math.random() * 2 ** 31);
const REQUEST_TIMEOUT_MS = 3_000;
const MAX_BODY = 1_048_576;
const MAX_GRPC = 4 * 1024 * 1024;
const RUNS = 150;
const VALID = {
  type: 'CLICK',
  target: 'https://x.example/a',
  userId: 'u1',
  value: 1.5,
  attributes: { k: 'v' },
};
const EVENT_PATHS = ['/v1/events', '/v1/events:batch'];
const LEGACY: [string, string][] = [
  ['PUT', '/event_generate/'],
  ['POST', '/event_track/'],
  ['POST', '/event_report/'],
];
const ROUTES: [string, string][] = [...EVENT_PATHS.map((p): [string, string] => ['POST', p]), ...LEGACY];

interface Answer {
  status: number;
  text: string;
  body: unknown;
}

/** One REST request with raw bytes, bounded by a timeout (a hang fails the property). */
async function send(port: number, method: string, path: string, body?: Uint8Array | string): Promise<Answer> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: response.status, text, body: parsed };
}

/** A clean rejection: 4xx with `{"error":{"code","status","message"}}`; returns the error. */
function assertRejected(r: Answer, what: string, status?: number) {
  if (status !== undefined) assert.equal(r.status, status, `${what}: ${r.text.slice(0, 300)}`);
  assert.ok(r.status >= 400 && r.status < 500, `${what}: a 4xx, got ${r.status} ${r.text.slice(0, 300)}`);
  const error = (r.body as { error?: { code: unknown; status: unknown; message: unknown; field?: unknown } })
    ?.error;
  assert.ok(error, `${what}: a JSON error body, got ${r.text.slice(0, 300)}`);
  assert.equal(error.code, r.status, what);
  assert.ok(typeof error.status === 'string' && error.status !== '', `${what}: an error status`);
  assert.ok(typeof error.message === 'string' && error.message !== '', `${what}: an error message`);
  return error as { code: number; status: string; message: string; field?: string };
}

/** What the server must answer, decided with the same rules: accepted events, or the field at fault. */
type Verdict = { ok: true; events: number } | { ok: false; field?: string };

function afterWire(event: Event): Event {
  return fromBinary(EventSchema, toBinary(EventSchema, event));
}

function judgeEvents(events: Event[], prefix: (i: number) => string): Verdict {
  for (const [i, event] of events.entries()) {
    const v = validateEvent(toEventInput(afterWire(event)), defaultEventLimits, Date.now(), prefix(i));
    if (v) return { ok: false, field: v.field };
  }
  return { ok: true, events: events.length };
}

function judge(method: string, path: string, bytes: Uint8Array): Verdict {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return { ok: false, field: 'body' };
  }
  if (bytes.length === 0) return { ok: false, field: 'body' };
  const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
  try {
    if (path === '/v1/events') {
      const request = fromJson(PublishRequestSchema, { event: parsed as JsonValue });
      if (!request.event) return { ok: false, field: 'event' };
      return judgeEvents([request.event], () => 'event.');
    }
    if (path === '/v1/events:batch') {
      if (!isObject) return { ok: false, field: 'body' };
      const request = fromJson(PublishBatchRequestSchema, parsed as JsonValue);
      if (request.events.length > 1000) return { ok: false, field: 'events' };
      return judgeEvents(request.events, (i) => `events[${i}].`);
    }
  } catch {
    return { ok: false }; // protobuf JSON mapping refuses it: some field or the body
  }
  if (!isObject) return { ok: false, field: 'body' };
  const body = parsed as Record<string, unknown>;
  const str = (k: string) => (body[k] === undefined || body[k] === null ? '' : body[k]);
  if (method === 'PUT') {
    for (const k of ['uuid', 'type', 'ip', 'url'])
      if (typeof str(k) !== 'string') return { ok: false, field: k };
    // The seed routes drop an ip that is not an address (it is kept as the attribute raw_ip).
    const ip = str('ip') as string;
    const event = create(EventSchema, {
      id: str('uuid') as string,
      type: str('type') as string,
      ip: isIpAddress(ip) ? ip : '',
      target: str('url') as string,
    });
    const v = judgeEvents([event], () => 'event.');
    return v.ok ? v : { ok: false };
  }
  return { ok: false }; // a query route: an object with the right strings is a 200 reading nothing
}

/** Checks a REST answer against the verdict; returns the events Kafka received. */
function check(method: string, path: string, bytes: Uint8Array, r: Answer): number {
  const what = `${method} ${path} ${JSON.stringify(Buffer.from(bytes).toString('latin1').slice(0, 200))}`;
  const verdict = judge(method, path, bytes);
  const queryRoute = path === '/event_track/' || path === '/event_report/';
  if (r.status === 200) {
    assert.ok(verdict.ok || queryRoute, `${what}: accepted although invalid (${JSON.stringify(verdict)})`);
    return verdict.ok ? verdict.events : 0;
  }
  const error = assertRejected(r, what);
  assert.ok(!verdict.ok || queryRoute || r.status === 413, `${what}: refused although valid: ${r.text}`);
  if (!verdict.ok && verdict.field && r.status === 400)
    assert.equal(error.field, verdict.field, `${what}: ${error.message}`);
  if (path.startsWith('/v1/') && r.status === 400)
    assert.ok(typeof error.field === 'string' && error.field !== '', `${what}: names a field: ${r.text}`);
  return 0;
}

interface RawAnswer {
  code: number;
  details: string;
  value?: Buffer;
}

/** A unary call with arbitrary bytes as the request message. */
function rawUnary(client: grpc.Client, path: string, bytes: Buffer): Promise<RawAnswer> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + 15_000 },
      (error, value) =>
        resolve(error ? { code: error.code, details: error.details } : { code: 0, details: '', value }),
    );
  });
}

const BAD_GRPC = new Set([
  grpc.status.UNKNOWN,
  grpc.status.INTERNAL,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.UNAVAILABLE,
  grpc.status.CANCELLED,
]);

function rssKiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? Number.NaN);
}

/** Sends `request` on a fresh connection; resolves with what came back and when the socket closed. */
function rawExchange(
  port: number,
  request: string | Buffer,
  timeoutMs: number,
): Promise<{ response: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = new Socket();
    let response = '';
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ response, closed, ms: Date.now() - started });
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('data', (d) => {
      response += d.toString('latin1');
    });
    socket.on('error', () => done(true));
    socket.on('close', () => done(true));
    socket.connect(port, '127.0.0.1', () => socket.write(request));
  });
}

describe('hostile input over REST and gRPC', () => {
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  let tally: TallyProcess;
  let pid: number;
  let rssBefore: number;
  /** Events the server rightly accepted: the end offsets must move by exactly this. */
  let accepted = 0n;
  let offsetsBefore: bigint;
  const fcOptions = (t: { diagnostic(m: string): void }, numRuns = RUNS) => {
    t.diagnostic(`fast-check seed ${SEED} (replay with TALLY_TEST_SEED=${SEED})`);
    return { seed: SEED, numRuns, endOnFailure: true };
  };

  before(async () => {
    tally = await startTally(['all'], {
      ...ns.env,
      TALLY_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    });
    pid = tally.child.pid!;
    // Warm up, then take the baseline.
    const warm = await send(tally.httpPort!, 'POST', '/v1/events', JSON.stringify(VALID));
    assert.equal(warm.status, 200, warm.text);
    accepted += 1n;
    rssBefore = rssKiB(pid);
    offsetsBefore = 0n;
  });
  after(async () => {
    try {
      const code = await tally?.kill('SIGTERM');
      assert.equal(code, 0, 'tally drains and exits 0 on SIGTERM');
    } finally {
      await backends.cleanup();
    }
  });

  const port = () => tally.httpPort!;
  /** The `tally_http_requests_total` sample with exactly `labels`, read from the gateway's /metrics. */
  const requestsCounted = async (labels: string): Promise<number> => {
    const text = (await send(port(), 'GET', '/metrics')).text;
    const line = text.split('\n').find((l) => l.startsWith(`tally_http_requests_total{${labels}} `));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
  /**
   * The log lines at level error so far. Call it after an answer of the process: the process writes
   * its log to the pipe synchronously, before it answers, and a turn of this event loop reads what
   * was already in the pipe when the answer arrived.
   */
  const errorLines = async (): Promise<string[]> => {
    await new Promise((r) => setImmediate(r));
    return tally.lines.filter((l) => /"level":"error"/.test(l));
  };
  const postAll = async (method: string, path: string, bytes: Uint8Array) => {
    const r = await send(port(), method, path, bytes);
    accepted += BigInt(check(method, path, bytes, r));
  };

  test('random bytes as a REST body are refused cleanly on every route', async (t) => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        fc.uint8Array({ maxLength: 2048 }),
        async ([m, p], bytes) => postAll(m, p, bytes),
      ),
      fcOptions(t),
    );
  });

  test('random and truncated JSON as a REST body', async (t) => {
    const text = fc.oneof(
      fc.json({ maxDepth: 4, stringUnit: 'binary' }),
      fc
        .tuple(fc.json({ maxDepth: 4 }), fc.nat())
        .map(([j, n]) => j.slice(0, j.length > 0 ? n % j.length : 0)),
      fc
        .tuple(fc.nat(), fc.constant(JSON.stringify({ events: [VALID, VALID] })))
        .map(([n, j]) => j.slice(0, n % j.length)),
      fc.nat().map((n) => JSON.stringify(VALID).slice(0, n % JSON.stringify(VALID).length)),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), text, async ([m, p], body) =>
        postAll(m, p, new TextEncoder().encode(body)),
      ),
      fcOptions(t),
    );
  });

  test('deep nesting, huge strings and invalid UTF-8', async () => {
    const cases: [string, string, Uint8Array | string, number, RegExp][] = [
      ['POST', '/v1/events', '['.repeat(100_000), 400, /malformed JSON/],
      ['POST', '/v1/events', '{"a":'.repeat(100_000), 400, /malformed JSON/],
      ['POST', '/v1/events:batch', '['.repeat(100_000) + ']'.repeat(100_000), 400, /JSON object/],
      [
        'POST',
        '/v1/events',
        `{"type":"CLICK","target":${'['.repeat(50_000)}${']'.repeat(50_000)}}`,
        400,
        /target/,
      ],
      [
        'POST',
        '/v1/events:batch',
        `{"events":[{"type":"CLICK","target":"x","attributes":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}]}`,
        400,
        /./,
      ],
      ['PUT', '/event_generate/', '['.repeat(100_000), 400, /malformed JSON/],
      ['POST', '/v1/events', JSON.stringify({ ...VALID, target: 'x'.repeat(2 * MAX_BODY) }), 413, /at most/],
      [
        'PUT',
        '/event_generate/',
        JSON.stringify({ type: 'CLICK', url: 'x'.repeat(MAX_BODY + 1) }),
        413,
        /at most/,
      ],
      ['POST', '/v1/events', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), 400, /UTF-8/],
      [
        'POST',
        '/v1/events',
        Buffer.concat([
          Buffer.from('{"type":"CLICK","target":"'),
          Buffer.from([0xc3, 0x28]),
          Buffer.from('"}'),
        ]),
        400,
        /UTF-8/,
      ],
      ['POST', '/v1/events', Buffer.from([0xed, 0xa0, 0x80]), 400, /UTF-8/], // an encoded surrogate
      ['POST', '/v1/events', '{"type":"CLICK","target":"\\ud800"}', 400, /UTF-?8|surrogate|Unicode/],
      ['POST', '/v1/events', '', 400, /empty/],
    ];
    for (const [m, p, body, status, message] of cases) {
      const r = await send(port(), m, p, body);
      const error = assertRejected(r, `${m} ${p} ${String(body).slice(0, 40)}`, status);
      assert.match(error.message, message, `${p}: ${error.message}`);
    }
  });

  test('odd numbers and wrong JSON types in event fields', async (t) => {
    const numbers = [
      'NaN',
      'Infinity',
      '-Infinity',
      '-0',
      '1e400',
      '-1e400',
      '1e16',
      '-1e16',
      '1e15',
      '-1e15',
      '123456789012345678901234567890',
      '5e-324',
      '"NaN"',
      '"Infinity"',
      '"-0"',
      '"1e999"',
      '"0x10"',
      '""',
      'true',
      'null',
      '[]',
      '{}',
      '[1]',
      '{"a":1}',
    ];
    for (const n of numbers) {
      const body = `{"type":"CLICK","target":"x","value":${n}}`;
      await postAll('POST', '/v1/events', new TextEncoder().encode(body));
    }
    const wrong = ['1', '-0', '1e400', 'true', '[]', '{}', '["a"]', '{"a":"b"}', '""', 'null'];
    for (const field of ['type', 'target', 'userId', 'user_id', 'ip', 'id', 'occurredAt', 'attributes'])
      for (const w of wrong)
        for (const p of EVENT_PATHS) {
          const entries = { type: '"CLICK"', target: '"x"', [field]: w };
          const fixed = `{${Object.entries(entries)
            .map(([k, v]) => `"${k}":${v}`)
            .join(',')}}`;
          const body = p === '/v1/events' ? fixed : `{"events":[${fixed}]}`;
          await postAll('POST', p, new TextEncoder().encode(body));
        }
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.double(),
          fc.integer(),
          fc.bigInt().map((b) => b.toString()),
        ),
        async (value) => {
          const body = `{"type":"CLICK","target":"x","value":${String(value) === 'NaN' || !Number.isFinite(Number(value)) ? JSON.stringify(String(value)) : Object.is(value, -0) ? '-0' : String(value)}}`;
          await postAll('POST', '/v1/events', new TextEncoder().encode(body));
        },
      ),
      fcOptions(t, 100),
    );
  });

  test('events mutated from a valid one: 200 only when valid, else 400 naming the field', async (t) => {
    const fields = [
      'id',
      'type',
      'target',
      'userId',
      'user_id',
      'ip',
      'value',
      'occurredAt',
      'occurred_at',
      'receivedAt',
      'attributes',
      'colour',
    ];
    const special = fc.constantFrom<JsonValue>(
      '',
      'CLICK',
      '127.0.0.1',
      '::1',
      '2026-01-01T00:00:00Z',
      new Date().toISOString(),
      '0196b6b0-0000-7000-8000-000000000000',
      'x'.repeat(3000),
      '\u0000',
      '\ufffd',
      { k: 'v' },
      Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v'])),
    );
    const mutation = fc.tuple(
      fc.constantFrom(...fields),
      fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 2, stringUnit: 'binary' }), special),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        async (mutations, batch) => {
          const event: Record<string, JsonValue> = { ...VALID };
          for (const [f, v] of mutations) event[f] = v as JsonValue;
          const body = JSON.stringify(batch ? { events: [VALID, event] } : event);
          await postAll('POST', batch ? '/v1/events:batch' : '/v1/events', new TextEncoder().encode(body));
        },
      ),
      fcOptions(t, 250),
    );
    t.diagnostic(`events accepted so far: ${accepted}`);
  });

  test('gRPC: random bytes as the Publish/PublishBatch message', async (t) => {
    const client = new grpc.Client(`127.0.0.1:${tally.grpcPort}`, grpc.credentials.createInsecure());
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('Publish', 'PublishBatch'),
          fc.uint8Array({ maxLength: 2048 }),
          async (method, bytes) => {
            const r = await rawUnary(client, `/tally.v1.IngestService/${method}`, Buffer.from(bytes));
            const what = `${method} ${Buffer.from(bytes).toString('hex').slice(0, 200)}: ${r.code} ${r.details}`;
            assert.ok(!BAD_GRPC.has(r.code), what);
            let verdict: Verdict;
            try {
              verdict =
                method === 'Publish'
                  ? (() => {
                      const req = fromBinary(PublishRequestSchema, bytes);
                      return req.event ? judgeEvents([req.event], () => 'event.') : { ok: false as const };
                    })()
                  : (() => {
                      const req = fromBinary(PublishBatchRequestSchema, bytes);
                      return req.events.length > 1000
                        ? { ok: false as const }
                        : judgeEvents(req.events, (i) => `events[${i}].`);
                    })();
            } catch {
              verdict = { ok: false };
            }
            if (r.code === grpc.status.OK) {
              assert.ok(verdict.ok, `${what}: accepted although invalid`);
              accepted += BigInt(verdict.events);
            } else {
              assert.ok(!verdict.ok, `${what}: refused although valid`);
              assert.equal(r.code, grpc.status.INVALID_ARGUMENT, what);
              assert.ok(r.details !== '', what);
            }
          },
        ),
        fcOptions(t, 300),
      );
    } finally {
      client.close();
    }
  });

  test('gRPC: arbitrary Event field values through the typed client', async (t) => {
    const ingest = ingestClient(tally.grpcPort!);
    const now = Date.now();
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.constantFrom('', 'CLICK', 'x', '127.0.0.1', '::1', 'a b', '\ud800', 'x'.repeat(3000)),
    );
    const event = fc.record(
      {
        id: text,
        type: text,
        target: text,
        userId: text,
        ip: text,
        value: fc.oneof(fc.double(), fc.constantFrom(Number.NaN, Infinity, -0, 1e15, 1e16)),
        occurredAt: fc.oneof(
          fc.record({
            seconds: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
            nanos: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
          }),
          fc.integer({ min: -10 * 86_400_000, max: 10 * 86_400_000 }).map((d) => ({
            seconds: BigInt(Math.floor((now + d) / 1000)),
            nanos: 0,
          })),
        ),
        attributes: fc.dictionary(text, text, { maxKeys: 40 }),
      },
      { requiredKeys: [] },
    );
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 3 }), async (events) => {
          const batch = events.length > 1;
          const request = batch ? { events: events as EventInit[] } : { event: events[0] as EventInit };
          const wire = batch
            ? fromBinary(
                PublishBatchRequestSchema,
                toBinary(PublishBatchRequestSchema, create(PublishBatchRequestSchema, request)),
              )
            : fromBinary(
                PublishRequestSchema,
                toBinary(PublishRequestSchema, create(PublishRequestSchema, request)),
              );
          const verdict =
            'events' in wire
              ? judgeEvents(wire.events, (i) => `events[${i}].`)
              : judgeEvents([wire.event!], () => 'event.');
          const call = batch ? ingest.publishBatch(request as never) : ingest.publish(request as never);
          const outcome = await call.then(
            () => undefined,
            (e: AppError) => e,
          );
          const what = `${JSON.stringify(events, (_, v) => (typeof v === 'bigint' ? String(v) : v)).slice(0, 300)}`;
          if (!outcome) {
            assert.ok(verdict.ok, `${what}: accepted although invalid ${JSON.stringify(verdict)}`);
            accepted += BigInt(verdict.ok ? verdict.events : 0);
          } else {
            assert.ok(!verdict.ok, `${what}: refused although valid: ${outcome.code} ${outcome.message}`);
            assert.equal(outcome.code, Code.INVALID_ARGUMENT, `${what}: ${outcome.message}`);
            assert.equal(outcome.field, verdict.field, `${what}: ${outcome.message}`);
          }
        }),
        fcOptions(t, 200),
      );
    } finally {
      ingest.close();
    }
  });

  test('gRPC: a 10,000-event batch and a message over 4 MiB', async () => {
    const ingest = ingestClient(tally.grpcPort!);
    try {
      await assert.rejects(
        ingest.publishBatch({ events: Array.from({ length: 10_000 }, () => VALID) }),
        (e: AppError) => {
          assert.equal(e.code, Code.INVALID_ARGUMENT);
          assert.equal(e.field, 'events');
          assert.match(e.message, /at most 1000/);
          return true;
        },
      );
    } finally {
      ingest.close();
    }
    // The server's own limit (not the client's): a client that would send 16 MiB.
    const client = new grpc.Client(`127.0.0.1:${tally.grpcPort}`, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 16 * 1024 * 1024,
    });
    try {
      for (const [method, message] of [
        [
          'Publish',
          toBinary(
            PublishRequestSchema,
            create(PublishRequestSchema, { event: { ...VALID, target: 'x'.repeat(MAX_GRPC + 1) } }),
          ),
        ],
        [
          'PublishBatch',
          toBinary(
            PublishBatchRequestSchema,
            create(PublishBatchRequestSchema, {
              events: Array.from({ length: 600 }, () => ({ ...VALID, target: 'y'.repeat(8 * 1024) })),
            }),
          ),
        ],
      ] as const) {
        assert.ok(message.length > MAX_GRPC);
        const r = await rawUnary(client, `/tally.v1.IngestService/${method}`, Buffer.from(message));
        assert.equal(r.code, grpc.status.RESOURCE_EXHAUSTED, `${method}: ${r.code} ${r.details}`);
      }
    } finally {
      client.close();
    }
  });

  test('a trickled body is cut off within the request timeout', async (t) => {
    const started = Date.now();
    const result = await new Promise<{ response: string; ms: number }>((resolve) => {
      const socket = new Socket();
      let response = '';
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearInterval(timer);
        clearTimeout(limit);
        socket.destroy();
        resolve({ response, ms: Date.now() - started });
      };
      const limit = setTimeout(done, REQUEST_TIMEOUT_MS + 20_000);
      socket.on('data', (d) => {
        response += d.toString('latin1');
      });
      socket.on('error', done);
      socket.on('close', done);
      socket.connect(port(), '127.0.0.1', () => {
        socket.write(
          'POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n',
        );
        timer = setInterval(() => {
          if (!socket.destroyed) socket.write('[');
        }, 500);
      });
    });
    t.diagnostic(
      `trickled body: server answered/closed after ${result.ms} ms: ${JSON.stringify(result.response.slice(0, 120))}`,
    );
    assert.ok(
      result.ms <= REQUEST_TIMEOUT_MS + 2_500,
      `closed after ${result.ms} ms, more than the ${REQUEST_TIMEOUT_MS} ms request timeout`,
    );
    if (result.response !== '') assert.match(result.response, /^HTTP\/1\.1 4\d\d /);
    // Slow headers too.
    const slowHeaders = await rawExchange(
      port(),
      'POST /v1/events HTTP/1.1\r\nhost: t\r\n',
      REQUEST_TIMEOUT_MS + 20_000,
    );
    t.diagnostic(`slow headers: closed after ${slowHeaders.ms} ms`);
    assert.ok(
      slowHeaders.closed && slowHeaders.ms <= REQUEST_TIMEOUT_MS + 2_500,
      `slow headers: ${slowHeaders.ms} ms`,
    );
  });

  test('a client hanging up mid-body is not an internal error', async () => {
    // The request is counted (499: the client left) once the gateway has handled the hang-up, and
    // so after it would have logged the error of a 500.
    const aborted = 'route="/v1/events",method="POST",code="499"';
    const abortedBefore = await requestsCounted(aborted);
    const errorsBefore = (await errorLines()).length;
    await new Promise<void>((resolve) => {
      const socket = new Socket();
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
      socket.connect(port(), '127.0.0.1', () => {
        socket.write(
          'POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"type":',
        );
        setTimeout(() => socket.destroy(), 200);
      });
    });
    await waitFor(
      async () => (await requestsCounted(aborted)) === abortedBefore + 1,
      async () => `the hang-up is not counted: ${await requestsCounted(aborted)} (before: ${abortedBefore})`,
      30_000,
      50,
    );
    const errors = (await errorLines()).slice(errorsBefore);
    assert.deepEqual(errors, [], "an aborted body is the client's problem, not a logged 500");
  });

  test('a field naming a non-ASCII attribute key is reported, not a crash (regression)', async () => {
    const event = { type: 'CLICK', target: 'x', attributes: { 'clé ü 😀': 'v' } };
    const field = 'event.attributes["clé ü 😀"]';
    const r = await send(port(), 'POST', '/v1/events', JSON.stringify(event));
    assert.equal(assertRejected(r, 'non-ASCII key', 400).field, field);
    const g = await send(
      port(),
      'PUT',
      '/event_generate/',
      JSON.stringify({ type: 'CLICK', url: 'x\u0001é' }),
    );
    assert.equal(assertRejected(g, 'non-ASCII url', 400).field, 'url');
    const ingest = ingestClient(tally.grpcPort!);
    try {
      await assert.rejects(ingest.publish({ event }), (e: AppError) => {
        assert.equal(e.code, Code.INVALID_ARGUMENT);
        assert.equal(e.field, field);
        return true;
      });
      await assert.rejects(ingest.publishBatch({ events: [VALID, event] }), (e: AppError) => {
        assert.equal(e.field, 'events[1].attributes["clé ü 😀"]');
        return true;
      });
    } finally {
      ingest.close();
    }
    assert.equal(tally.child.exitCode, null, 'the process is still up');
  });

  test('a flood of 300 concurrent bad requests, then valid requests still succeed', async () => {
    const bad = [
      'POST /v1/events HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 5\r\nconnection: close\r\n\r\n{bad}',
      'POST /v1/events:batch HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]',
      'PUT /event_generate/ HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\nconnection: close\r\n\r\n{"a"',
    ];
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => rawExchange(port(), bad[i % bad.length]!, 20_000)),
    );
    for (const [i, r] of results.entries()) {
      assert.ok(r.closed, `connection ${i} answered and closed`);
      assert.match(r.response, /^HTTP\/1\.1 400 /, `connection ${i}: ${r.response.slice(0, 200)}`);
      assert.match(r.response, /"error":\{"code":400,"status":"INVALID_ARGUMENT","message":/);
    }
    const ok = await Promise.all(
      Array.from({ length: 10 }, () => send(port(), 'POST', '/v1/events', JSON.stringify(VALID))),
    );
    for (const r of ok) assert.equal(r.status, 200, r.text);
    accepted += 10n;
  });

  test('still running, nothing rejected reached Kafka, memory bounded', async (t) => {
    assert.equal(tally.child.exitCode, null, 'the process is still up');
    assert.equal(tally.child.signalCode, null, 'the process is still up');
    const health = await send(port(), 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.equal(
      await backends.totalEndOffset(),
      offsetsBefore + accepted,
      'the events topic moved by exactly the accepted events',
    );
    const rssAfter = rssKiB(pid);
    t.diagnostic(
      `RSS before ${(rssBefore / 1024).toFixed(1)} MiB, after ${(rssAfter / 1024).toFixed(1)} MiB (+${((rssAfter - rssBefore) / 1024).toFixed(1)} MiB); ${accepted} events accepted`,
    );
    assert.ok(rssAfter - rssBefore < 300 * 1024, `RSS grew by ${(rssAfter - rssBefore) / 1024} MiB`);
    assert.deepEqual(await errorLines(), [], 'no error logged');
  });
});
