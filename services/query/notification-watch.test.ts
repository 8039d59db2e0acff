/**
 * The watch hub on a migrated PGlite (the same SQL the query role runs on PostgreSQL, where
 * notifications.integration.test.ts runs it end to end): replays, truncation, filters, and a
 * watch whose client does not read.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DASHBOARD_RECIPIENT, type Notification } from '../infra/alerts/notification-store.ts';
import { createSqlNotificationStore } from '../infra/alerts/sql-notification-store.ts';
import { createLogger } from '../infra/logger.ts';
import { migratedPgliteCopies } from '../testing/migrated-sql.ts';
import { createNotificationWatches, type WatchEvent } from './notification-watch.ts';

const database = migratedPgliteCopies('notification-watch');
let made = 0;
const note = (target: string, recipients = ['user:u1', DASHBOARD_RECIPIENT]): Notification => ({
  id: `n${made++}`,
  ruleId: 'r1',
  kind: 'milestone',
  target,
  type: 'like',
  value: 100,
  threshold: 100,
  occurredAt: new Date(),
  recipients,
  message: `${target} reached 100 likes`,
});

/** Collects a watch's events until `until` says so. */
async function collect(events: AsyncIterable<WatchEvent>, until: (seen: WatchEvent[]) => boolean) {
  const seen: WatchEvent[] = [];
  for await (const event of events) {
    seen.push(event);
    if (until(seen)) break;
  }
  return seen;
}
const describe = (e: WatchEvent) =>
  e.kind === 'notification' ? e.notification.id : e.kind === 'truncated' ? 'truncated' : 'caught-up';

test('a resuming watch gets the newest it missed (a replay at most), caught-up, then the live ones it matches', async (t) => {
  const { sql, cleanup } = await database();
  t.after(cleanup);
  const store = createSqlNotificationStore(sql);
  const watches = createNotificationWatches({
    store,
    logger: createLogger('error'),
    pollMs: 20,
    replayMax: 3,
  });
  t.after(() => watches.stop());
  const { stored } = await store.record([
    note('post/1'),
    note('post/2'),
    note('post/3'),
    note('post/4'),
    note('post/5'),
  ]);
  const stop = new AbortController();
  const events = watches.watch({ recipients: ['user:u1'] }, stored[0]!.seq, stop.signal);
  const live = [note('post/6', ['user:u2']), note('post/7')];
  const seen = collect(events, (s) => {
    if (s.at(-1)?.kind === 'caught-up') void store.record(live);
    return describe(s.at(-1)!) === live[1]!.id;
  });
  const got = await seen;
  assert.deepEqual(got.map(describe), [
    'truncated',
    stored[2]!.id,
    stored[3]!.id,
    stored[4]!.id,
    'caught-up',
    live[1]!.id,
  ]);
  assert.deepEqual(got[0], { kind: 'truncated', resumedAtSeq: stored[2]!.seq });
  assert.deepEqual(got[4], { kind: 'caught-up', seq: stored[4]!.seq });
  assert.equal(watches.size, 0, 'a watch left is forgotten');
});

test('a watch without a seq starts live; a target watch sees that target only; stop ends them', async (t) => {
  const { sql, cleanup } = await database();
  t.after(cleanup);
  const store = createSqlNotificationStore(sql);
  const watches = createNotificationWatches({ store, logger: createLogger('error'), pollMs: 20 });
  await store.record([note('post/1')]);
  const events = watches.watch({ target: 'post/2' }, undefined, new AbortController().signal);
  const got = collect(events, (s) => {
    if (s.length === 1) void store.record([note('post/1'), note('post/2', ['group:ops'])]);
    if (s.length === 2) watches.stop();
    return false;
  });
  assert.deepEqual(
    (await got).map((e) => (e.kind === 'notification' ? e.notification.target : e.kind)),
    ['caught-up', 'post/2'],
  );
});

test('a watch whose client does not read ends with RESOURCE_EXHAUSTED, and the others go on', async (t) => {
  const { sql, cleanup } = await database();
  t.after(cleanup);
  const store = createSqlNotificationStore(sql);
  const watches = createNotificationWatches({
    store,
    logger: createLogger('error'),
    pollMs: 20,
    maxQueued: 5,
  });
  t.after(() => watches.stop());
  const stop = new AbortController();
  const slow = watches
    .watch({ recipients: [DASHBOARD_RECIPIENT] }, undefined, stop.signal)
    [Symbol.asyncIterator]();
  assert.equal((await slow.next()).value?.kind, 'caught-up');
  const reader = collect(
    watches.watch({ recipients: [DASHBOARD_RECIPIENT] }, undefined, stop.signal),
    (s) => s.length === 11,
  );
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (let i = 0; i < 10; i++) await store.record([note(`post/${i}`)]);
  assert.equal((await reader).length, 11);
  await assert.rejects(
    (async () => {
      for (;;) if ((await slow.next()).done) return;
    })(),
    /fell 5 notifications behind/,
  );
});
