/**
 * The router in a process of its own, as a Deployment runs it: a destination deleted by the query
 * role (another process) while the router writes to it, and one made right after, which the
 * router must route to as to any other — its producer forgets the deleted topic.
 */
import { test } from 'node:test';
import { sendBatches } from './testing/milestone-run.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import {
  assertRouted,
  createDestination,
  deleteDestination,
  readDeliveries,
  routedEvents,
  routesTo,
} from './testing/routing-run.ts';
import { Backends } from './testing/tally-client.ts';
import { startTally } from './testing/tally-process.ts';

await requireRealServers();

const REFRESH = { TALLY_DESTINATIONS_REFRESH_MS: '200' };
const ALL = { name: 'everything', filter: {} };

for (const kafkaClient of ['kafkajs', 'platformatic'] as const)
  test(`a router apart on ${kafkaClient}: a destination made right after another was deleted under it gets its events`, async (t) => {
    const ns = testNamespace(3);
    const backends = new Backends(ns);
    const env = { ...ns.env, ...REFRESH, TALLY_KAFKA_CLIENT: kafkaClient };
    const edge = await startTally(['ingest', 'query', 'gateway', 'persister'], env);
    const router = await startTally(['router'], env);
    const ids: string[] = [];
    t.after(async () => {
      await Promise.all([edge.kill('SIGKILL'), router.kill('SIGKILL')]);
      await backends.log.deleteTopics(ids.map((id) => `${ns.groupPrefix}deliveries.${id}`));
      await backends.cleanup();
    });
    const port = edge.httpPort!;
    const topic = (id: string) => `${ns.groupPrefix}deliveries.${id}`;
    const doomed = await createDestination(port, { ...ALL, name: 'deleted while routed to' });
    ids.push(doomed);
    await waitFor(
      () => routesTo(router.lines, 1),
      () => 'the router never routed to the first destination',
    );
    // Events flow while the destination is deleted: the router's writes to its topic fail.
    const sending = sendBatches(port, routedEvents(ns.id, 'a', 600));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await deleteDestination(port, doomed);
    await sending;
    const fresh = await createDestination(port, { ...ALL, name: 'made after the deletion' });
    ids.push(fresh);
    // Routed to once the router has seen the deletion and then routes to one destination again.
    const tookItIn = () => {
      const deleted = router.lines.findLastIndex(
        (l) => l.includes('"msg":"destinations changed"') && l.includes('"deleted":1'),
      );
      return deleted >= 0 && routesTo(router.lines.slice(deleted), 1);
    };
    await waitFor(
      tookItIn,
      () =>
        `the router never took the new destination in: ${router.lines
          .filter((l) => !l.includes('consumer lag'))
          .slice(-12)
          .join('\n')}`,
      30_000,
    );
    const after = routedEvents(ns.id, 'b', 200);
    await sendBatches(port, after);
    // The new destination gets every event the router reads once it routes to it: those sent
    // after, and any of the first ones still in its backlog then (the router may lag behind).
    const afterIds = new Set(after.map((e) => e.id));
    const ofAfter = async () =>
      (await readDeliveries(backends.log, topic(fresh), ns.groupPrefix)).filter((r) =>
        afterIds.has(r.eventId),
      );
    await waitFor(
      async () => (await ofAfter()).length >= after.length,
      async () =>
        `the new destination has ${(await ofAfter()).length} of ${after.length}; router: ${router.lines.slice(-5).join('\n')}`,
      30_000,
    );
    assertRouted('made after the deletion', await ofAfter(), after, { exactlyOnce: true });
  });
