/**
 * Reading notifications on the real servers: the query role (its own process) serves the
 * listings, read marks and WatchNotifications from PostgreSQL; a gateway (another process) serves
 * them over REST and the WebSocket's channel `notifications`. Notifications are recorded in the
 * store as the alerter records them. A socket sees each notification once and in order: live,
 * after its own reconnect (resuming after the last seq it saw), and across a restart of the query
 * process (the gateway opens the stream again after the last seq it delivered).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NotificationService } from './gen/tally/v1/notifications_pb.js';
import { DASHBOARD_RECIPIENT, type Notification } from './infra/alerts/notification-store.ts';
import { createSqlNotificationStore } from './infra/alerts/sql-notification-store.ts';
import { createGrpcClient } from './infra/grpc/grpc-service.ts';
import { createPgDatabase } from './infra/sql/pg-database.ts';
import { realServers, requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { StreamClient, type StreamMessage } from './testing/stream-client.ts';
import { Backends, http } from './testing/tally-client.ts';
import { freePort, startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

let made = 0;
/** A milestone of `target` for user u1 and the dashboard (ids unique per test run). */
function milestone(
  target: string,
  threshold: number,
  recipients = ['user:u1', DASHBOARD_RECIPIENT],
): Notification {
  return {
    id: `test:${process.pid}:${made++}:${target}:${threshold}`,
    ruleId: 'ar_test',
    kind: 'milestone',
    target,
    type: 'like',
    value: threshold,
    threshold,
    occurredAt: new Date(),
    recipients,
    message: `${target} reached ${threshold} likes`,
  };
}

/** Waits for the process to have migrated its schema (it migrates while its edge starts). */
async function migrated(tally: TallyProcess): Promise<void> {
  await waitFor(
    () => tally.lines.some((l) => l.includes('applied migrations')),
    () => `no migrations applied: ${tally.lines.slice(-3).join('\n')}`,
  );
}

const isNotification = (m: StreamMessage) => m.channel === 'notification';
const idOf = (m: StreamMessage) => (m.notification as { id: string }).id;
const seqOf = (m: StreamMessage) => (m.notification as { seq: string }).seq;

test('notifications: listed, marked read, and watched over the WebSocket without loss or repeats', {
  timeout: 240_000,
}, async (t) => {
  const ns = testNamespace(2);
  const backends = new Backends(ns);
  const queryPort = await freePort();
  const env = { ...ns.env, TALLY_NOTIFICATIONS_POLL_MS: '100' };
  let query: TallyProcess = await startTally(['query'], { ...env, TALLY_GRPC_PORT: String(queryPort) });
  const edge = await startTally(['gateway', 'ingest'], {
    ...env,
    TALLY_QUERY_ADDR: `127.0.0.1:${queryPort}`,
  });
  const sql = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema: ns.pgSchema, poolSize: 2 });
  const store = createSqlNotificationStore(sql);
  const sockets: StreamClient[] = [];
  t.after(async () => {
    for (const s of sockets) s.close();
    await Promise.all([query.kill('SIGKILL'), edge.kill('SIGKILL')]);
    await sql.close();
    await backends.cleanup();
  });
  const connect = async () => {
    const socket = await StreamClient.connect(edge.httpPort!);
    sockets.push(socket);
    return socket;
  };

  // REST: a listing, newest first, a page at a time; read marks per recipient.
  const first = [milestone('post/1', 100), milestone('post/1', 1_000), milestone('post/2', 100, ['user:u2'])];
  await store.record(first);
  const page1 = await http(edge.httpPort!, 'GET', '/v1/notifications?recipient=user:u1&pageSize=1');
  assert.equal(page1.status, 200, page1.text);
  const body1 = page1.body as {
    notifications: { id: string; read: boolean; seq: string }[];
    nextPageToken: string;
  };
  assert.deepEqual(
    body1.notifications.map((n) => [n.id, n.read]),
    [[first[1]!.id, false]],
  );
  const page2 = await http(
    edge.httpPort!,
    'GET',
    `/v1/notifications?recipient=user:u1&pageSize=1&pageToken=${body1.nextPageToken}`,
  );
  assert.deepEqual(
    (page2.body as typeof body1).notifications.map((n) => n.id),
    [first[0]!.id],
  );
  const marked = await http(edge.httpPort!, 'POST', '/v1/notifications:read', {
    recipient: 'user:u1',
    ids: [first[0]!.id, first[2]!.id],
  });
  assert.deepEqual(marked.body, { marked: 1 }, 'the third is not addressed to u1');
  const after = await http(edge.httpPort!, 'GET', '/v1/notifications?recipient=user:u1');
  assert.deepEqual(
    (after.body as typeof body1).notifications.map((n) => [n.id, n.read]),
    [
      [first[1]!.id, false],
      [first[0]!.id, true],
    ],
  );
  const bad = await http(edge.httpPort!, 'GET', '/v1/notifications?recipient=someone');
  assert.equal(bad.status, 400);
  assert.match(bad.text, /recipient/);
  const noIds = await http(edge.httpPort!, 'POST', '/v1/notifications:read', {
    recipient: 'user:u1',
    ids: [],
  });
  assert.equal(noIds.status, 400);
  assert.match(noIds.text, /ids/);

  // WebSocket: a subscription gets the live ones (not those kept before it), in order.
  const socket = await connect();
  socket.send({ op: 'subscribe', channel: 'notifications', recipient: 'user:u1', id: 'n1' });
  const subscribed = await socket.next((m) => m.channel === 'subscribed', 10_000);
  assert.deepEqual(subscribed, {
    channel: 'subscribed',
    subscription: 'notifications',
    subscriptions: [{ recipient: 'user:u1', target: '' }],
    id: 'n1',
  });
  const live = [milestone('post/3', 100), milestone('post/4', 100, ['user:u2']), milestone('post/3', 1_000)];
  for (const n of live) await store.record([n]);
  const seen = await socket.next((m) => isNotification(m) && idOf(m) === live[2]!.id, 10_000);
  assert.deepEqual(
    socket.messages.filter(isNotification).map(idOf),
    [live[0]!.id, live[2]!.id],
    'only those for user:u1, each once, in order',
  );
  assert.deepEqual((seen.notification as { recipients: string[] }).recipients, [
    'user:u1',
    DASHBOARD_RECIPIENT,
  ]);

  // The client reconnects: resumed after the last seq it saw, it gets what it missed, once.
  const lastSeen = seqOf(seen);
  socket.close();
  const missed = [milestone('post/5', 100), milestone('post/5', 1_000)];
  for (const n of missed) await store.record([n]);
  const again = await connect();
  again.send({ op: 'subscribe', channel: 'notifications', recipient: 'user:u1', afterSeq: lastSeen });
  await again.next((m) => m.channel === 'subscribed', 10_000);
  await store.record([milestone('post/6', 100)]);
  await again.next((m) => isNotification(m) && idOf(m).endsWith(':post/6:100'), 10_000);
  assert.deepEqual(
    again.messages.filter(isNotification).map(idOf).slice(0, 2),
    missed.map((n) => n.id),
  );
  assert.equal(again.messages.filter(isNotification).length, 3, 'the missed two, then the live one');
  const caughtUp = again.messages.findIndex((m) => m.channel === 'notifications' && m.event === 'caughtUp');
  const firstLive = again.messages.findIndex((m) => isNotification(m) && idOf(m).endsWith(':post/6:100'));
  assert.ok(caughtUp >= 0 && caughtUp < firstLive, 'caughtUp comes between the replay and the live ones');

  // The query process restarts: the gateway opens the stream again after the last seq it
  // delivered; notifications recorded meanwhile arrive once.
  const before = again.messages.filter(isNotification).length;
  await query.kill('SIGKILL');
  const during = [milestone('post/7', 100), milestone('post/7', 1_000)];
  for (const n of during) await store.record([n]);
  query = await startTally(['query'], { ...env, TALLY_GRPC_PORT: String(queryPort) });
  await store.record([milestone('post/8', 100)]);
  await again.next((m) => isNotification(m) && idOf(m).endsWith(':post/8:100'), 60_000);
  const afterRestart = again.messages.filter(isNotification).slice(before).map(idOf);
  assert.deepEqual(
    afterRestart.slice(0, 2),
    during.map((n) => n.id),
  );
  assert.equal(afterRestart.length, 3, `${afterRestart}`);
  const ids = again.messages.filter(isNotification).map(idOf);
  assert.equal(new Set(ids).size, ids.length, 'none twice');

  // A target subscription; a bad one gets an error naming the field, and the socket goes on.
  again.send({ op: 'subscribe', channel: 'notifications', recipient: 'nobody' });
  const error = await again.next((m) => m.channel === 'error', 10_000);
  assert.equal(error.field, 'recipient');
  again.send({ op: 'subscribe', channel: 'notifications', target: 'post/9' });
  await again.next((m) => m.channel === 'subscribed' && (m.subscriptions as unknown[]).length === 2, 10_000);
  await store.record([milestone('post/9', 100, ['group:ops'])]);
  const aboutTarget = await again.next((m) => isNotification(m) && idOf(m).endsWith(':post/9:100'), 10_000);
  assert.deepEqual(aboutTarget.subscription, { recipient: '', target: 'post/9' });
});

test('WatchNotifications over gRPC: a replay after a seq, caught_up, then the live ones', {
  timeout: 120_000,
}, async (t) => {
  const ns = testNamespace(2);
  const backends = new Backends(ns);
  const query = await startTally(['query'], { ...ns.env, TALLY_NOTIFICATIONS_POLL_MS: '100' });
  const sql = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema: ns.pgSchema, poolSize: 2 });
  const store = createSqlNotificationStore(sql);
  const client = createGrpcClient(NotificationService, `127.0.0.1:${query.grpcPort}`);
  await migrated(query);
  const stop = new AbortController();
  t.after(async () => {
    stop.abort();
    client.close();
    await query.kill('SIGKILL');
    await sql.close();
    await backends.cleanup();
  });
  const kept = await store.record([
    milestone('post/1', 100),
    milestone('post/1', 1_000),
    milestone('post/1', 10_000),
  ]);
  const events: string[] = [];
  const watching = (async () => {
    for await (const answer of client.watchNotifications(
      { recipient: 'dashboard', afterSeq: BigInt(kept.stored[0]!.seq) },
      { signal: stop.signal },
    )) {
      const { event } = answer;
      events.push(event.case === 'notification' ? event.value.id : String(event.case));
      if (event.case === 'caughtUp') await store.record([milestone('post/2', 100)]);
      if (events.length === 4) stop.abort();
    }
  })();
  await watching;
  assert.deepEqual(events, [kept.stored[1]!.id, kept.stored[2]!.id, 'caughtUp', events[3]]);
  assert.match(events[3]!, /:post\/2:100$/);

  // Refusals name the field.
  await assert.rejects(
    (async () => {
      for await (const _ of client.watchNotifications({})) break;
    })(),
    (error: Error & { field?: string }) => error.field === 'recipient',
  );
});
