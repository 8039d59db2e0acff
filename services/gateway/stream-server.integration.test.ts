/**
 * The WebSocket /v1/stream of `tally all` on the real servers, with the `ws`
 * client: a bad message gets an error naming the problem; a counters
 * subscription receives the exact counters of a target after events for it;
 * SIGTERM closes the socket with 1001 and tally still drains to exit 0.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { requireRealServers, testNamespace } from '../testing/real-servers.ts';
import { StreamClient, type StreamMessage } from '../testing/stream-client.ts';
import { Backends, http } from '../testing/tally-client.ts';
import { startTally, type TallyProcess } from '../testing/tally-process.ts';

await requireRealServers();

interface Counts {
  type: string;
  count: number;
  sum: number;
}

test('the stream protocol on a running tally', { timeout: 180_000 }, async (t) => {
  const ns = testNamespace(6);
  const backends = new Backends(ns);
  let tally: TallyProcess | undefined;
  let client: StreamClient | undefined;
  t.after(async () => {
    client?.close();
    await tally?.kill('SIGTERM');
    await backends.cleanup();
  });
  tally = await startTally(['all'], ns.env);
  client = await StreamClient.connect(tally.httpPort!);

  // A bad message: an error naming the field, and the socket goes on.
  client.send({ op: 'subscribe', channel: 'counters', targets: ['post/1', 42] });
  assert.deepEqual(await client.next((m) => m.channel === 'error'), {
    channel: 'error',
    message: 'targets[1]: must be a string, not number 42',
    field: 'targets[1]',
  });

  // The live feed has joined its group once the dashboard says so: events from now on are seen.
  client.send({ op: 'subscribe', channel: 'dashboard' });
  await client.next(
    (m) => m.channel === 'dashboard' && (m.live as { state: string }).state === 'live',
    60_000,
  );

  const target = `post/${randomUUID()}`;
  const quiet = `post/${randomUUID()}`;
  const mark = client.messages.length;
  client.send({ op: 'subscribe', channel: 'counters', targets: [target, quiet], id: 'c1' });
  assert.deepEqual(await client.next((m) => m.channel === 'subscribed', 10_000, mark), {
    channel: 'subscribed',
    subscription: 'counters',
    targets: [target, quiet],
    id: 'c1',
  });
  const isCounters = (of: string) => (m: StreamMessage) => m.channel === 'counters' && m.target === of;
  assert.deepEqual((await client.next(isCounters(target), 10_000, mark)).counts, []);
  assert.deepEqual((await client.next(isCounters(quiet), 10_000, mark)).counts, []);

  // 25 likes and 5 comments (values 1..5) in three requests, one like sent twice with its id.
  const likes = Array.from({ length: 25 }, (_, i) => ({
    id: randomUUID(),
    type: 'like',
    target,
    userId: `u${i}`,
  }));
  const comments = Array.from({ length: 5 }, (_, i) => ({
    id: randomUUID(),
    type: 'comment',
    target,
    userId: `u${i}`,
    value: i + 1,
  }));
  const afterSubscribe = client.messages.length;
  for (const events of [likes.slice(0, 10), [...likes.slice(10), ...comments], [likes[0]!]]) {
    const response = await http(tally.httpPort!, 'POST', '/v1/events:batch', { events });
    assert.equal(response.status, 200, response.text);
  }
  const want: Counts[] = [
    { type: 'comment', count: 5, sum: 15 },
    { type: 'like', count: 25, sum: 0 },
  ];
  const exact = await client.next(
    (m) => isCounters(target)(m) && JSON.stringify(m.counts) === JSON.stringify(want),
    30_000,
    afterSubscribe,
  );
  assert.deepEqual(exact.counts, want);
  // Pushes only ever go up to the exact counts, never past them.
  for (const m of client.messages.slice(afterSubscribe).filter(isCounters(target)))
    for (const c of m.counts as Counts[])
      assert.ok(c.count <= (want.find((w) => w.type === c.type)?.count ?? 0), JSON.stringify(m));
  assert.equal(
    client.messages.slice(afterSubscribe).filter(isCounters(quiet)).length,
    0,
    'a target without events gets no push',
  );

  // SIGTERM: the socket closes with 1001 and tally still drains to exit 0.
  const exited = tally.kill('SIGTERM');
  assert.equal(await client.closedWith(), 1001);
  assert.equal(await exited, 0);
});
