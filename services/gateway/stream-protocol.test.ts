import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseClientMessage } from './stream-protocol.ts';

const limits = { maxTargets: 3, maxTargetChars: 10 };
const parse = (value: unknown) =>
  parseClientMessage(typeof value === 'string' ? value : JSON.stringify(value), limits);

test('well-formed messages parse, duplicate targets fold, the id is kept', () => {
  assert.deepEqual(parse({ op: 'subscribe', channel: 'dashboard' }), {
    op: 'subscribe',
    channel: 'dashboard',
  });
  assert.deepEqual(parse({ op: 'subscribe', channel: 'counters', targets: ['a', 'b', 'a'], id: 7 }), {
    op: 'subscribe',
    channel: 'counters',
    targets: ['a', 'b'],
    id: 7,
  });
  assert.deepEqual(parse({ op: 'unsubscribe', channel: 'counters' }), {
    op: 'unsubscribe',
    channel: 'counters',
  });
  assert.deepEqual(parse({ op: 'unsubscribe', channel: 'counters', targets: ['a'] }), {
    op: 'unsubscribe',
    channel: 'counters',
    targets: ['a'],
  });
});

test('bad messages are refused with a reason naming the field', () => {
  const cases: [unknown, string, RegExp][] = [
    ['{nope', 'message', /^message: is not valid JSON/],
    [[1], 'message', /^message: must be a JSON object/],
    ['"text"', 'message', /^message: must be a JSON object/],
    [{ channel: 'dashboard' }, 'op', /^op: is required/],
    [
      { op: 'listen', channel: 'dashboard' },
      'op',
      /^op: must be "subscribe" or "unsubscribe", not "listen"$/,
    ],
    [{ op: 'subscribe' }, 'channel', /^channel: is required/],
    [
      { op: 'subscribe', channel: 7 },
      'channel',
      /^channel: must be "dashboard", "counters", "notifications" or "entities", not number 7$/,
    ],
    [{ op: 'subscribe', channel: 'counters' }, 'targets', /^targets: is required with channel "counters"/],
    [{ op: 'subscribe', channel: 'counters', targets: 'a' }, 'targets', /^targets: must be an array/],
    [{ op: 'subscribe', channel: 'counters', targets: [] }, 'targets', /^targets: must not be empty$/],
    [
      { op: 'subscribe', channel: 'counters', targets: ['a', 'b', 'c', 'd'] },
      'targets',
      /^targets: must hold at most 3 targets \(got 4\)/,
    ],
    [
      { op: 'subscribe', channel: 'counters', targets: ['a', 5] },
      'targets[1]',
      /^targets\[1\]: must be a string, not number 5$/,
    ],
    [
      { op: 'subscribe', channel: 'counters', targets: [''] },
      'targets[0]',
      /^targets\[0\]: must not be empty$/,
    ],
    [
      { op: 'subscribe', channel: 'counters', targets: ['x'.repeat(11)] },
      'targets[0]',
      /^targets\[0\]: must be at most 10 characters$/,
    ],
    [
      { op: 'subscribe', channel: 'dashboard', targets: ['a'] },
      'targets',
      /only allowed with channel "counters"/,
    ],
    [{ op: 'subscribe', channel: 'dashboard', topic: 'x' }, 'topic', /^topic: is not a known field/],
    [{ op: 'subscribe', channel: 'dashboard', id: { a: 1 } }, 'id', /^id: must be a string/],
  ];
  for (const [input, field, message] of cases) {
    const result = parse(input);
    assert.ok('field' in result, `${JSON.stringify(input)} should be refused`);
    assert.equal(result.field, field, JSON.stringify(input));
    assert.match(result.message, message);
  }
});

test('a refusal echoes the id of the message when it had a valid one', () => {
  assert.deepEqual(parse({ op: 'nope', channel: 'dashboard', id: 'req-1' }), {
    field: 'op',
    message: 'op: must be "subscribe" or "unsubscribe", not "nope"',
    id: 'req-1',
  });
});

test('notifications subscriptions: a recipient, a target, a seq to resume after', () => {
  assert.deepEqual(parse({ op: 'subscribe', channel: 'notifications', recipient: 'me', afterSeq: '42' }), {
    op: 'subscribe',
    channel: 'notifications',
    recipient: 'me',
    target: '',
    afterSeq: '42',
  });
  assert.deepEqual(
    parse({ op: 'subscribe', channel: 'notifications', target: 'post/1', afterSeq: 7, id: 'n' }),
    {
      op: 'subscribe',
      channel: 'notifications',
      recipient: '',
      target: 'post/1',
      afterSeq: '7',
      id: 'n',
    },
  );
  assert.deepEqual(parse({ op: 'unsubscribe', channel: 'notifications' }), {
    op: 'unsubscribe',
    channel: 'notifications',
  });
  const refusals: [unknown, string][] = [
    [{ op: 'subscribe', channel: 'notifications', afterSeq: -1 }, 'afterSeq'],
    [{ op: 'subscribe', channel: 'notifications', afterSeq: '1e3' }, 'afterSeq'],
    [{ op: 'subscribe', channel: 'notifications', recipient: 5 }, 'recipient'],
    [{ op: 'subscribe', channel: 'notifications', target: 'x'.repeat(11) }, 'target'],
    [{ op: 'subscribe', channel: 'notifications', targets: ['a'] }, 'targets'],
    [{ op: 'subscribe', channel: 'counters', targets: ['a'], recipient: 'me' }, 'recipient'],
    [{ op: 'unsubscribe', channel: 'notifications', afterSeq: '1' }, 'afterSeq'],
  ];
  for (const [message, field] of refusals) {
    const error = parse(message) as { field?: string; message?: string };
    assert.equal(error.field, field, JSON.stringify(message));
    assert.ok(error.message?.startsWith(`${field}: `), error.message);
  }
});

test('entities subscriptions name a kind and an entity; unsubscribing may name neither', () => {
  assert.deepEqual(parse({ op: 'subscribe', channel: 'entities', kind: 'order', entity: 'o1', id: 'x' }), {
    op: 'subscribe',
    channel: 'entities',
    kind: 'order',
    entity: 'o1',
    id: 'x',
  });
  assert.deepEqual(parse({ op: 'unsubscribe', channel: 'entities' }), {
    op: 'unsubscribe',
    channel: 'entities',
  });
  const refused: [unknown, string, RegExp][] = [
    [
      { op: 'subscribe', channel: 'entities', entity: 'o1' },
      'kind',
      /^kind: is required with channel "entities"/,
    ],
    [{ op: 'subscribe', channel: 'entities', kind: 'order' }, 'entity', /^entity: is required/],
    [
      { op: 'subscribe', channel: 'entities', kind: 'order', entity: 7 },
      'entity',
      /^entity: must be a string, not number 7$/,
    ],
    [{ op: 'subscribe', channel: 'entities', kind: '', entity: 'o1' }, 'kind', /^kind: must not be empty$/],
    [
      { op: 'subscribe', channel: 'counters', targets: ['a'], kind: 'order' },
      'kind',
      /^kind: is only allowed with channel "entities"$/,
    ],
    [
      { op: 'subscribe', channel: 'entities', kind: 'order', entity: 'o1', targets: ['a'] },
      'targets',
      /^targets: is only allowed/,
    ],
  ];
  for (const [message, field, reason] of refused) {
    const parsed = parse(message) as { field?: string; message?: string };
    assert.equal(parsed.field, field, JSON.stringify(message));
    assert.match(parsed.message ?? '', reason);
  }
});
