/**
 * The notification store contract, run on each SQL adapter (PostgreSQL, PGlite): notifications
 * kept once whatever the repeats, pages newest first, replays oldest first, reads per recipient.
 * `environment()` gives a migrated database in a fresh schema.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SqlDatabase } from '../sql/sql-database.ts';
import { DASHBOARD_RECIPIENT, type Notification } from './notification-store.ts';
import { createSqlNotificationStore } from './sql-notification-store.ts';

export interface NotificationStoreEnvironment {
  /** Migrated. */
  sql: SqlDatabase;
  cleanup(): Promise<void>;
}

const T0 = Date.UTC(2026, 11, 6, 12, 0);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The milestone `threshold` of `target` under rule r1, for user u1 and the dashboard. */
function milestone(
  target: string,
  threshold: number,
  recipients = ['user:u1', DASHBOARD_RECIPIENT],
): Notification {
  return {
    id: `r1/${target}/${threshold}`,
    ruleId: 'r1',
    kind: 'milestone',
    target,
    type: 'like',
    value: threshold,
    threshold,
    occurredAt: new Date(T0 + threshold),
    recipients,
    message: `${target} reached ${threshold} likes`,
  };
}

export function notificationStoreContract(
  adapter: string,
  environment: () => Promise<NotificationStoreEnvironment>,
): void {
  describe(`notification store contract: ${adapter}`, () => {
    const open = async (t: { after: (fn: () => Promise<void>) => void }) => {
      const env = await environment();
      t.after(() => env.cleanup());
      return { store: createSqlNotificationStore(env.sql), sql: env.sql };
    };

    test('a notification recorded again is kept once, in one write or across writes', async (t) => {
      const { store, sql } = await open(t);
      const a = milestone('post/1', 100);
      const b = milestone('post/1', 1_000);
      const first = await store.record([a, b, a]);
      assert.equal(first.added, 2, 'a repeat within one write');
      assert.deepEqual(
        first.stored.map((n) => n.id),
        [a.id, b.id],
      );
      const second = await store.record([b, milestone('post/2', 100)]);
      assert.equal(second.added, 1, 'a repeat of an earlier write');
      // The repeat answers the notification as first kept: the same seq and time.
      assert.equal(second.stored[0]!.seq, first.stored[1]!.seq);
      assert.deepEqual(second.stored[0]!.createdAt, first.stored[1]!.createdAt);
      assert.ok(BigInt(second.stored[1]!.seq) > BigInt(first.stored[1]!.seq));
      assert.deepEqual(await store.record([]), { added: 0, stored: [] });
      const [row] = await sql.query<{ n: string | number }>('SELECT count(*) AS n FROM notification');
      assert.equal(Number(row!.n), 3);
    });

    test('every field comes back as recorded', async (t) => {
      const { store } = await open(t);
      const spike: Notification = {
        id: 'r9/post/7/29443680',
        ruleId: 'r9',
        kind: 'spike',
        target: 'post/7',
        type: 'like',
        value: 240,
        baseline: 21.5,
        score: 11.25,
        occurredAt: new Date(T0),
        recipients: ['group:trust-and-safety', DASHBOARD_RECIPIENT],
        message: 'likes on post/7: 240 in a minute, 11× the usual 21.5',
      };
      const window: Notification = {
        id: 'r3/u:42/29443681',
        ruleId: 'r3',
        kind: 'threshold',
        target: '',
        type: 'purchase',
        subject: '42',
        value: 1234.5,
        threshold: 1000,
        windowMinutes: 360,
        occurredAt: new Date(T0 + 60_000),
        recipients: ['user:42'],
        message: 'card 42 spent 1,234.50 in 6 hours',
      };
      await store.record([spike, window]);
      const { notifications } = await store.list({ limit: 10 });
      assert.deepEqual(
        notifications.map(({ seq, createdAt, read, ...rest }) => rest),
        [window, spike],
      );
      assert.ok(notifications.every((n) => /^\d+$/.test(n.seq) && n.createdAt instanceof Date && !n.read));
      assert.ok(BigInt(notifications[0]!.seq) > BigInt(notifications[1]!.seq));
    });

    test('pages go newest first by cursor; filters by recipient, target and rule', async (t) => {
      const { store } = await open(t);
      for (let i = 1; i <= 7; i++) await store.record([milestone(`post/${i % 2}`, i * 100)]);
      await store.record([milestone('post/9', 100, ['user:u2'])]);
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.list({
          recipient: 'user:u1',
          limit: 3,
          ...(cursor ? { before: cursor } : {}),
        });
        assert.ok(page.notifications.length <= 3);
        seen.push(...page.notifications.map((n) => n.id));
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      assert.deepEqual(
        seen,
        [7, 6, 5, 4, 3, 2, 1].map((i) => `r1/post/${i % 2}/${i * 100}`),
      );
      assert.deepEqual(
        (await store.list({ recipient: 'user:u2', limit: 10 })).notifications.map((n) => n.id),
        ['r1/post/9/100'],
      );
      assert.equal((await store.list({ target: 'post/1', limit: 10 })).notifications.length, 4);
      assert.equal((await store.list({ ruleId: 'r2', limit: 10 })).notifications.length, 0);
      const last = await store.list({ limit: 8 });
      assert.equal(last.notifications.length, 8);
      assert.equal(last.nextCursor, undefined, 'no page after the last');
    });

    test('a replay gives what a recipient missed after a cursor, oldest first', async (t) => {
      const { store } = await open(t);
      await store.record([milestone('post/1', 100)]);
      const { notifications } = await store.list({ limit: 1 });
      const cursor = notifications[0]!.seq;
      await store.record([milestone('post/1', 200), milestone('post/2', 100, ['group:ops'])]);
      await store.record([milestone('post/1', 300)]);
      assert.deepEqual(
        (await store.since(cursor, { recipients: ['user:u1'] }, 10)).map((n) => n.id),
        ['r1/post/1/200', 'r1/post/1/300'],
      );
      assert.deepEqual(
        (await store.since(cursor, { recipients: ['user:u1', 'group:ops'] }, 2)).map((n) => n.id),
        ['r1/post/1/200', 'r1/post/2/100'],
      );
      assert.deepEqual(await store.since(cursor, { recipients: ['user:nobody'] }, 10), []);
      assert.deepEqual(
        (await store.since(cursor, { target: 'post/2' }, 10)).map((n) => n.id),
        ['r1/post/2/100'],
      );
      assert.deepEqual(
        (await store.since(cursor, { target: 'post/1', recipients: ['group:ops'] }, 10)).map((n) => n.id),
        [],
      );
      assert.deepEqual(
        (await store.since('0', {}, 10)).map((n) => n.id),
        ['r1/post/1/100', 'r1/post/1/200', 'r1/post/2/100', 'r1/post/1/300'],
      );
      const latest = await store.latestSeq();
      assert.equal((await store.since(latest, {}, 10)).length, 0);
      assert.equal((await store.since(String(BigInt(latest) - 1n), {}, 10))[0]?.id, 'r1/post/1/300');
    });

    test('notifications become visible in seq order: a reader following the cursor misses none', async (t) => {
      const { sql } = await open(t);
      // The first write's transaction dawdles after its insert, as a writer descheduled before
      // its commit would; the second write starts meanwhile.
      let dawdle = true;
      const slow: SqlDatabase = {
        ...sql,
        query: (...args) => sql.query(...args),
        transaction: (work) =>
          sql.transaction(async (tx) => {
            const wait = dawdle;
            dawdle = false;
            const result = await work(tx);
            if (wait) await new Promise((resolve) => setTimeout(resolve, 400));
            return result;
          }),
      };
      const store = createSqlNotificationStore(slow);
      assert.equal(await store.latestSeq(), '0');
      const [first, second] = [milestone('post/1', 100), milestone('post/2', 100)];
      const writes = [store.record([first]), sleep(100).then(() => store.record([second]))];
      const seen: string[] = [];
      let cursor = '0';
      const deadline = Date.now() + 3_000;
      while (seen.length < 2 && Date.now() < deadline) {
        for (const n of await store.since(cursor, {}, 1_000)) {
          seen.push(n.id);
          cursor = n.seq;
        }
        await sleep(20);
      }
      await Promise.all(writes);
      assert.deepEqual(seen, [first.id, second.id], 'the reader saw both, in seq order');
    });

    test('reads are kept per recipient, and only for notifications addressed to it', async (t) => {
      const { store } = await open(t);
      const a = milestone('post/1', 100, ['user:u1', 'user:u2']);
      const b = milestone('post/1', 200, ['user:u2']);
      await store.record([a, b]);
      assert.equal(await store.markRead('user:u1', [a.id, b.id, 'nope']), 1, 'b is not addressed to u1');
      assert.equal(await store.markRead('user:u1', [a.id]), 0, 'already read');
      const u1 = (await store.list({ recipient: 'user:u1', limit: 10 })).notifications;
      assert.deepEqual(
        u1.map((n) => [n.id, n.read]),
        [[a.id, true]],
      );
      const u2 = (await store.list({ recipient: 'user:u2', limit: 10 })).notifications;
      assert.deepEqual(
        u2.map((n) => [n.id, n.read]),
        [
          [b.id, false],
          [a.id, false],
        ],
      );
      assert.equal(await store.markRead('user:u2', []), 0);
    });
  });
}
