import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IngestService } from '../gen/tally/v1/ingest_pb.js';
import { AppError, Code, Reason } from '../infra/app-error.ts';
import type { CallOptions, ServiceClient } from '../infra/grpc/grpc-service.ts';
import { PublishCoalescer } from './publish-coalescer.ts';

type Event = { id?: string; type?: string; ip?: string };
interface Call {
  method: 'publish' | 'publishBatch';
  events: Event[];
  options: CallOptions | undefined;
  answer(error?: unknown): void;
}

/**
 * An ingest that holds every call until the test answers it, checking events as ingest does: an
 * event of type "bad" is refused (the whole call, as ingest refuses a batch, naming the event's
 * index in ErrorInfo unless `structured` is false), and ids are "id-<type>".
 */
function fakeIngest({ structured = true } = {}) {
  const calls: Call[] = [];
  const client = {
    publish(request: { event: Event }, options?: CallOptions) {
      return new Promise((resolve, reject) => {
        calls.push({
          method: 'publish',
          events: [request.event],
          options,
          answer: (error) => {
            if (error) return reject(error);
            if (request.event.type === 'bad')
              return reject(AppError.invalidField('event.type', 'must match the pattern'));
            resolve({ id: `id-${request.event.type}` });
          },
        });
      });
    },
    publishBatch(request: { events: Event[] }, options?: CallOptions) {
      return new Promise((resolve, reject) => {
        calls.push({
          method: 'publishBatch',
          events: request.events,
          options,
          answer: (error) => {
            if (error) return reject(error);
            const bad = request.events.findIndex((e) => e.type === 'bad');
            if (bad >= 0)
              return reject(
                AppError.invalidField(
                  `events[${bad}].type`,
                  'must match the pattern',
                  structured ? { reason: Reason.INVALID_EVENT, metadata: { index: String(bad) } } : {},
                ),
              );
            resolve({ ids: request.events.map((e) => `id-${e.type}`) });
          },
        });
      });
    },
  };
  return { calls, client: client as unknown as ServiceClient<(typeof IngestService)['method']> };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
const options = { maxInFlight: 2, maxBatchEvents: 1000, maxBatchBytes: 10_000 };

test('under light load each event goes alone, at once, with its caller address', async () => {
  const { calls, client } = fakeIngest();
  const coalescer = new PublishCoalescer(client, options);
  const id = coalescer.publish({
    event: { type: 'a' },
    clientIp: '10.0.0.1',
    timeoutMs: 5_000,
    sizeHint: 10,
  });
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.method, 'publish');
  assert.deepEqual(calls[0]!.options?.metadata, { 'x-forwarded-for': '10.0.0.1' });
  assert.ok(calls[0]!.options!.timeoutMs! <= 5_000);
  calls[0]!.answer();
  assert.equal(await id, 'id-a');
});

test('while the calls in flight are full, waiting events share the next call, each keeping its answer', async () => {
  const { calls, client } = fakeIngest();
  const coalescer = new PublishCoalescer(client, options);
  const ids = ['a', 'b', 'c', 'd', 'e'].map((type, i) =>
    coalescer.publish({ event: { type }, clientIp: `10.0.0.${i}`, sizeHint: 10 }),
  );
  assert.equal(calls.length, 2, 'two calls in flight, the rest wait');
  assert.equal(coalescer.waiting, 3);
  calls[0]!.answer();
  await tick();
  assert.equal(calls.length, 3);
  assert.equal(calls[2]!.method, 'publishBatch');
  // Each event carries its own caller's address, which a lone call sends as x-forwarded-for.
  assert.deepEqual(calls[2]!.events, [
    { type: 'c', ip: '10.0.0.2' },
    { type: 'd', ip: '10.0.0.3' },
    { type: 'e', ip: '10.0.0.4' },
  ]);
  calls[1]!.answer();
  calls[2]!.answer();
  assert.deepEqual(await Promise.all(ids), ['id-a', 'id-b', 'id-c', 'id-d', 'id-e']);
});

test("an invalid event in a shared call gets a lone call's error; the others are written", async () => {
  const { calls, client } = fakeIngest();
  const coalescer = new PublishCoalescer(client, options);
  const first = [
    coalescer.publish({ event: { type: 'x' }, clientIp: '', sizeHint: 1 }),
    coalescer.publish({ event: { type: 'y' }, clientIp: '', sizeHint: 1 }),
  ];
  const shared = ['a', 'bad', 'c'].map((type) =>
    coalescer.publish({ event: { type, ip: '192.0.2.1' }, clientIp: '10.0.0.9', sizeHint: 1 }).then(
      (id) => id,
      (error: AppError) => error,
    ),
  );
  calls[0]!.answer();
  await tick();
  assert.equal(calls[2]!.method, 'publishBatch');
  // A given ip is kept.
  assert.deepEqual(
    calls[2]!.events.map((e) => e.ip),
    ['192.0.2.1', '192.0.2.1', '192.0.2.1'],
  );
  calls[2]!.answer(); // refused: events[1].type
  await tick();
  const bad = await shared[1]!;
  assert.ok(bad instanceof AppError, 'the invalid event was accepted');
  assert.equal(bad.code, Code.INVALID_ARGUMENT);
  assert.equal(bad.field, 'event.type');
  assert.equal(bad.message, 'event.type: must match the pattern');
  assert.equal(calls.length, 4, 'the valid events are sent again');
  assert.deepEqual(
    calls[3]!.events.map((e) => e.type),
    ['a', 'c'],
  );
  calls[3]!.answer();
  calls[1]!.answer();
  assert.deepEqual(await Promise.all([...first, shared[0], shared[2]]), ['id-x', 'id-y', 'id-a', 'id-c']);
});

test('a refusal without the structured index is not read from the field path: each event goes alone', async () => {
  const { calls, client } = fakeIngest({ structured: false });
  const coalescer = new PublishCoalescer(client, options);
  const first = [
    coalescer.publish({ event: { type: 'x' }, clientIp: '', sizeHint: 1 }),
    coalescer.publish({ event: { type: 'y' }, clientIp: '', sizeHint: 1 }),
  ];
  const shared = ['a', 'bad'].map((type) =>
    coalescer.publish({ event: { type }, clientIp: '', sizeHint: 1 }).then(
      (id) => id,
      (error: AppError) => error,
    ),
  );
  calls[0]!.answer();
  calls[1]!.answer();
  await tick();
  assert.equal(calls[2]!.method, 'publishBatch');
  calls[2]!.answer(); // refused as events[1].type, with no index detail
  await tick();
  assert.deepEqual(
    calls.slice(3).map((c) => [c.method, c.events.map((e) => e.type)]),
    [
      ['publish', ['a']],
      ['publish', ['bad']],
    ],
  );
  for (const call of calls.slice(3)) call.answer();
  const [a, bad] = await Promise.all(shared);
  assert.equal(a, 'id-a');
  assert.ok(bad instanceof AppError);
  assert.equal(bad.field, 'event.type');
  assert.deepEqual(await Promise.all(first), ['id-x', 'id-y']);
});

test('a failure of the call (the log away) is every event of it', async () => {
  const { calls, client } = fakeIngest();
  const coalescer = new PublishCoalescer(client, options);
  const all = ['a', 'b', 'c', 'd'].map((type) =>
    coalescer.publish({ event: { type }, clientIp: '', sizeHint: 1 }),
  );
  calls[0]!.answer();
  await tick();
  const unavailable = new AppError(Code.UNAVAILABLE, 'the event log did not acknowledge within 10000 ms');
  calls[2]!.answer(unavailable);
  const results = await Promise.allSettled(all.slice(2));
  assert.deepEqual(
    results.map((r) => (r.status === 'rejected' ? (r.reason as AppError).code : r.value)),
    [Code.UNAVAILABLE, Code.UNAVAILABLE],
  );
  calls[1]!.answer();
  assert.equal(await all[1], 'id-b');
});

test('calls stay within the event and byte bounds, and an event of unknown size goes alone', async () => {
  const { calls, client } = fakeIngest();
  const coalescer = new PublishCoalescer(client, { maxInFlight: 1, maxBatchEvents: 2, maxBatchBytes: 100 });
  const publish = (type: string, sizeHint?: number) =>
    coalescer.publish({ event: { type }, clientIp: '', sizeHint });
  const all = [
    publish('0', 1),
    publish('a', 1),
    publish('b', 1),
    publish('c', 1),
    publish('big', 60),
    publish('d', 50),
    publish('u'),
  ];
  for (let i = 0; i < 5; i++) {
    calls[i]!.answer();
    await tick();
  }
  assert.deepEqual(
    calls.map((c) => c.events.map((e) => e.type)),
    [['0'], ['a', 'b'], ['c', 'big'], ['d'], ['u']],
  );
  await Promise.all(all);
});

test('an event whose caller stopped waiting is not sent', async () => {
  const { calls, client } = fakeIngest();
  const coalescer = new PublishCoalescer(client, { ...options, maxInFlight: 1 });
  const first = coalescer.publish({ event: { type: 'a' }, clientIp: '', sizeHint: 1 });
  const late = coalescer.publish({ event: { type: 'b' }, clientIp: '', timeoutMs: 1, sizeHint: 1 });
  await new Promise((resolve) => setTimeout(resolve, 20));
  calls[0]!.answer();
  await assert.rejects(late, (error: AppError) => error.code === Code.DEADLINE_EXCEEDED);
  assert.equal(await first, 'id-a');
  assert.equal(calls.length, 1);
});
