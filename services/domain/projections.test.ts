import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  countDeltas,
  countKeys,
  type EntityState,
  type FoldEvent,
  foldEvent,
  ORDER_PROJECTION,
  type ProjectionSpec,
  validateProjection,
} from './projections.ts';

const P = ORDER_PROJECTION;

let seq = 0;
function ev(type: string, timeMs: number, attributes: Record<string, string> = {}, id?: string): FoldEvent {
  return {
    id: id ?? `e${String(++seq).padStart(4, '0')}`,
    type,
    target: 'store/1',
    userId: 'customer-1',
    value: undefined,
    timeMs,
    attributes: { order_id: 'o1', ...attributes },
  };
}

/** Folds events in the given order; returns the entity and the refusals. */
function run(spec: ProjectionSpec, events: FoldEvent[]): { entity?: EntityState; refused: string[] } {
  let entity: EntityState | undefined;
  const refused: string[] = [];
  for (const e of events) {
    const r = foldEvent(spec, entity, e);
    if (r.kind === 'applied') entity = r.entity;
    if (r.kind === 'refused') refused.push(r.reason);
  }
  return { entity, refused };
}

describe('validateProjection', () => {
  test('the order projection is valid as it is', () => {
    const r = validateProjection(P);
    assert.equal(r.ok, true);
  });

  test('names every field at fault', () => {
    const r = validateProjection({
      kind: 'Order',
      idAttribute: '',
      states: ['a', 'a'],
      events: [{ type: 'x', state: 'nope' }],
      attributes: [{ name: 'city', from: 'somewhere' as never }],
      transitions: [{ from: 'a', to: 'zz' }],
      terminalStates: ['q'],
      countBy: ['restaurant'],
    });
    assert.equal(r.ok, false);
    assert.deepEqual(!r.ok && r.violations.map((v) => v.field), [
      'kind',
      'id_attribute',
      'states[1]',
      'events[0].state',
      'attributes[0].from',
      'transitions[0].to',
      'terminal_states[0]',
      'count_by[0]',
    ]);
  });
});

describe('foldEvent', () => {
  test('the lifecycle in order ends delivered with its attributes', () => {
    const { entity, refused } = run(P, [
      ev('order.created', 1, { city: 'berlin' }),
      ev('order.assigned', 2, { courier: 'c1' }),
      ev('order.preparing', 3),
      ev('order.picked_up', 4, { lat: '1', lon: '2' }),
      ev('order.location', 5, { lat: '3', lon: '4' }),
      ev('order.delivered', 6, { lat: '5', lon: '6' }),
    ]);
    assert.deepEqual(refused, []);
    assert.equal(entity?.state, 'delivered');
    assert.deepEqual(entity?.attributes, {
      restaurant: 'store/1',
      customer: 'customer-1',
      city: 'berlin',
      courier: 'c1',
      lat: '5',
      lon: '6',
    });
    assert.equal(entity?.version, 6);
  });

  test('out of order: picked_up before preparing ends picked_up, with the newest location', () => {
    const created = ev('order.created', 1, { city: 'berlin' });
    const assigned = ev('order.assigned', 2);
    const preparing = ev('order.preparing', 3);
    const picked = ev('order.picked_up', 4, { lat: '1', lon: '2' });
    const location = ev('order.location', 5, { lat: '3', lon: '4' });
    const { entity, refused } = run(P, [created, picked, location, assigned, preparing]);
    assert.deepEqual(refused, []);
    assert.equal(entity?.state, 'picked_up');
    assert.equal(entity?.attributes.lat, '3');
    assert.equal(entity?.last.eventId, picked.id);
  });

  test('every order of the same events gives the same state and attributes', () => {
    const events = [
      ev('order.created', 10, { city: 'berlin' }),
      ev('order.assigned', 20, { courier: 'c1' }),
      ev('order.assigned', 25, { courier: 'c2' }),
      ev('order.preparing', 30),
      ev('order.picked_up', 40, { lat: '1', lon: '1' }),
      ev('order.location', 45, { lat: '2', lon: '2' }),
    ];
    const expected = run(P, events).entity;
    for (let i = 0; i < 50; i++) {
      const shuffled = [...events].sort(() => Math.random() - 0.5);
      // A location update before any state is refused (no entity yet): put it later.
      if (shuffled[0]!.type === 'order.location') shuffled.push(shuffled.shift()!);
      const { entity, refused } = run(P, shuffled);
      assert.deepEqual(refused, []);
      assert.equal(entity?.state, expected?.state);
      assert.deepEqual(entity?.attributes, expected?.attributes);
      assert.deepEqual(entity?.last, expected?.last);
    }
  });

  test('a location update keeps the state and moves no state stamp', () => {
    const { entity } = run(P, [
      ev('order.created', 1),
      ev('order.assigned', 2),
      ev('order.location', 9, { lat: '1' }),
      ev('order.preparing', 3),
    ]);
    assert.equal(entity?.state, 'preparing');
    assert.equal(entity?.attributes.lat, '1');
    const loc = ev('order.location', 10, { lat: '2' });
    const once = foldEvent(P, entity, loc);
    assert.equal(once.kind, 'applied');
    assert.deepEqual(foldEvent(P, once.kind === 'applied' ? once.entity : entity, loc), {
      kind: 'unchanged',
      stale: false,
      duplicate: true,
    });
  });

  test('a duplicate changes nothing', () => {
    const created = ev('order.created', 1, { city: 'berlin' });
    let entity = run(P, [created]).entity!;
    const again = foldEvent(P, entity, created);
    assert.deepEqual(again, { kind: 'unchanged', stale: false, duplicate: true });
    entity = run(P, [created, ev('order.assigned', 2)]).entity!;
    assert.equal(foldEvent(P, entity, created).kind, 'unchanged');
  });

  test('ties in event time go to the later offset of one partition', () => {
    const a = { ...ev('order.created', 5, {}, 'b'), partition: 1, position: 7 };
    const b = { ...ev('order.assigned', 5, {}, 'a'), partition: 1, position: 8 };
    assert.equal(run(P, [b, a]).entity?.state, 'assigned');
    assert.equal(run(P, [a, b]).entity?.state, 'assigned');
  });

  test('ties in event time across partitions go to the greater event id', () => {
    const a = ev('order.created', 5, {}, 'a');
    const b = ev('order.assigned', 5, {}, 'b');
    assert.equal(run(P, [b, a]).entity?.state, 'assigned');
    assert.equal(run(P, [a, b]).entity?.state, 'assigned');
  });

  test('a move backwards is refused with its reason; a terminal state is left by nothing', () => {
    const { entity, refused } = run(P, [
      ev('order.created', 1),
      ev('order.delivered', 2),
      ev('order.created', 3),
      ev('order.location', 4, { lat: '1' }),
    ]);
    assert.equal(entity?.state, 'delivered');
    assert.deepEqual(refused, [
      'order o1: order is delivered (terminal): delivered → created is not allowed',
      'order o1 is delivered (terminal): order.location is not allowed',
    ]);
  });

  test('without allowSkip, only the listed transitions, and an entity starts at the first state', () => {
    const strict = { ...P, allowSkip: false };
    const { entity, refused } = run(strict, [ev('order.created', 1), ev('order.picked_up', 2)]);
    assert.equal(entity?.state, 'created');
    assert.deepEqual(refused, ['order o1: created → picked_up is not an allowed transition of order']);
    assert.deepEqual(run(strict, [ev('order.assigned', 1)]).refused, [
      'order o1 must start as created, not assigned',
    ]);
  });

  test('an event without the id attribute is refused', () => {
    const e = { ...ev('order.created', 1), attributes: {} };
    assert.deepEqual(foldEvent(P, undefined, e), {
      kind: 'refused',
      reason: 'order.created event without order_id',
    });
  });

  test('count deltas move an entity from its old keys to its new ones', () => {
    const before = { state: 'created', attributes: { city: 'berlin', restaurant: 'store/1' } };
    const after = { state: 'assigned', attributes: { city: 'berlin', restaurant: 'store/1' } };
    const d = [...countDeltas(countKeys(P, before), countKeys(P, after)).values()].map((x) => [
      x.key.state,
      x.key.attribute,
      x.key.value,
      x.delta,
    ]);
    assert.deepEqual(d.sort(), [
      ['assigned', '', '', 1],
      ['assigned', 'city', 'berlin', 1],
      ['assigned', 'restaurant', 'store/1', 1],
      ['created', '', '', -1],
      ['created', 'city', 'berlin', -1],
      ['created', 'restaurant', 'store/1', -1],
    ]);
    assert.equal(countDeltas(countKeys(P, after), countKeys(P, after)).size, 0);
  });
});
