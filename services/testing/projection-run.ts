/**
 * The projector's scenario over REST, shared by its integration and embedded tests: orders whose
 * events arrive out of order (picked_up before assigned and preparing, by later event time), one
 * order moved backwards (refused: dead-lettered), and the answers each API gives, bad input included.
 */
import assert from 'node:assert/strict';
import { ORDER_PROJECTION } from '../domain/projections.ts';
import { sendBatches } from './milestone-run.ts';
import type { LedgerEvent } from './projection-check.ts';
import { waitFor } from './real-servers.ts';
import { http, mapLimit } from './tally-client.ts';

const MINUTE = 60_000;

export interface OrderScenario {
  /** In sending order. */
  events: (LedgerEvent & { occurredAt: string })[];
  /** The refused event's id and reason. */
  refused: { id: string; reason: string };
}

/** `orders` orders of `prefix`, a few minutes ago; the last one delivered and then "created" again (refused). */
export function orderScenario(prefix: string, orders: number): OrderScenario {
  const t0 = Date.now() - 60 * MINUTE;
  const events: OrderScenario['events'] = [];
  const add = (o: number, type: string, minute: number, attributes: Record<string, string> = {}) => {
    const occurredAtMs = t0 + o * 1000 + minute * MINUTE;
    events.push({
      id: `${prefix}-o${o}-${type.slice('order.'.length)}-${minute}`,
      type,
      target: `store/${prefix}-${o % 3}`,
      userId: `customer-${prefix}-${o}`,
      occurredAtMs,
      occurredAt: new Date(occurredAtMs).toISOString(),
      attributes: { order_id: `${prefix}-o${o}`, city: o % 2 ? 'berlin' : 'paris', ...attributes },
    });
  };
  for (let o = 0; o < orders - 1; o++) {
    add(o, 'order.created', 0);
    // Out of order: picked_up and a location first, then assigned and preparing.
    if (o % 2 === 0) {
      add(o, 'order.picked_up', 12, { lat: '52.51', lon: '13.40' });
      add(o, 'order.location', 14, { lat: '52.52', lon: '13.41' });
      add(o, 'order.assigned', 1, { courier: `courier-${o}` });
      add(o, 'order.preparing', 2);
    } else {
      add(o, 'order.assigned', 1, { courier: `courier-${o}` });
      add(o, 'order.preparing', 2);
    }
  }
  const last = orders - 1;
  add(last, 'order.created', 0);
  add(last, 'order.delivered', 20, { lat: '52.50', lon: '13.39' });
  add(last, 'order.created', 30);
  const refusedId = events.at(-1)!.id;
  return {
    events,
    refused: {
      id: refusedId,
      reason: `order ${prefix}-o${last}: order is delivered (terminal): delivered → created is not allowed`,
    },
  };
}

/** Sends the scenario over REST (batches of 20, each event with its occurred_at). */
export async function sendOrders(port: number, scenario: OrderScenario): Promise<void> {
  await sendBatches(
    port,
    scenario.events.map(({ occurredAtMs: _ms, ...e }) => e),
    20,
  );
}

interface EntityJson {
  kind: string;
  id: string;
  state: string;
  attributes: Record<string, string>;
  version: string;
  lastEventId: string;
  _links: { self: { href: string }; events: { href: string }; counts: { href: string } };
}

/** Waits for every order's final state, then checks the entity, list and count APIs and their 400s. */
export async function assertOrderApis(
  port: number,
  prefix: string,
  orders: number,
  headers: Record<string, string> = {},
) {
  const get = (path: string) => http(port, 'GET', path, undefined, headers);
  const last = orders - 1;
  await waitFor(
    async () => {
      const states = await mapLimit([...Array(orders).keys()], 4, async (o) => {
        const r = await get(`/v1/entities/order/${prefix}-o${o}`);
        return r.status === 200 ? (r.body as { entity: EntityJson }).entity.state : `${r.status}`;
      });
      return states.every(
        (s, o) => s === (o === last ? 'delivered' : o % 2 === 0 ? 'picked_up' : 'preparing'),
      );
    },
    () => 'the orders never reached their final states',
  );

  const zero = (await get(`/v1/entities/order/${prefix}-o0`)).body as { entity: EntityJson };
  assert.deepEqual(zero.entity, {
    kind: 'order',
    id: `${prefix}-o0`,
    state: 'picked_up',
    attributes: {
      restaurant: `store/${prefix}-0`,
      customer: `customer-${prefix}-0`,
      city: 'paris',
      courier: 'courier-0',
      lat: '52.52',
      lon: '13.41',
    },
    version: zero.entity.version,
    lastEventId: `${prefix}-o0-picked_up-12`,
    lastEventTime: (zero.entity as unknown as { lastEventTime: string }).lastEventTime,
    updatedAt: (zero.entity as unknown as { updatedAt: string }).updatedAt,
    _links: {
      self: { href: `/v1/entities/order/${prefix}-o0` },
      events: { href: `/v1/events?user=customer-${prefix}-0` },
      counts: { href: '/v1/entities/order/counts' },
    },
  });
  // Its history link lists its events.
  const history = await get(zero.entity._links.events.href);
  assert.equal(history.status, 200, history.text);
  const ids = ((history.body as { _embedded: { events: { id: string }[] } })._embedded.events ?? []).map(
    (e) => e.id,
  );
  assert.ok(ids.includes(`${prefix}-o0-picked_up-12`), ids.join(','));

  // Listing by state and attribute, a page of 2 at a time.
  const seen: string[] = [];
  let token = '';
  for (let page = 0; page < 20; page++) {
    const r = await get(
      `/v1/entities/order?state=picked_up&attribute=city:paris&pageSize=2${token ? `&pageToken=${token}` : ''}`,
    );
    assert.equal(r.status, 200, r.text);
    const body = r.body as { entities: EntityJson[]; nextPageToken: string };
    seen.push(...body.entities.filter((e) => e.id.startsWith(`${prefix}-`)).map((e) => e.id));
    token = body.nextPageToken;
    if (!token) break;
  }
  const paris = [...Array(orders - 1).keys()].filter((o) => o % 2 === 0).map((o) => `${prefix}-o${o}`);
  assert.deepEqual(seen.sort(), paris.sort());

  // Live counts by city: in progress (not delivered) and one state.
  const live = (await get('/v1/entities/order/counts?by=city')).body as {
    counts: { value: string; state: string; count: string }[];
    totals: Record<string, string>;
  };
  const inProgress = orders - 1;
  assert.equal(
    Number(live.totals.berlin ?? 0) + Number(live.totals.paris ?? 0),
    inProgress,
    JSON.stringify(live),
  );
  const delivered = (await get('/v1/entities/order/counts?state=delivered')).body as {
    counts: { value: string; state: string; count: string }[];
  };
  assert.deepEqual(delivered.counts, [{ value: '', state: 'delivered', count: '1' }]);

  // Bad input: 400 naming the field; unknown things: 404 naming them.
  const refused = async (path: string, status: number, field: string) => {
    const r = await get(path);
    assert.equal(r.status, status, `${path}: ${r.text}`);
    assert.equal((r.body as { error: { field?: string } }).error.field, field, `${path}: ${r.text}`);
  };
  await refused('/v1/entities/order?state=lost', 400, 'state');
  await refused('/v1/entities/order?attribute=city', 400, 'attribute[0]');
  await refused('/v1/entities/order?attribute=planet:mars', 400, 'attribute[0]');
  await refused('/v1/entities/order?pageSize=5000', 400, 'page_size');
  await refused('/v1/entities/order?pageToken=nonsense', 400, 'page_token');
  await refused('/v1/entities/order/counts?by=courier', 400, 'by');
  await refused('/v1/entities/order/counts?state=lost', 400, 'state');
  await refused('/v1/entities/parcel', 404, 'kind');
  await refused(`/v1/entities/order/${prefix}-nosuch`, 404, 'id');
}

/** Projection administration over REST: the default order projection, a put refused by field, one made and deleted. */
export async function assertProjectionAdmin(port: number, headers: Record<string, string> = {}) {
  const call = (method: string, path: string, body?: unknown) => http(port, method, path, body, headers);
  const order = await call('GET', '/v1/projections/order');
  assert.equal(order.status, 200, order.text);
  const p = (order.body as { projection: Record<string, unknown> }).projection;
  assert.deepEqual(p.states, ORDER_PROJECTION.states);
  assert.deepEqual(p.countBy, ORDER_PROJECTION.countBy);

  const bad = await call('PUT', '/v1/projections/parcel', {
    idAttribute: 'parcel_id',
    states: ['sent', 'received'],
    events: [{ type: 'parcel.sent', state: 'lost' }],
    countBy: ['city'],
  });
  assert.equal(bad.status, 400, bad.text);
  assert.deepEqual(
    (bad.body as { error: { details: { fieldViolations?: { field: string }[] }[] } }).error.details
      .flatMap((d) => d.fieldViolations ?? [])
      .map((v) => v.field),
    ['projection.events[0].state', 'projection.count_by[0]'],
  );
  const wrongKind = await call('PUT', '/v1/projections/parcel', { kind: 'order' });
  assert.equal(wrongKind.status, 400);
  assert.equal((wrongKind.body as { error: { field: string } }).error.field, 'projection.kind');

  const made = await call('PUT', '/v1/projections/parcel', {
    idAttribute: 'parcel_id',
    states: ['sent', 'received'],
    events: [
      { type: 'parcel.sent', state: 'sent' },
      { type: 'parcel.received', state: 'received' },
    ],
    transitions: [{ from: 'sent', to: 'received' }],
    terminalStates: ['received'],
  });
  assert.equal(made.status, 200, made.text);
  assert.equal((made.body as { created: boolean }).created, true);
  const listed = await call('GET', '/v1/projections');
  assert.deepEqual(
    (listed.body as { projections: { kind: string }[] }).projections.map((x) => x.kind),
    ['order', 'parcel'],
  );
  const stale = await call(
    'PUT',
    '/v1/projections/parcel?expectedRevision=7',
    (made.body as { projection: unknown }).projection,
  );
  assert.equal(stale.status, 409, stale.text);
  assert.equal((await call('DELETE', '/v1/projections/parcel')).status, 200);
  const gone = await call('DELETE', '/v1/projections/parcel');
  assert.equal(gone.status, 404);
  assert.equal((gone.body as { error: { field: string } }).error.field, 'kind');
}
