/**
 * The router's destinations follow the destination store's change feed (on PGlite): created,
 * changed, disabled and deleted destinations take effect at the next refresh, a new one once its
 * topic exists, and a store that cannot be read keeps the routes in force.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { DestinationInput } from '../domain/destinations.ts';
import { createSqlDestinationStore } from '../infra/delivery/sql-destination-store.ts';
import { createLogger } from '../infra/logger.ts';
import { migrate } from '../infra/sql/migrate.ts';
import { createPgliteDatabase } from '../infra/sql/pglite-database.ts';
import { startDestinationSource } from './destination-source.ts';

const logger = createLogger('error');

const hook = (name: string, eventTypes: string[] = []): DestinationInput => ({
  name,
  endpoint: { kind: 'webhook', url: 'https://hooks.example.com/tally' },
  filter: { eventTypes },
});

async function openStore(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'tally-destinations-'));
  const sql = await createPgliteDatabase({ dataDir: dir, schema: 'tally' });
  await migrate(sql, 'tally');
  t.after(async () => {
    await sql.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { sql, store: createSqlDestinationStore({ sql }) };
}

const routed = (table: { candidates(type: string): readonly { destinationId: string }[] }, type: string) =>
  table
    .candidates(type)
    .map((r) => r.destinationId)
    .sort();

test('destinations created, changed, disabled and deleted take effect at the next refresh', async (t) => {
  const { store } = await openStore(t);
  const topics = new Set<string>();
  const topicOf = (id: string) => `deliveries.${id}`;
  const make = async (input: DestinationInput) => {
    const d = await store.create(input);
    topics.add(topicOf(d.id));
    return d;
  };
  const orders = await make(hook('orders', ['purchase']));
  const everything = await make(hook('everything'));
  const deleted: string[] = [];
  const source = await startDestinationSource({
    store,
    logger,
    refreshMs: 60_000,
    topicOf,
    topicExists: async (topic) => topics.has(topic),
    onDeleted: (ids) => void deleted.push(...ids),
  });
  t.after(() => source.stop());
  assert.deepEqual(routed(source.table(), 'purchase'), [everything.id, orders.id].sort());
  assert.deepEqual(routed(source.table(), 'view'), [everything.id]);
  assert.equal(source.table().candidates('purchase')[0]?.topic, topicOf(orders.id));

  await store.update(orders.id, hook('orders', ['view']));
  await store.update(everything.id, { ...hook('everything'), enabled: false });
  const views = await make(hook('views', ['view']));
  await source.refresh();
  assert.deepEqual(routed(source.table(), 'purchase'), []);
  assert.deepEqual(routed(source.table(), 'view'), [orders.id, views.id].sort());
  assert.equal(source.routes(everything.id), false, 'disabled');
  assert.equal(source.revision(), await store.revision());

  await store.delete(views.id);
  topics.delete(topicOf(views.id));
  await store.update(everything.id, { ...hook('everything'), enabled: true });
  await source.refresh();
  assert.deepEqual(routed(source.table(), 'view'), [everything.id, orders.id].sort());
  assert.equal(source.routes(views.id), false, 'deleted');
  assert.deepEqual(deleted, [views.id], 'told of the deletion');
});

test('a new destination is routed to once its topic exists', async (t) => {
  const { store } = await openStore(t);
  const topics = new Set<string>();
  const source = await startDestinationSource({
    store,
    logger,
    refreshMs: 60_000,
    topicOf: (id) => id,
    topicExists: async (topic) => topics.has(topic),
  });
  t.after(() => source.stop());
  const made = await store.create(hook('new'));
  await source.refresh();
  assert.equal(source.routes(made.id), false, 'its topic is not made yet');
  assert.equal(source.table().size, 0);
  topics.add(made.id);
  await source.refresh();
  assert.equal(source.routes(made.id), true);
  assert.deepEqual(routed(source.table(), 'any'), [made.id]);
});

test('a store that cannot be read keeps the routes in force, and is followed again once readable', async (t) => {
  const { store } = await openStore(t);
  const kept = await store.create(hook('kept'));
  let down = false;
  const flaky = {
    loadEnabled: () => store.loadEnabled(),
    changesSince: (revision: number) =>
      down ? Promise.reject(new Error('connection refused')) : store.changesSince(revision),
  };
  const source = await startDestinationSource({
    store: flaky,
    logger,
    refreshMs: 60_000,
    topicOf: (id) => id,
    topicExists: async () => true,
  });
  t.after(() => source.stop());
  down = true;
  await store.update(kept.id, { ...hook('kept'), enabled: false });
  await source.refresh();
  assert.equal(source.routes(kept.id), true, 'kept while the store is unreadable');
  down = false;
  await source.refresh();
  assert.equal(source.routes(kept.id), false);
});
