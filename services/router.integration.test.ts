/**
 * The router end to end on the real servers (destinations in PostgreSQL made over REST, their
 * topics in Kafka):
 * - in one `tally all`: every event matching a destination's filter is in its topic, transformed,
 *   once, in each user's order, and no other; a disabled destination gets nothing after the
 *   refresh, a deleted one stops (its topic gone) without holding the others;
 * - with the router in a process of its own, killed with SIGKILL mid-stream and started again:
 *   every matching event is in each topic at least once, and each user's in order by source
 *   position once the records written twice are recognised, as a sender does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sendBatches } from './testing/milestone-run.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import {
  assertRouted,
  createDestination,
  deleteDestination,
  disableDestination,
  readDeliveries,
  routedEvents,
  routesTo,
} from './testing/routing-run.ts';
import { Backends, http } from './testing/tally-client.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

const REFRESH = { TALLY_DESTINATIONS_REFRESH_MS: '200' };
const PURCHASES = { name: 'purchases', filter: { eventTypes: ['purchase'] } };
const SHAPED = {
  name: 'shaped',
  transform: {
    fields: [
      { to: 'kind', from: 'type' },
      { to: 'data.user', from: 'user_id' },
      { to: 'text', template: '{{user_id}} on {{target}}' },
    ],
  },
};
const PRO_SHOP = { name: 'pro-shop', filter: { targetPrefixes: ['shop/'], attributes: { plan: 'pro' } } };
const VIEWS = { name: 'views', filter: { eventTypes: ['view'] } };

const isPurchase = (e: { type: string }) => e.type === 'purchase';
const isProShop = (e: { target: string; attributes?: Record<string, string> }) =>
  e.target.startsWith('shop/') && e.attributes?.plan === 'pro';

test('tally all: each destination gets the events its filter passes, transformed, once and in user order; disabled and deleted ones stop', async (t) => {
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], { ...ns.env, ...REFRESH });
  const ids: string[] = [];
  t.after(async () => {
    await tally.kill('SIGKILL');
    await backends.log.deleteTopics(ids.map((id) => `${ns.groupPrefix}deliveries.${id}`));
    await backends.cleanup();
  });
  const port = tally.httpPort!;
  const purchases = await createDestination(port, PURCHASES);
  const shaped = await createDestination(port, SHAPED);
  const proShop = await createDestination(port, PRO_SHOP);
  const views = await createDestination(port, VIEWS);
  ids.push(purchases, shaped, proShop, views);
  const topic = (id: string) => `${ns.groupPrefix}deliveries.${id}`;
  await waitFor(
    () => routesTo(tally.lines, 4),
    () => 'the router never routed to the 4 destinations',
  );

  const first = routedEvents(ns.id, 'a', 300);
  await sendBatches(port, first);
  await waitFor(
    () => backends.caughtUp(['group_persistence', 'group_routing']),
    () => 'the router is behind',
  );
  await disableDestination(port, proShop, PRO_SHOP);
  await deleteDestination(port, views);
  await waitFor(
    () => routesTo(tally.lines, 2),
    () => 'the router still routes to the disabled or the deleted destination',
  );
  const second = routedEvents(ns.id, 'b', 300);
  await sendBatches(port, second);
  await waitFor(
    () => backends.caughtUp(['group_persistence', 'group_routing']),
    () => 'the router is behind',
  );

  // A destination made right after a deletion is routed to as any other.
  const late = await createDestination(port, { ...SHAPED, name: 'made after a deletion' });
  ids.push(late);
  await waitFor(
    () => routesTo(tally.lines, 3),
    () => 'the router never routed to the destination made after the deletion',
    30_000,
  );
  const third = routedEvents(ns.id, 'c', 100);
  await sendBatches(port, third);
  await waitFor(
    () => backends.caughtUp(['group_persistence', 'group_routing']),
    () => 'the router is behind',
  );

  const all = [...first, ...second, ...third];
  const read = (id: string) => readDeliveries(backends.log, topic(id), ns.groupPrefix);
  assertRouted('made after a deletion', await read(late), third, { exactlyOnce: true });
  assertRouted('purchases', await read(purchases), all.filter(isPurchase), { exactlyOnce: true });
  const shapedRecords = await read(shaped);
  assertRouted('shaped', shapedRecords, all, { exactlyOnce: true });
  const one = shapedRecords.find((r) => r.eventId === all[0]!.id)!;
  assert.deepEqual(JSON.parse(new TextDecoder().decode(one.body)), {
    kind: 'purchase',
    data: { user: all[0]!.userId },
    text: `${all[0]!.userId} on ${all[0]!.target}`,
  });
  assertRouted('pro-shop (disabled after the first half)', await read(proShop), first.filter(isProShop), {
    exactlyOnce: true,
  });
  await assert.rejects(
    backends.log.groupOffsets('any', topic(views)),
    'the deleted destination has no topic',
  );

  // The records written, per destination.
  const { text } = await http(port, 'GET', '/metrics');
  const routed = (id: string) =>
    Number(new RegExp(`^tally_routed_events_total\\{destination="${id}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
  assert.equal(routed(purchases), all.filter(isPurchase).length);
  assert.equal(routed(shaped), all.length);
});

test('a SIGKILL of the router mid-stream leaves every event in its topics at least once, in user order by source position', async (t) => {
  const ns = testNamespace(4);
  const backends = new Backends(ns);
  // A shorter session lets the group hand the killed member's partitions over sooner.
  const env = { ...ns.env, ...REFRESH, TALLY_KAFKA_SESSION_TIMEOUT_MS: '6000' };
  const edge = await startTally(['gateway', 'ingest', 'query', 'persister'], env);
  let router: TallyProcess | undefined;
  const ids: string[] = [];
  t.after(async () => {
    await Promise.all([router?.kill('SIGKILL'), edge.kill('SIGKILL')]);
    await backends.log.deleteTopics(ids.map((id) => `${ns.groupPrefix}deliveries.${id}`));
    await backends.cleanup();
  });
  const port = edge.httpPort!;
  const purchases = await createDestination(port, PURCHASES);
  const shaped = await createDestination(port, SHAPED);
  ids.push(purchases, shaped);
  const topic = (id: string) => `${ns.groupPrefix}deliveries.${id}`;
  router = await startTally(['router'], env);
  assert.ok(routesTo(router.lines, 2), 'the router loaded both destinations');

  const events = routedEvents(ns.id, 'k', 2_000, 25);
  const half = events.length / 2;
  await sendBatches(port, events.slice(0, half), 50);
  let total = 0n;
  await waitFor(
    async () => {
      total = 0n;
      for (const end of (await backends.log.endOffsets(topic(shaped))).values()) total += end;
      return total > 0n;
    },
    () => 'the router wrote nothing yet',
  );
  const rest = sendBatches(port, events.slice(half), 50);
  router.child.kill('SIGKILL');
  await router.exited;
  await rest;
  router = await startTally(['router'], env, 120_000);
  await waitFor(
    () => backends.caughtUp(['group_persistence', 'group_routing']),
    () => 'the router is behind',
    120_000,
  );
  assert.ok(total < BigInt(events.length), 'the SIGKILL came before every event was routed');

  const read = (id: string) => readDeliveries(backends.log, topic(id), ns.groupPrefix);
  const repeated =
    assertRouted('purchases', await read(purchases), events.filter(isPurchase), { exactlyOnce: false }) +
    assertRouted('shaped', await read(shaped), events, { exactlyOnce: false });
  t.diagnostic(`${repeated} records written again after the SIGKILL`);
});
