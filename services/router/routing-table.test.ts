/**
 * The router's decisions: which destinations an event goes to, as what record, in what order, and
 * what a failed transform does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { DestinationFilter, FieldMapping } from '../domain/destination-transform.ts';
import type { Destination } from '../infra/delivery/destination-store.ts';
import type { LogRecord } from '../infra/log/event-log.ts';
import { DELIVERY_HEADERS, decodeDeliveryRecord, messageIdOf } from '../pipeline/delivery-record.ts';
import { newEvent } from '../pipeline/event-codec.ts';
import type { LoggedEvent } from '../pipeline/event-consumer.ts';
import { planRoutes, routingTable } from './routing-table.ts';

const NOW = Date.UTC(2026, 0, 15, 12);

function destination(id: string, filter: Partial<DestinationFilter> = {}, fields: FieldMapping[] = []) {
  return {
    id,
    name: id,
    enabled: true,
    disabledReason: '',
    endpoint: { kind: 'kafka', topic: 'out', brokers: [] },
    filter: { eventTypes: [], targetPrefixes: [], attributes: {}, ...filter },
    transform: { fields },
    ordering: 'per_user',
    retryDelaysSeconds: [0],
    rateLimitPerSecond: undefined,
    concurrency: 10,
    signingSecrets: [],
    createdAt: new Date(NOW),
    updatedAt: new Date(NOW),
    revision: 1,
  } satisfies Destination;
}

let nextOffset = 0n;
function logged(
  init: { id: string; type: string; target?: string; userId?: string; attributes?: Record<string, string> },
  partition = 0,
): LoggedEvent {
  const offset = nextOffset++;
  return {
    event: newEvent({
      target: 'shop/checkout',
      userId: 'u1',
      ...init,
      value: 19.5,
      occurredAt: timestampFromMs(NOW),
      receivedAt: timestampFromMs(NOW + 250),
    }),
    partition,
    offset: offset + 1000n,
    position: offset,
    record: { key: null, value: new Uint8Array(), headers: {}, offset: offset + 1000n, timestampMs: NOW },
  };
}

const topicOf = (id: string) => `p.deliveries.${id}`;
const text = new TextDecoder();
const read = (r: LogRecord) => {
  const d = decodeDeliveryRecord({
    key: r.key,
    value: r.value,
    headers: r.headers!,
    offset: 0n,
    timestampMs: 0,
  });
  assert.ok(typeof d === 'object', String(d));
  return d;
};
const ids = (records: readonly LogRecord[] | undefined) =>
  (records ?? []).map((r) => r.headers![DELIVERY_HEADERS.eventId]);

test('an event goes to each destination whose filter it passes, and to no other', () => {
  const table = routingTable(
    [
      destination('all'),
      destination('purchases', { eventTypes: ['purchase', 'refund'] }),
      destination('shop-pro', { targetPrefixes: ['shop/'], attributes: { plan: 'pro' } }),
      destination('views', { eventTypes: ['view'] }),
    ],
    topicOf,
  );
  const events = [
    logged({ id: 'e1', type: 'purchase', attributes: { plan: 'pro' } }),
    logged({ id: 'e2', type: 'refund', target: 'blog/post' }),
    logged({ id: 'e3', type: 'like', attributes: { plan: 'free' } }),
    logged({ id: 'e4', type: 'like', attributes: { plan: 'pro' } }),
  ];
  const { writes, failures } = planRoutes(table, events);
  assert.deepEqual(failures, []);
  assert.deepEqual(ids(writes.get('all')?.records), ['e1', 'e2', 'e3', 'e4']);
  assert.deepEqual(ids(writes.get('purchases')?.records), ['e1', 'e2']);
  assert.deepEqual(ids(writes.get('shop-pro')?.records), ['e1', 'e4']);
  assert.equal(writes.has('views'), false, 'no record for a destination nothing matched');
  assert.equal(writes.get('purchases')?.route.topic, 'p.deliveries.purchases');
});

test('the index by type finds typed and type-less destinations, each once', () => {
  const table = routingTable(
    [
      destination('a', { eventTypes: ['x', 'x', 'y'] }),
      destination('b'),
      destination('c', { eventTypes: ['y'] }),
    ],
    topicOf,
  );
  assert.equal(table.size, 3);
  assert.deepEqual(
    table.candidates('x').map((r) => r.destinationId),
    ['a', 'b'],
  );
  assert.deepEqual(
    table.candidates('y').map((r) => r.destinationId),
    ['a', 'c', 'b'],
  );
  assert.deepEqual(
    table.candidates('z').map((r) => r.destinationId),
    ['b'],
  );
  const { writes } = planRoutes(table, [logged({ id: 'e1', type: 'x' })]);
  assert.deepEqual(ids(writes.get('a')?.records), ['e1'], 'a type named twice routes the event once');
});

test('a record is keyed by user, carries the transformed body, the message id and the event position', () => {
  const table = routingTable(
    [
      destination('plain'),
      destination('shaped', {}, [
        { to: 'event_type', source: { kind: 'field', path: 'type' } },
        { to: 'data.user', source: { kind: 'field', path: 'user_id' } },
        { to: 'text', source: { kind: 'template', template: '{{user_id}} bought {{target}}' } },
      ]),
    ],
    topicOf,
  );
  const event = logged({ id: 'e1', type: 'purchase', userId: 'u42', attributes: { plan: 'pro' } }, 3);
  const { writes } = planRoutes(table, [event]);
  const shaped = writes.get('shaped')!.records[0]!;
  assert.equal(shaped.key, 'u42');
  assert.deepEqual(JSON.parse(text.decode(shaped.value)), {
    event_type: 'purchase',
    data: { user: 'u42' },
    text: 'u42 bought shop/checkout',
  });
  const record = read(shaped);
  assert.equal(record.messageId, messageIdOf('shaped', 'e1'));
  assert.equal(record.eventType, 'purchase');
  assert.equal(record.userId, 'u42');
  assert.equal(record.occurredAtMs, NOW);
  assert.equal(record.sourcePartition, 3);
  assert.equal(
    record.sourceOffset,
    event.position,
    'the position in the events topic, not the accepted offset',
  );
  const plain = writes.get('plain')!.records[0]!;
  assert.notEqual(read(plain).messageId, record.messageId, 'one message id per destination');
  assert.deepEqual(JSON.parse(text.decode(plain.value)), {
    id: 'e1',
    type: 'purchase',
    target: 'shop/checkout',
    user_id: 'u42',
    value: 19.5,
    occurred_at: new Date(NOW).toISOString(),
    received_at: new Date(NOW + 250).toISOString(),
    attributes: { plan: 'pro' },
  });
  assert.equal(
    planRoutes(table, [logged({ id: 'e2', type: 'x', userId: '' })]).writes.get('plain')!.records[0]!.key,
    'e2',
  );
});

test('records keep the order the events were read in, per destination', () => {
  const table = routingTable([destination('a'), destination('b', { eventTypes: ['even'] })], topicOf);
  const events = Array.from({ length: 50 }, (_, i) =>
    logged({ id: `e${i}`, type: i % 2 === 0 ? 'even' : 'odd', userId: `u${i % 3}` }, i % 2),
  );
  const { writes } = planRoutes(table, events);
  assert.deepEqual(
    ids(writes.get('a')?.records),
    events.map((e) => e.event.id),
  );
  assert.deepEqual(
    ids(writes.get('b')?.records),
    events.filter((e) => e.event.type === 'even').map((e) => e.event.id),
  );
});

test('an event whose transform fails is a failure for that destination only', () => {
  const big = 'x'.repeat(1000);
  const table = routingTable(
    [
      destination('fine'),
      destination('huge', {}, [
        {
          to: 'text',
          source: {
            kind: 'template',
            template: Array.from({ length: 32 }, () => '{{attributes.blob}}').join(''),
          },
        },
      ]),
    ],
    topicOf,
  );
  const events = [
    logged({ id: 'small', type: 't', attributes: { blob: 'x' } }),
    logged({ id: 'large', type: 't', attributes: { blob: big.repeat(4) } }),
  ];
  const { writes, failures } = planRoutes(table, events);
  assert.deepEqual(ids(writes.get('fine')?.records), ['small', 'large']);
  assert.deepEqual(ids(writes.get('huge')?.records), ['small']);
  assert.equal(failures.length, 1);
  assert.equal(failures[0]!.route.destinationId, 'huge');
  assert.equal(failures[0]!.event.event.id, 'large');
  assert.match(failures[0]!.reason, /exceeds 65536 bytes/);
});

test('no destinations: nothing to write', () => {
  const { writes, failures } = planRoutes(routingTable([], topicOf), [logged({ id: 'e', type: 't' })]);
  assert.equal(writes.size, 0);
  assert.equal(failures.length, 0);
});
