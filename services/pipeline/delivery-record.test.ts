import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DELIVERY_HEADERS,
  decodeDeliveryRecord,
  encodeDeliveryRecord,
  messageIdOf,
} from './delivery-record.ts';

test('a delivery record reads back as written; keyed by user, else by event id', () => {
  const record = {
    messageId: messageIdOf('ds_abcdefghij', 'e1'),
    eventId: 'e1',
    eventType: 'purchase',
    userId: 'u7',
    occurredAtMs: 1_765_000_000_123,
    sourcePartition: 3,
    sourceOffset: 9_007_199_254_740_993n,
    body: new TextEncoder().encode('{"a":1}'),
  };
  const written = encodeDeliveryRecord(record);
  assert.equal(written.key, 'u7');
  const read = decodeDeliveryRecord({
    key: written.key,
    value: written.value,
    headers: written.headers!,
    offset: 5n,
    timestampMs: 0,
  });
  assert.deepEqual(read, record);
  assert.equal(encodeDeliveryRecord({ ...record, userId: '' }).key, 'e1');
});

test('message ids are stable per destination and event, and differ between destinations', () => {
  assert.equal(messageIdOf('ds_a', 'e1'), messageIdOf('ds_a', 'e1'));
  assert.notEqual(messageIdOf('ds_a', 'e1'), messageIdOf('ds_b', 'e1'));
  assert.notEqual(messageIdOf('ds_a', 'e1'), messageIdOf('ds_a', 'e2'));
  assert.match(messageIdOf('ds_a', 'e1'), /^msg_[A-Za-z0-9_-]{27}$/);
});

test('a record without the headers, or with bad ones, is named as not a delivery', () => {
  const headers = Object.fromEntries(Object.values(DELIVERY_HEADERS).map((h) => [h, '1']));
  const value = new Uint8Array();
  const read = (h: Record<string, string>) =>
    decodeDeliveryRecord({ key: null, value, headers: h, offset: 0n, timestampMs: 0 });
  assert.equal(typeof read(headers), 'object');
  assert.equal(read({}), `header ${DELIVERY_HEADERS.messageId} is missing`);
  assert.equal(
    read({ ...headers, [DELIVERY_HEADERS.sourceOffset]: 'x' }),
    'header tally-source-offset is not an offset',
  );
  assert.equal(
    read({ ...headers, [DELIVERY_HEADERS.sourcePartition]: '-1' }),
    'header tally-source-partition is not a partition',
  );
});
