import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defaultEventLimits, type EventInput, isIpAddress, validateEvent } from './event-rules.ts';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const valid: EventInput = {
  id: '0190a5c4-7b1e-7c3d-9f00-112233445566',
  type: 'CLICK',
  target: 'https://example.com/a',
  userId: 'user-1',
  ip: '203.0.113.7',
  value: 12.5,
  occurredAtMs: NOW - 60_000,
  attributes: { city: 'Lisbon' },
};

function violation(change: Partial<EventInput>, path = '') {
  return validateEvent({ ...valid, ...change }, defaultEventLimits, NOW, path);
}

describe('validateEvent', () => {
  test('accepts a complete event and a minimal one', () => {
    assert.equal(violation({}), undefined);
    assert.equal(
      validateEvent(
        {
          id: '',
          type: 'VIEW',
          target: 'p',
          userId: '',
          ip: '',
          value: undefined,
          occurredAtMs: undefined,
          attributes: {},
        },
        defaultEventLimits,
        NOW,
      ),
      undefined,
    );
  });

  const rejected: [string, Partial<EventInput>, string, RegExp][] = [
    ['missing type', { type: '' }, 'type', /required/],
    ['over-long type', { type: `T${'x'.repeat(64)}` }, 'type', /at most 64/],
    ['type with a space', { type: 'page view' }, 'type', /letters, digits/],
    ['missing target', { target: '' }, 'target', /required/],
    ['over-long target', { target: 'x'.repeat(2049) }, 'target', /at most 2048/],
    ['target with a control character', { target: 'a\u0000b' }, 'target', /control/],
    ['target decoded from invalid UTF-8', { target: 'a\ufffdb' }, 'target', /UTF-8/],
    ['target with a lone surrogate', { target: 'a\ud800b' }, 'target', /Unicode/],
    ['over-long id', { id: 'a'.repeat(65) }, 'id', /at most 64/],
    ['bad id', { id: 'has space' }, 'id', /UUID or ULID/],
    ['over-long user id', { userId: 'u'.repeat(129) }, 'user_id', /at most 128/],
    ['bad ip', { ip: '999.1.1.1' }, 'ip', /IPv4 or IPv6/],
    ['NaN value', { value: Number.NaN }, 'value', /finite/],
    ['Infinity value', { value: Number.POSITIVE_INFINITY }, 'value', /finite/],
    ['huge value', { value: 1e16 }, 'value', /between/],
    ['time far in the future', { occurredAtMs: NOW + 6 * 60_000 }, 'occurred_at', /future/],
    ['time older than the lateness bound', { occurredAtMs: NOW - 8 * 24 * 3600_000 }, 'occurred_at', /past/],
    ['invalid time', { occurredAtMs: Number.NaN }, 'occurred_at', /valid timestamp/],
    [
      'too many attributes',
      { attributes: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) },
      'attributes',
      /at most 32/,
    ],
    ['over-long attribute value', { attributes: { k: 'v'.repeat(1025) } }, 'attributes["k"]', /at most 1024/],
    ['bad attribute key', { attributes: { 'a b': 'v' } }, 'attributes["a b"]', /key must/],
    [
      'attributes too large in total',
      { attributes: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'v'.repeat(1000)])) },
      'attributes',
      /total/,
    ],
  ];
  for (const [name, change, field, description] of rejected) {
    test(`rejects ${name}, naming ${field}`, () => {
      const v = violation(change, 'events[3].');
      assert.ok(v, 'expected a violation');
      assert.equal(v.field, `events[3].${field}`);
      assert.match(v.description, description);
    });
  }

  test('accepts the edges of the time window', () => {
    assert.equal(violation({ occurredAtMs: NOW + 5 * 60_000 }), undefined);
    assert.equal(violation({ occurredAtMs: NOW - 7 * 24 * 3600_000 }), undefined);
  });
});

describe('isIpAddress', () => {
  test('accepts IPv4 and IPv6 forms', () => {
    for (const ip of [
      '127.0.0.1',
      '0.0.0.0',
      '::1',
      '::',
      '2001:db8::8a2e:370:7334',
      '::ffff:192.0.2.1',
      'fe80:0:0:0:0:0:0:1',
    ])
      assert.ok(isIpAddress(ip), ip);
  });
  test('rejects what is not an address', () => {
    for (const ip of [
      '256.0.0.1',
      '1.2.3',
      '01.2.3.4',
      'localhost',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      ':::',
      '12345::',
    ])
      assert.ok(!isIpAddress(ip), ip);
  });
});
