/**
 * The router in embedded mode: `tally all` with no servers configured, destinations made over
 * REST, events sent, a destination deleted on the way. Read back from the data directory once the
 * process has drained: each remaining destination's topic holds every event its filter passes,
 * in each user's order (once, after the repeats of a batch written again are recognised), and the deleted destination's topic is gone.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createEmbeddedEventLog } from './infra/log/embedded-event-log.ts';
import { createLogger } from './infra/logger.ts';
import { sendBatches } from './testing/milestone-run.ts';
import { waitFor } from './testing/real-servers.ts';
import {
  assertRouted,
  createDestination,
  deleteDestination,
  readDeliveries,
  routedEvents,
  routesTo,
} from './testing/routing-run.ts';
import { http } from './testing/tally-client.ts';
import { freePort, startTally } from './testing/tally-process.ts';

test('embedded mode: the router writes each destination the events its filter passes, once and in user order', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-router-'));
  const env = {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '3',
    TALLY_DESTINATIONS_REFRESH_MS: '200',
  };
  const tally = await startTally(['all'], env);
  t.after(async () => {
    await tally.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  const port = tally.httpPort!;
  const purchases = await createDestination(port, {
    name: 'purchases',
    filter: { eventTypes: ['purchase'] },
  });
  const everything = await createDestination(port, { name: 'everything' });
  const doomed = await createDestination(port, { name: 'doomed' });
  await waitFor(
    () => routesTo(tally.lines, 3),
    () => 'the router never routed to the 3 destinations',
  );
  const events = routedEvents('embedded', 'a', 400);
  await sendBatches(port, events.slice(0, 200), 40);
  await deleteDestination(port, doomed);
  await sendBatches(port, events.slice(200), 40);

  const routed = async (id: string) => {
    const { text } = await http(port, 'GET', '/metrics');
    return Number(
      new RegExp(`^tally_routed_events_total\\{destination="${id}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0,
    );
  };
  await waitFor(
    async () => (await routed(everything)) >= events.length,
    async () => `the router wrote ${await routed(everything)} of ${events.length} events`,
  );
  assert.equal(await tally.kill('SIGTERM'), 0, 'drains and exits 0');

  const log = createEmbeddedEventLog({ dataDir: join(dataDir, 'log'), logger: createLogger('error') });
  t.after(() => log.close());
  const read = (id: string) => readDeliveries(log, `deliveries.${id}`, '');
  // A write to the deleted destination's topic can fail before its deletion is in the store (its
  // topic goes first): that batch is written again, so repeats are allowed, and recognised.
  const repeated =
    assertRouted(
      'purchases',
      await read(purchases),
      events.filter((e) => e.type === 'purchase'),
      {
        exactlyOnce: false,
      },
    ) + assertRouted('everything', await read(everything), events, { exactlyOnce: false });
  t.diagnostic(`${repeated} records written again`);
  await assert.rejects(log.endOffsets(`deliveries.${doomed}`), /does not exist/, 'the deleted topic is gone');
});
