import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  applyTransform,
  type DeliveryEvent,
  type DestinationFilter,
  defaultPayload,
  type FieldMapping,
  matchesFilter,
  TRANSFORM_LIMITS,
  type TransformSpec,
  validateFilter,
  validateTransform,
} from './destination-transform.ts';

const T = Date.UTC(2026, 0, 15, 12, 0, 0);
const event = (over: Partial<DeliveryEvent> = {}): DeliveryEvent => ({
  id: 'evt-1',
  type: 'purchase',
  target: 'shop/checkout',
  userId: 'user-42',
  value: 19.5,
  occurredAtMs: T,
  receivedAtMs: T + 250,
  attributes: { plan: 'pro', country: 'FR' },
  ...over,
});

const filter = (over: Partial<DestinationFilter> = {}): DestinationFilter => ({
  eventTypes: [],
  targetPrefixes: [],
  attributes: {},
  ...over,
});

function checked(spec: Partial<TransformSpec>): { spec: TransformSpec; faults: string[] } {
  const faults: string[] = [];
  const out = validateTransform(spec, 'transform.', (field) => faults.push(field));
  return { spec: out, faults };
}

test('an empty filter matches every event; each part narrows it, parts ANDed', () => {
  assert.ok(matchesFilter(filter(), event()));
  assert.ok(matchesFilter(filter({ eventTypes: ['view', 'purchase'] }), event()));
  assert.ok(!matchesFilter(filter({ eventTypes: ['view'] }), event()));
  assert.ok(matchesFilter(filter({ targetPrefixes: ['blog/', 'shop/'] }), event()));
  assert.ok(!matchesFilter(filter({ targetPrefixes: ['shop/cart'] }), event()));
  assert.ok(matchesFilter(filter({ attributes: { plan: 'pro' } }), event()));
  assert.ok(!matchesFilter(filter({ attributes: { plan: 'free' } }), event()));
  assert.ok(
    !matchesFilter(filter({ attributes: { missing: '' } }), event()),
    'an absent attribute is not ""',
  );
  assert.ok(
    !matchesFilter(filter({ attributes: { toString: '' } }), event()),
    'no inherited property matches',
  );
  assert.ok(!matchesFilter(filter({ eventTypes: ['purchase'], targetPrefixes: ['blog/'] }), event()));
});

test('filter matching is what its definition says, for any event', () => {
  const name = fc.constantFrom('a', 'b', 'c');
  fc.assert(
    fc.property(
      fc.record({ type: name, target: fc.string({ maxLength: 4 }), attrs: fc.dictionary(name, name) }),
      fc.record({
        eventTypes: fc.uniqueArray(name),
        targetPrefixes: fc.uniqueArray(fc.string({ minLength: 1, maxLength: 2 })),
        attributes: fc.dictionary(name, name, { maxKeys: 2 }),
      }),
      (e, f) => {
        const ev = event({ type: e.type, target: e.target, attributes: e.attrs });
        const expected =
          (f.eventTypes.length === 0 || f.eventTypes.includes(e.type)) &&
          (f.targetPrefixes.length === 0 || f.targetPrefixes.some((p) => e.target.startsWith(p))) &&
          Object.entries(f.attributes).every(([k, v]) => e.attrs[k] === v);
        assert.equal(matchesFilter(f, ev), expected);
      },
    ),
  );
});

test('filter validation names each bad entry', () => {
  const faults: string[] = [];
  validateFilter(
    { eventTypes: Array(101).fill('x'), targetPrefixes: ['a', 'a'], attributes: { ok: 'x\u0000' } },
    'filter.',
    (f) => faults.push(f),
  );
  assert.equal(faults[0], 'filter.event_types');
  assert.ok(faults.includes('filter.target_prefixes[1]'));
  assert.ok(faults.includes('filter.attributes["ok"]'));
});

test('no transform fields: the event as its default JSON', () => {
  const result = applyTransform({ fields: [] }, event());
  assert.ok(result.ok);
  assert.deepEqual(result.body, {
    id: 'evt-1',
    type: 'purchase',
    target: 'shop/checkout',
    user_id: 'user-42',
    value: 19.5,
    occurred_at: '2026-01-15T12:00:00.000Z',
    received_at: '2026-01-15T12:00:00.250Z',
    attributes: { plan: 'pro', country: 'FR' },
  });
  assert.equal(result.bytes, JSON.stringify(result.body).length);
  const bare = defaultPayload(event({ value: undefined, occurredAtMs: undefined }));
  assert.ok(!('value' in bare) && !('occurred_at' in bare));
});

test('fields picked, renamed and nested; templates; constants; absent sources left out', () => {
  const fields: FieldMapping[] = [
    { to: 'event_type', source: { kind: 'field', path: 'type' } },
    { to: 'data.user', source: { kind: 'field', path: 'user_id' } },
    { to: 'data.plan', source: { kind: 'field', path: 'attributes.plan' } },
    { to: 'data.coupon', source: { kind: 'field', path: 'attributes.coupon' } },
    { to: 'data.amount', source: { kind: 'field', path: 'value' } },
    {
      to: 'text',
      source: { kind: 'template', template: '{{user_id}} bought {{ target }} ({{attributes.coupon}})' },
    },
    { to: 'source', source: { kind: 'constant', value: 'tally' } },
    { to: 'meta', source: { kind: 'constant', value: { version: 2, tags: ['a'] } } },
  ];
  const { spec, faults } = checked({ fields });
  assert.deepEqual(faults, []);
  const result = applyTransform(spec, event());
  assert.ok(result.ok);
  assert.deepEqual(result.body, {
    event_type: 'purchase',
    data: { user: 'user-42', plan: 'pro', amount: 19.5 },
    text: 'user-42 bought shop/checkout ()',
    source: 'tally',
    meta: { version: 2, tags: ['a'] },
  });
});

test('transform validation: paths, overlaps, sources, templates, constants — each named', () => {
  const { faults } = checked({
    fields: [
      { to: 'a', source: { kind: 'field', path: 'type' } },
      { to: 'a.b', source: { kind: 'field', path: 'type' } },
      { to: '', source: { kind: 'field', path: 'type' } },
      { to: 'x.__proto__.y', source: { kind: 'field', path: 'type' } },
      { to: '1x', source: { kind: 'field', path: 'type' } },
      { to: 'c', source: { kind: 'field', path: 'ip' } },
      { to: 'd', source: { kind: 'template', template: 'hi {{attributes}}' } },
      { to: 'e', source: { kind: 'template', template: 'hi {{type}' } },
      { to: 'f', source: { kind: 'constant', value: 'x'.repeat(5000) } },
      { to: 'g', source: undefined as never },
      { to: 'h.i.j.k.l.m.n.o.p', source: { kind: 'field', path: 'id' } },
      { to: 'q', source: { kind: 'template', template: '{{id}}'.repeat(33) } },
    ],
  });
  assert.deepEqual(faults, [
    'transform.fields[1].to',
    'transform.fields[2].to',
    'transform.fields[3].to',
    'transform.fields[4].to',
    'transform.fields[5].from',
    'transform.fields[6].template',
    'transform.fields[7].template',
    'transform.fields[8].json',
    'transform.fields[9]',
    'transform.fields[10].to',
    'transform.fields[11].template',
  ]);
  assert.deepEqual(
    checked({ fields: Array(65).fill({ to: 'a', source: { kind: 'constant', value: 1 } }) }).faults[0],
    'transform.fields',
  );
});

test('the output is bounded: a larger one fails the event, it is never built far past the bound', () => {
  const big = 'x'.repeat(1000);
  const spec: TransformSpec = {
    fields: Array.from({ length: 10 }, (_, i) => ({
      to: `f${i}`,
      source: { kind: 'template', template: '{{attributes.big}}'.repeat(32) },
    })),
  };
  assert.deepEqual(checked(spec).faults, []);
  const result = applyTransform(spec, event({ attributes: { big } }));
  assert.deepEqual(result, {
    ok: false,
    reason: `the transformed event exceeds ${TRANSFORM_LIMITS.maxOutputBytes} bytes of JSON`,
  });
  assert.ok(applyTransform(spec, event({ attributes: { big: 'x' } })).ok);
  assert.ok(!applyTransform({ fields: [] }, event(), 100).ok, 'the default payload is bounded too');
});

test('for any valid transform and event: a JSON object within the bound, no prototype reached, deterministic', () => {
  const segment = fc.stringMatching(/^[a-z_][a-z0-9_]{0,5}$/);
  const source = fc.oneof(
    fc
      .constantFrom(
        'id',
        'type',
        'target',
        'user_id',
        'value',
        'occurred_at',
        'received_at',
        'attributes',
        'attributes.k',
      )
      .map((path) => ({ kind: 'field' as const, path })),
    fc
      .array(
        fc.oneof(
          fc.string({ maxLength: 5 }).filter((s) => !s.includes('{') && !s.includes('}')),
          fc.constant('{{attributes.k}}'),
          fc.constant('{{target}}'),
        ),
        { maxLength: 6 },
      )
      .map((parts) => ({ kind: 'template' as const, template: parts.join('') })),
    fc.jsonValue({ maxDepth: 3 }).map((value) => ({ kind: 'constant' as const, value: value as never })),
  );
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ to: fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('.')), source }),
        { maxLength: 8 },
      ),
      fc.record({ target: fc.string({ maxLength: 50 }), k: fc.string({ maxLength: 200 }) }),
      fc.integer({ min: 50, max: 5000 }),
      (fields, e, max) => {
        const { spec, faults } = checked({ fields });
        fc.pre(faults.length === 0);
        const ev = event({ target: e.target, attributes: { k: e.k } });
        const result = applyTransform(spec, ev, max);
        assert.deepEqual(applyTransform(spec, ev, max), result);
        if (!result.ok) return;
        const text = JSON.stringify(result.body);
        assert.ok(Buffer.byteLength(text) <= max);
        assert.equal(result.bytes, Buffer.byteLength(text));
        assert.deepEqual(JSON.parse(text), result.body, 'plain JSON, nothing lost in serialisation');
        assert.equal(Object.getPrototypeOf(result.body), Object.prototype);
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
      },
    ),
  );
});
