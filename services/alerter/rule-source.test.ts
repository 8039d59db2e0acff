/**
 * The alerter's rules follow the rule store's change feed (on PGlite): created, changed, disabled
 * and deleted rules take effect at the next refresh, and a store that cannot be read keeps the
 * rules in force.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AlertRuleInput } from '../domain/alert-rules.ts';
import { createSqlRuleStore } from '../infra/alerts/sql-rule-store.ts';
import { createLogger } from '../infra/logger.ts';
import { migrate } from '../infra/sql/migrate.ts';
import { createPgliteDatabase } from '../infra/sql/pglite-database.ts';
import { startRuleSource } from './rule-source.ts';

const logger = createLogger('error');

const likes = (thresholds: number[], enabled = true): AlertRuleInput => ({
  name: 'post likes',
  enabled,
  eventType: 'like',
  recipients: { userIds: ['u9'], groups: ['social'], targetOwner: true, dashboard: true },
  condition: { kind: 'milestone', subject: { kind: 'target_prefix', value: 'post/' }, thresholds },
});

test('rules created, changed, disabled and deleted take effect at the next refresh', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tally-rules-'));
  const sql = await createPgliteDatabase({ dataDir: dir, schema: 'tally' });
  await migrate(sql, 'tally');
  t.after(async () => {
    await sql.close();
    await rm(dir, { recursive: true, force: true });
  });
  const store = createSqlRuleStore({ sql });
  const first = await store.create(likes([100, 1_000]));
  await store.create({
    name: 'checkout spike',
    eventType: 'purchase',
    recipients: { dashboard: true },
    condition: { kind: 'spike', subject: { kind: 'target', value: 'shop/checkout' } },
  });
  const source = await startRuleSource({ store, logger, refreshMs: 60_000 });
  t.after(() => source.stop());
  assert.deepEqual(source.milestones(), [
    {
      ruleId: first.id,
      type: 'like',
      targetPrefix: 'post/',
      thresholds: [100, 1_000],
      recipients: ['user:u9', 'group:social', 'dashboard'],
      notifyOwner: true,
    },
  ]);

  await store.update(first.id, likes([100, 1_000, 10_000]));
  const one = await store.create({
    ...likes([5]),
    name: 'one post',
    condition: { kind: 'milestone', subject: { kind: 'target', value: 'post/7' }, thresholds: [5] },
  });
  await source.refresh();
  assert.deepEqual(
    source.milestones().map((m) => [m.ruleId, m.thresholds, m.target ?? m.targetPrefix]),
    [
      [first.id, [100, 1_000, 10_000], 'post/'],
      [one.id, [5], 'post/7'],
    ],
  );

  await store.update(first.id, likes([100], false)); // disabled
  await store.delete(one.id);
  await source.refresh();
  assert.deepEqual(source.milestones(), []);
  await store.update(first.id, likes([100], true)); // enabled again
  await source.refresh();
  assert.deepEqual(
    source.milestones().map((m) => m.ruleId),
    [first.id],
  );
  assert.equal(source.revision(), await store.revision());
});

test('a store that cannot be read keeps the rules in force', async () => {
  let fail = false;
  const rule = {
    id: 'ar_0000000001',
    createdAt: new Date(),
    updatedAt: new Date(),
    revision: 1,
    name: 'r',
    enabled: true,
    eventType: 'like',
    recipients: { userIds: [], groups: [], targetOwner: false, dashboard: true },
    condition: {
      kind: 'milestone' as const,
      subject: { kind: 'target' as const, value: 'post/1' },
      thresholds: [10],
    },
  };
  const source = await startRuleSource({
    store: {
      loadEnabled: async () => ({ revision: 1, rules: [rule] }),
      changesSince: async () => {
        if (fail) throw new Error('the database is down (a test failure on purpose)');
        return { revision: 2, changed: [], deleted: [rule.id] };
      },
    },
    logger,
    refreshMs: 60_000,
  });
  fail = true;
  await source.refresh();
  assert.equal(source.milestones().length, 1);
  assert.equal(source.revision(), 1);
  fail = false;
  await source.refresh();
  assert.equal(source.milestones().length, 0);
  assert.equal(source.revision(), 2);
  source.stop();
});
