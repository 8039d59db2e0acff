/**
 * The projector in embedded mode: `tally all` with no servers configured (PGlite, the embedded
 * log). The default order projection is there from the start; orders sent over REST with their
 * events out of order end in the right state with exact live counts, the refused move backwards
 * is counted, and the entity, listing, count and projection APIs answer as on the servers; a
 * WebSocket subscription to one order gets each of its changes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  assertOrderApis,
  assertProjectionAdmin,
  orderScenario,
  sendOrders,
} from './testing/projection-run.ts';
import { waitFor } from './testing/real-servers.ts';
import { StreamClient } from './testing/stream-client.ts';
import { http } from './testing/tally-client.ts';
import { freePort, startTally } from './testing/tally-process.ts';

test('embedded mode: out-of-order orders end right with exact counts; the APIs answer', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-projector-'));
  const tally = await startTally(['all'], {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '3',
    TALLY_PROJECTIONS_REFRESH_MS: '200',
  });
  t.after(async () => {
    await tally.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  const port = tally.httpPort!;
  // Watched before it exists: pushed once projected, then at each change.
  const socket = await StreamClient.connect(port);
  t.after(() => socket.close());
  socket.send({ op: 'subscribe', channel: 'entities', kind: 'order', entity: 'emb-o1', id: 's1' });
  assert.deepEqual(await socket.next((m) => m.channel === 'subscribed', 10_000), {
    channel: 'subscribed',
    subscription: 'entities',
    entities: [{ kind: 'order', entity: 'emb-o1' }],
    id: 's1',
  });
  socket.send({ op: 'subscribe', channel: 'entities', kind: 'order' });
  assert.equal((await socket.next((m) => m.channel === 'error', 10_000)).field, 'entity');
  const scenario = orderScenario('emb', 7);
  await sendOrders(port, scenario);
  const preparing = await socket.next(
    (m) => m.channel === 'entity' && (m.entity as { state: string }).state === 'preparing',
    20_000,
  );
  assert.equal((preparing.entity as { id: string }).id, 'emb-o1');
  assert.equal((preparing.entity as { attributes: Record<string, string> }).attributes.courier, 'courier-1');
  await assertOrderApis(port, 'emb', 7);
  const refused = async () =>
    Number(
      /^tally_projection_refused_total\{kind="order"\} (\S+)$/m.exec(
        (await http(port, 'GET', '/metrics')).text,
      )?.[1] ?? 0,
    );
  await waitFor(
    async () => (await refused()) === 1,
    async () => `${await refused()} refused events counted, want 1`,
  );
  await assertProjectionAdmin(port);
  assert.equal(await tally.kill('SIGTERM'), 0, 'drains and exits 0');
});
