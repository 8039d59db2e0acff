/**
 * The alert rule store contract, run on each SQL adapter (PostgreSQL, PGlite): the same rules,
 * defaults, errors and change feed. `environment()` gives a migrated database in a fresh schema.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AlertRuleInput, SPIKE_DEFAULTS } from '../../domain/alert-rules.ts';
import { type AppError, Code } from '../app-error.ts';
import type { SqlDatabase } from '../sql/sql-database.ts';
import { createSqlRuleStore, type SqlRuleStoreOptions } from './sql-rule-store.ts';

export interface RuleStoreEnvironment {
  /** Migrated. */
  sql: SqlDatabase;
  cleanup(): Promise<void>;
}

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

export const milestone = (name = 'post milestones'): AlertRuleInput => ({
  name,
  eventType: 'view',
  recipients: { targetOwner: true, dashboard: true },
  condition: {
    kind: 'milestone',
    subject: { kind: 'target_prefix', value: 'post/' },
    thresholds: [100, 1_000, 10_000],
  },
});

const spike = (name = 'checkout spike'): AlertRuleInput => ({
  name,
  eventType: 'purchase',
  recipients: { userIds: ['ops-1'], groups: ['oncall'] },
  condition: { kind: 'spike', subject: { kind: 'target', value: 'shop/checkout' } },
});

function rejectsWith(code: number, field?: string) {
  return (error: AppError) => {
    assert.equal(error.code, code, error.message);
    if (field !== undefined) assert.equal(error.field, field, error.message);
    return true;
  };
}

export function ruleStoreContract(adapter: string, environment: () => Promise<RuleStoreEnvironment>): void {
  describe(`alert rule store contract: ${adapter}`, () => {
    const withStore = async (
      t: { after(fn: () => Promise<void>): void },
      options: Partial<SqlRuleStoreOptions> = {},
    ) => {
      const env = await environment();
      const clock = { ms: T0 };
      const store = createSqlRuleStore({ sql: env.sql, now: () => new Date(clock.ms), ...options });
      t.after(() => env.cleanup());
      return { store, clock, sql: env.sql };
    };

    test('a new rule gets an id, its defaults and a revision, and reads back the same', async (t) => {
      const { store } = await withStore(t);
      const rule = await store.create(spike());
      assert.match(rule.id, /^ar_[0-9A-Za-z]{10}$/);
      assert.deepEqual(rule, {
        id: rule.id,
        name: 'checkout spike',
        enabled: true,
        eventType: 'purchase',
        recipients: { userIds: ['ops-1'], groups: ['oncall'], targetOwner: false, dashboard: false },
        condition: {
          kind: 'spike',
          subject: { kind: 'target', value: 'shop/checkout' },
          halfLifeMinutes: SPIKE_DEFAULTS.halfLifeMinutes,
          zThreshold: SPIKE_DEFAULTS.zThreshold,
          zClear: SPIKE_DEFAULTS.zThreshold * SPIKE_DEFAULTS.zClearRatio,
          minCount: SPIKE_DEFAULTS.minCount,
          minRatio: SPIKE_DEFAULTS.minRatio,
          warmupMinutes: SPIKE_DEFAULTS.halfLifeMinutes,
        },
        createdAt: new Date(T0),
        updatedAt: new Date(T0),
        revision: 1,
      });
      assert.deepEqual(await store.get(rule.id), rule);
      assert.equal(await store.get('ar_0000000000'), undefined);
      assert.equal(await store.get('not an id'), undefined);
    });

    test('each kind round-trips: milestone thresholds, a threshold on the sum of a user', async (t) => {
      const { store, clock } = await withStore(t);
      const m = await store.create(milestone());
      clock.ms += MINUTE;
      assert.deepEqual(m.condition, {
        kind: 'milestone',
        subject: { kind: 'target_prefix', value: 'post/' },
        thresholds: [100, 1_000, 10_000],
      });
      const w = await store.create({
        name: 'big spender',
        enabled: false,
        eventType: 'purchase',
        recipients: { groups: ['sales'] },
        condition: {
          kind: 'threshold',
          subject: { kind: 'user_id', value: 'user-42' },
          measure: 'sum',
          windowMinutes: 60,
          threshold: 999.5,
        },
      });
      assert.equal(w.enabled, false);
      assert.deepEqual(w.condition, {
        kind: 'threshold',
        subject: { kind: 'user_id', value: 'user-42' },
        measure: 'sum',
        windowMinutes: 60,
        threshold: 999.5,
        rearmMinutes: 60,
      });
      assert.deepEqual(await store.list(), [m, w]);
    });

    test('an invalid rule is refused with every field at fault, and nothing is stored', async (t) => {
      const { store } = await withStore(t);
      await assert.rejects(
        store.create({
          ...milestone(),
          condition: {
            kind: 'milestone',
            subject: { kind: 'target', value: 'post/1' },
            thresholds: [100, 1_000, 1_000, 0],
          },
        }),
        (error: AppError) => {
          rejectsWith(Code.INVALID_ARGUMENT, 'milestone.thresholds[2]')(error);
          assert.deepEqual(
            error.fieldViolations.map((v) => v.field),
            ['milestone.thresholds[2]', 'milestone.thresholds[3]'],
          );
          return true;
        },
      );
      await assert.rejects(
        store.create({ ...spike(), name: ' ' }),
        rejectsWith(Code.INVALID_ARGUMENT, 'name'),
      );
      assert.deepEqual(await store.list(), []);
      assert.equal(await store.revision(), 0, 'a refused write takes no revision');
    });

    test('update replaces the rule and keeps its id, creation and (unless given) its state', async (t) => {
      const { store, clock } = await withStore(t);
      const rule = await store.create(milestone());
      clock.ms += MINUTE;
      const off = await store.update(rule.id, { ...milestone('renamed'), enabled: false });
      assert.equal(off.enabled, false);
      assert.equal(off.name, 'renamed');
      assert.deepEqual(off.createdAt, new Date(T0));
      assert.deepEqual(off.updatedAt, new Date(T0 + MINUTE));
      assert.ok(off.revision > rule.revision);
      const spiky = await store.update(rule.id, spike('now a spike'));
      assert.equal(spiky.enabled, false, 'enabled absent: the state is kept');
      assert.equal(spiky.condition.kind, 'spike');
      assert.deepEqual(await store.get(rule.id), spiky);
      await assert.rejects(
        store.update(rule.id, { ...spike(), eventType: 'not ok' }),
        rejectsWith(Code.INVALID_ARGUMENT, 'event_type'),
      );
      await assert.rejects(store.update('ar_0000000000', spike()), rejectsWith(Code.NOT_FOUND, 'id'));
    });

    test('update with an expected revision refuses a rule changed since', async (t) => {
      const { store } = await withStore(t);
      const rule = await store.create(milestone());
      const next = await store.update(rule.id, milestone('a'), rule.revision);
      await assert.rejects(
        store.update(rule.id, milestone('b'), rule.revision),
        rejectsWith(Code.ABORTED, 'expected_revision'),
      );
      assert.equal((await store.get(rule.id))!.name, 'a');
      await store.update(rule.id, milestone('c'), next.revision);
    });

    test('delete removes the rule from get and list; again, or unknown, is NOT_FOUND', async (t) => {
      const { store } = await withStore(t);
      const a = await store.create(milestone('a'));
      const b = await store.create(milestone('b'));
      await store.delete(a.id);
      assert.equal(await store.get(a.id), undefined);
      assert.deepEqual(await store.list(), [b]);
      await assert.rejects(store.delete(a.id), rejectsWith(Code.NOT_FOUND, 'id'));
      await assert.rejects(store.update(a.id, milestone()), rejectsWith(Code.NOT_FOUND, 'id'));
      await assert.rejects(store.delete('ar_0000000000'), rejectsWith(Code.NOT_FOUND, 'id'));
    });

    test('a reader follows every change by revision: creates, updates, disables and deletes', async (t) => {
      const { store } = await withStore(t);
      const empty = await store.loadEnabled();
      assert.deepEqual(empty, { revision: 0, rules: [] });
      const a = await store.create(milestone('a'));
      const b = await store.create({ ...spike('b'), enabled: false });
      const snapshot = await store.loadEnabled();
      assert.deepEqual(snapshot, { revision: 2, rules: [a] }, 'enabled rules only');
      assert.equal(await store.revision(), 2);
      assert.deepEqual(await store.changesSince(2), { revision: 2, changed: [], deleted: [] });

      const a2 = await store.update(a.id, { ...milestone('a2'), enabled: false });
      const c = await store.create(milestone('c'));
      await store.delete(b.id);
      assert.equal(await store.revision(), 5);
      const changes = await store.changesSince(snapshot.revision);
      assert.deepEqual(changes, { revision: 5, changed: [a2, c], deleted: [b.id] });
      assert.deepEqual(await store.changesSince(0), { revision: 5, changed: [a2, c], deleted: [b.id] });
      assert.deepEqual(await store.loadEnabled(), { revision: 5, rules: [c] });
      await assert.rejects(store.changesSince(-1), rejectsWith(Code.INVALID_ARGUMENT, 'revision'));
    });

    test('concurrent writes take distinct revisions, all reported once', async (t) => {
      const { store } = await withStore(t);
      const made = await Promise.all(Array.from({ length: 12 }, (_, i) => store.create(milestone(`r${i}`))));
      assert.equal(new Set(made.map((r) => r.id)).size, 12);
      assert.deepEqual(
        made.map((r) => r.revision).sort((x, y) => x - y),
        Array.from({ length: 12 }, (_, i) => i + 1),
      );
      await Promise.all(
        made.map((r, i) => (i % 2 ? store.delete(r.id) : store.update(r.id, milestone('u')))),
      );
      const changes = await store.changesSince(12);
      assert.equal(changes.revision, 24);
      assert.equal(changes.changed.length + changes.deleted.length, 12);
    });

    test('an id already taken makes the store draw another', async (t) => {
      const same = new Uint8Array(8).fill(7);
      const draws = [same, same, new Uint8Array(8).fill(9)];
      const { store, clock } = await withStore(t, {
        random: () => draws.shift() ?? new Uint8Array(8).fill(1),
      });
      const a = await store.create(milestone('a'));
      clock.ms += MINUTE;
      const b = await store.create(milestone('b'));
      assert.notEqual(a.id, b.id);
      assert.equal(draws.length, 0, 'the colliding draw was used and replaced');
      assert.deepEqual(await store.list(), [a, b]);
    });
  });
}
