/**
 * The dashboard page and the WebSocket /v1/stream of a gateway whose query
 * service and event log are in-memory fakes: the protocol, the pushes, the
 * assets and the shutdown, without servers. The counters' timing runs on a
 * clock and timers the test moves.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { type TestContext, test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { WebSocket } from 'ws';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import type { BatchHandler, ConsumerOptions, EventLog } from '../infra/log/event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { encodeEvent, newEvent } from '../pipeline/event-codec.ts';
import { StreamClient, type StreamMessage } from '../testing/stream-client.ts';
import { type Gateway, type GatewayDeps, start } from './gateway.ts';
import { createStreamServer } from './stream-server.ts';

/** An event log whose only consumer is driven by the test. */
class FakeLog {
  handler: BatchHandler | undefined;
  options: ConsumerOptions | undefined;
  stopped = 0;
  #offset = 0n;

  asEventLog(): EventLog {
    return {
      description: 'fake',
      consumer: (options: ConsumerOptions) => {
        this.options = options;
        return {
          run: async (handler: BatchHandler) => {
            this.handler = handler;
          },
          stop: async () => {
            this.stopped++;
          },
        };
      },
    } as unknown as EventLog;
  }

  async push(events: { type: string; target: string; userId?: string; value?: number }[]): Promise<void> {
    const now = Date.now();
    await this.handler!(
      {
        topic: 'events',
        partition: 0,
        records: events.map((e, i) => ({
          key: null,
          value: encodeEvent(
            newEvent({ id: `e${this.#offset}-${i}`, ...e, receivedAt: timestampFromMs(now) }),
          ),
          headers: {},
          offset: this.#offset++,
          timestampMs: now,
        })),
      },
      { heartbeat: async () => {}, isActive: () => true },
    );
  }
}

/** A query service answering from maps the test changes. */
function fakeQuery() {
  const counters = new Map<string, { type: string; count: number; sum: number }[]>();
  const leaders: { type: string; targets: { target: string; count: number }[] }[] = [];
  const calls = { topTargets: 0, getCounters: 0 };
  const client = {
    async topTargets(request: { limit?: number }) {
      calls.topTargets++;
      assert.equal(request.limit, 10);
      return {
        leaders: leaders.map((l) => ({
          type: l.type,
          targets: l.targets.map((t) => ({ target: t.target, count: BigInt(t.count) })),
        })),
      };
    },
    async getCounters(request: { target?: string }) {
      calls.getCounters++;
      const counts = counters.get(request.target ?? '') ?? [];
      return { target: request.target, counts: counts.map((c) => ({ ...c, count: BigInt(c.count) })) };
    },
    async getReport() {
      throw new Error('not used');
    },
    close() {},
  };
  return { client: client as unknown as GatewayDeps['query'], counters, leaders, calls };
}

async function startGateway(live: FakeLog | undefined) {
  const query = fakeQuery();
  const deps: GatewayDeps = {
    ingest: {} as unknown as ServiceClient<never>,
    query: query.client,
    logger: createLogger('error'),
    ...(live
      ? {
          live: {
            log: live.asEventLog(),
            eventsTopic: 'events',
            groupId: 'gateway-live-test',
            maxWaitMs: 100,
          },
        }
      : {}),
  } as GatewayDeps;
  const gateway: Gateway = await start(deps, {
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1024 * 1024,
    requestTimeoutMs: 5_000,
    drainTimeoutMs: 2_000,
  });
  return { gateway, query, base: `http://127.0.0.1:${gateway.port}` };
}

const isDashboard = (m: StreamMessage) => m.channel === 'dashboard';

test('the page and its assets: content types, ETags, caching, 304, 404 and 405', async (t) => {
  const { gateway, base } = await startGateway(undefined);
  t.after(() => gateway.stop());

  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  const etag = page.headers.get('etag');
  assert.match(etag ?? '', /^"[\w-]+"$/);
  const html = await page.text();
  const css = /href="(\/assets\/dashboard\.css\?v=[\w-]+)"/.exec(html)?.[1];
  const js = /src="(\/assets\/dashboard\.js\?v=[\w-]+)"/.exec(html)?.[1];
  assert.ok(css && js, 'the page links versioned assets');

  const again = await fetch(`${base}/`, { headers: { 'if-none-match': etag! } });
  assert.equal(again.status, 304);

  for (const [path, type] of [
    [css, 'text/css; charset=utf-8'],
    [js, 'text/javascript; charset=utf-8'],
    ['/assets/favicon.svg', 'image/svg+xml'],
  ] as const) {
    const response = await fetch(`${base}${path}`);
    assert.equal(response.status, 200, path);
    assert.equal(response.headers.get('content-type'), type, path);
    assert.ok(response.headers.get('etag'), path);
    assert.ok((await response.arrayBuffer()).byteLength > 0, path);
  }
  assert.equal(
    (await fetch(`${base}${css}`)).headers.get('cache-control'),
    'public, max-age=31536000, immutable',
  );
  assert.equal((await fetch(`${base}/assets/dashboard.css`)).headers.get('cache-control'), 'no-cache');
  const head = await fetch(`${base}${js}`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');

  const missing = await fetch(`${base}/assets/nope.js`);
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), {
    error: {
      code: 404,
      status: 'NOT_FOUND',
      message: 'no asset /assets/nope.js',
      details: [
        { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'NOT_FOUND', domain: 'tally.dev' },
      ],
    },
  });
  const post = await fetch(`${base}/`, { method: 'POST', body: '{}' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  assert.deepEqual(await post.json(), {
    error: {
      code: 405,
      status: 'METHOD_NOT_ALLOWED',
      message: '/ accepts GET, HEAD',
      details: [
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'METHOD_NOT_ALLOWED',
          domain: 'tally.dev',
          metadata: { allow: 'GET, HEAD' },
        },
      ],
    },
  });

  const plain = await fetch(`${base}/v1/stream`);
  assert.equal(plain.status, 426);
  assert.match(((await plain.json()) as { error: { message: string } }).error.message, /WebSocket/);
});

test('a malformed request target is a 400, not a crash; a path with // is an ordinary 404', async (t) => {
  const { gateway } = await startGateway(undefined);
  t.after(() => gateway.stop());
  const raw = async (target: string) => {
    const socket = connect(gateway.port, '127.0.0.1');
    socket.write(`GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString();
  };
  assert.match(await raw('//'), /^HTTP\/1\.1 404 [\s\S]*"no route for GET \/\/"/);
  assert.match(await raw('http://a:99999/'), /^HTTP\/1\.1 400 [\s\S]*"field":"path"/);
  assert.equal((await fetch(`http://127.0.0.1:${gateway.port}/healthz`)).status, 200);
});

test('a WebSocket elsewhere than /v1/stream is refused with 404', async (t) => {
  const { gateway } = await startGateway(undefined);
  t.after(() => gateway.stop());
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}/v1/elsewhere`);
  const status = await new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
    ws.on('error', () => resolve(-1));
  });
  assert.equal(status, 404);
});

test('bad messages get an error naming the field; the socket stays usable', async (t) => {
  const { gateway } = await startGateway(undefined);
  t.after(() => gateway.stop());
  const client = await StreamClient.connect(gateway.port);
  t.after(() => client.close());

  const hello = await client.next((m) => m.channel === 'hello');
  assert.equal(hello.protocol, 1);
  assert.deepEqual(hello.limits, {
    maxMessageBytes: 262_144,
    maxTargets: 100,
    maxTargetChars: 2048,
    maxMessagesPerSecond: 20,
    tickMs: 500,
  });

  client.send('not json');
  assert.match(
    (await client.next((m) => m.channel === 'error')).message as string,
    /^message: is not valid JSON/,
  );
  const before = client.messages.length;
  client.send({ op: 'subscribe', channel: 'countres', id: 'x1' });
  assert.deepEqual(await client.next((m) => m.channel === 'error', 5_000, before), {
    channel: 'error',
    message: 'channel: must be "dashboard", "counters", "notifications" or "entities", not "countres"',
    field: 'channel',
    id: 'x1',
  });
  const mark = client.messages.length;
  client.send({
    op: 'subscribe',
    channel: 'counters',
    targets: Array.from({ length: 101 }, (_, i) => `t${i}`),
  });
  assert.match(
    (await client.next((m) => m.channel === 'error', 5_000, mark)).message as string,
    /^targets: must hold at most 100 targets \(got 101\)/,
  );
  const binary = client.messages.length;
  client.ws.send(Buffer.from([1, 2, 3]));
  assert.equal(
    (await client.next((m) => m.channel === 'error', 5_000, binary)).message,
    'message: must be a text frame holding JSON',
  );

  client.send({ op: 'subscribe', channel: 'dashboard' });
  const dashboard = await client.next(isDashboard);
  assert.deepEqual(dashboard.live, { state: 'off', reason: 'this gateway has no live feed configured' });
  assert.deepEqual(dashboard.alerts, []);
});

test('a message over the size limit closes the socket with 1009', async (t) => {
  const { gateway } = await startGateway(undefined);
  t.after(() => gateway.stop());
  const client = await StreamClient.connect(gateway.port);
  client.send({ op: 'subscribe', channel: 'counters', targets: ['x'.repeat(300_000)] });
  assert.equal(await client.closedWith(), 1009);
});

test('a socket sending faster than its message rate gets its extra messages refused', async (t) => {
  const { gateway } = await startGateway(undefined);
  t.after(() => gateway.stop());
  const client = await StreamClient.connect(gateway.port);
  t.after(() => client.close());
  for (let i = 0; i < 60; i++) client.send({ op: 'unsubscribe', channel: 'dashboard', id: i });
  const refused = await client.next((m) => m.channel === 'error');
  assert.equal(refused.message, 'message: too many messages (at most 20 per second); this one was ignored');
  await client.next((m) => m.channel === 'unsubscribed' && m.id === 39);
  const probe = client.messages.length;
  client.send({ op: 'unsubscribe', channel: 'dashboard', id: 'last' });
  await client.next(() => true, 5_000, probe); // answered or refused: every message gets its reply, in order
  const answered = client.messages.filter((m) => m.channel === 'unsubscribed' && m.id !== 'last').length;
  assert.ok(answered >= 40 && answered < 50, `${answered} of 60 answered`);
});

test('the per-socket cap of counters targets holds across messages', async (t) => {
  const { gateway } = await startGateway(undefined);
  t.after(() => gateway.stop());
  const client = await StreamClient.connect(gateway.port);
  t.after(() => client.close());
  const targets = (from: number, n: number) => Array.from({ length: n }, (_, i) => `t${from + i}`);
  client.send({ op: 'subscribe', channel: 'counters', targets: targets(0, 60) });
  const first = await client.next((m) => m.channel === 'subscribed');
  assert.equal((first.targets as string[]).length, 60);
  const mark = client.messages.length;
  client.send({ op: 'subscribe', channel: 'counters', targets: targets(50, 60) });
  const refused = await client.next((m) => m.channel === 'error', 5_000, mark);
  assert.match(
    refused.message as string,
    /^targets: a socket watches at most 100 targets \(60 already, 50 more asked\)/,
  );
  const unsub = client.messages.length;
  client.send({ op: 'unsubscribe', channel: 'counters', targets: targets(0, 30) });
  const left = await client.next((m) => m.channel === 'unsubscribed', 5_000, unsub);
  assert.equal((left.targets as string[]).length, 30);
});

test('the dashboard shows the live feed: rate, totals per type, leaders and the latest events', async (t) => {
  const log = new FakeLog();
  const { gateway, query } = await startGateway(log);
  t.after(() => gateway.stop());
  const opened = () => log.options; // read afresh after each step
  assert.equal(opened(), undefined, 'nobody watches yet: no consumer');

  const client = await StreamClient.connect(gateway.port);
  t.after(() => client.close());
  assert.equal(log.options?.groupId, 'gateway-live-test');
  assert.equal(log.options?.fromBeginning, false);
  assert.deepEqual(log.options?.topics, ['events']);
  client.send({ op: 'subscribe', channel: 'dashboard' });
  await client.next((m) => m.channel === 'subscribed' && m.subscription === 'dashboard');
  await client.next((m) => isDashboard(m) && (m.live as { state: string }).state === 'live');

  query.leaders.push({ type: 'click', targets: [{ target: 'home', count: 3 }] });
  await log.push([
    { type: 'click', target: 'home', userId: 'u1' },
    { type: 'click', target: 'home', userId: 'u2', value: 2.5 },
    { type: 'view', target: 'about', userId: 'u1' },
  ]);
  const seen = await client.next((m) => isDashboard(m) && (m.totals as { events: number }).events === 3);
  assert.ok((seen.rate as { perSecond: number }).perSecond > 0);
  assert.deepEqual((seen.totals as { types: unknown }).types, [
    { type: 'click', count: 2 },
    { type: 'view', count: 1 },
  ]);
  const latest = seen.latest as { type: string; target: string; userId: string; value: number | null }[];
  assert.deepEqual(
    latest.map((e) => [e.type, e.target, e.userId, e.value]),
    [
      ['view', 'about', 'u1', null],
      ['click', 'home', 'u2', 2.5],
      ['click', 'home', 'u1', null],
    ],
  );
  const withLeaders = await client.next(
    (m) => isDashboard(m) && (m.top as { types: unknown[] }).types.length === 1,
  );
  assert.deepEqual((withLeaders.top as { types: unknown }).types, [
    { type: 'click', targets: [{ target: 'home', count: 3 }] },
  ]);
});

/**
 * A stream server alone behind an HTTP server, on a clock and interval timers the test moves:
 * `advance(ms)` moves both, and waits until what the timers started has run.
 */
async function startStreamServer(t: TestContext, log: FakeLog) {
  t.mock.timers.enable({ apis: ['setInterval'] });
  let clock = Date.now();
  const query = fakeQuery();
  const stream = createStreamServer({
    query: query.client,
    live: { log: log.asEventLog(), eventsTopic: 'events', groupId: 'stream-test', maxWaitMs: 100 },
    logger: createLogger('error'),
    now: () => clock,
  });
  const server = createServer((_, response) => response.end());
  server.on('upgrade', (request, socket, head) => stream.handleUpgrade(request, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    await stream.stop();
    server.close();
  });
  const advance = async (ms: number) => {
    clock += ms;
    t.mock.timers.tick(ms);
    await new Promise((resolve) => setImmediate(resolve)); // the fake query answers in microtasks
  };
  return { port: (server.address() as AddressInfo).port, query, advance };
}

test('counters are pushed on subscription, re-read while events for the target settle, and pushed only when changed', async (t) => {
  const log = new FakeLog();
  const { port, query, advance } = await startStreamServer(t, log);
  query.counters.set('post/1', [{ type: 'like', count: 4, sum: 0 }]);
  const client = await StreamClient.connect(port);
  t.after(() => client.close());
  client.send({ op: 'subscribe', channel: 'counters', targets: ['post/1', 'post/2'], id: 1 });
  assert.deepEqual((await client.next((m) => m.channel === 'subscribed')).targets, ['post/1', 'post/2']);
  const initial = await client.next((m) => m.channel === 'counters' && m.target === 'post/1');
  assert.deepEqual(initial.counts, [{ type: 'like', count: 4, sum: 0 }]);
  await client.next((m) => m.channel === 'counters' && m.target === 'post/2');

  // Whatever the server sent before answering this, the client has once it has the answer.
  let barriers = 0;
  const barrier = async () => {
    const id = `barrier-${++barriers}`;
    client.send({ op: 'unsubscribe', channel: 'dashboard', id });
    await client.next((m) => m.channel === 'unsubscribed' && m.id === id);
  };
  const pushedSince = (mark: number) => client.messages.slice(mark).filter((m) => m.channel === 'counters');
  /** One counters round (every 250 ms): how many targets it read. */
  const round = async () => {
    const before = query.calls.getCounters;
    await advance(250);
    return query.calls.getCounters - before;
  };

  // The counter role applies an event after the live feed saw it: the target is re-read, an
  // unchanged read pushes nothing, and the change is pushed once it shows.
  const mark = client.messages.length;
  await log.push([{ type: 'like', target: 'post/1' }]);
  assert.equal(await round(), 1, 'post/1 is hot: read; post/2 is not');
  await barrier();
  assert.deepEqual(pushedSince(mark), [], 'unchanged counters are not pushed');
  query.counters.set('post/1', [{ type: 'like', count: 5, sum: 0 }]);
  assert.equal(await round(), 1);
  const updated = await client.next((m) => m.channel === 'counters', 5_000, mark);
  assert.deepEqual([updated.target, updated.counts], ['post/1', [{ type: 'like', count: 5, sum: 0 }]]);

  // Re-read every round for 3 s (countersSettleMs) after the event, then no more.
  for (let elapsedMs = 750; elapsedMs <= 3_000; elapsedMs += 250)
    assert.equal(await round(), 1, `read ${elapsedMs} ms after the event`);
  assert.equal(await round(), 0, 'settled: no read 3.25 s after the event');
  await barrier();
  assert.equal(pushedSince(mark).length, 1, 'the change was pushed once');

  // An event for a target nobody watches costs no read; one for a watched target does.
  await log.push([{ type: 'like', target: 'post/99' }]);
  assert.equal(await round(), 0);
  await log.push([{ type: 'like', target: 'post/2' }]);
  assert.equal(await round(), 1);
});

test('stopping the gateway closes sockets with 1001 and stops the live consumer', async () => {
  const log = new FakeLog();
  const { gateway } = await startGateway(log);
  const client = await StreamClient.connect(gateway.port);
  client.send({ op: 'subscribe', channel: 'dashboard' });
  await client.next(isDashboard);
  await gateway.stop();
  assert.equal(await client.closedWith(), 1001);
  assert.equal(client.closed?.reason, 'server shutting down');
  assert.equal(log.stopped, 1);
});
