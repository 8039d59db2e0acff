/**
 * createGrpcClient balancing its calls (round_robin) over real gRPC servers: every address of a
 * multi-address target gets its share; a server that stops (drained, or gone with calls in flight)
 * leaves the rotation and the calls go on on the others; deadlines and error codes are unchanged.
 */
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { IngestService } from '../../gen/tally/v1/ingest_pb.js';
import { untilEvent } from '../../testing/until-event.ts';
import { AppError, Code } from '../app-error.ts';
import { createLogger } from '../logger.ts';
import { GrpcRegistry } from './grpc-registry.ts';
import { createGrpcClient, type GrpcServer, type ServiceClient } from './grpc-service.ts';

const logger = createLogger('error');

/** A running ingest server answering Publish with its own name, counting the calls it got. */
interface Backend {
  name: string;
  server: GrpcServer;
  calls: number;
  /** How long Publish takes, ms. */
  delayMs: number;
  /** While set, Publish waits for it before answering (calls held in flight). */
  gate: Promise<void> | undefined;
  /** Refuses new calls and closes, as a stopping process does (GrpcRegistry.drain, then shutdown). */
  stop(timeoutMs: number): Promise<void>;
}

async function startBackend(
  name: string,
  host = '127.0.0.1',
  port = 0,
  maxConnectionAgeMs?: number,
): Promise<Backend> {
  const registry = new GrpcRegistry(logger);
  const backend = { name, calls: 0, delayMs: 0, gate: undefined } as Backend;
  registry.register(IngestService, {
    async publish() {
      backend.calls++;
      publishEntered.emit('call');
      if (backend.gate) await backend.gate;
      if (backend.delayMs > 0) await new Promise((r) => setTimeout(r, backend.delayMs));
      return { id: name };
    },
    async publishBatch() {
      throw new AppError(Code.INVALID_ARGUMENT, `${name} refuses batches`, {
        fieldViolations: [{ field: 'events', description: 'refused' }],
      });
    },
    async publishStream(requests) {
      let accepted = 0n;
      for await (const _ of requests) accepted++;
      return { accepted };
    },
    async *publishStreamAcked() {},
  });
  backend.server = await registry.listen({ host, port, maxMessageBytes: 1 << 20, maxConnectionAgeMs });
  registry.setServing(true);
  backend.stop = (timeoutMs) => {
    registry.drain();
    return backend.server.shutdown(timeoutMs);
  };
  return backend;
}

type Ingest = ServiceClient<typeof IngestService.method>;

/** Emits 'call' each time a backend enters Publish (after counting it). */
const publishEntered = new EventEmitter();

/** Resolves once `condition()` holds, checked at each Publish entered; fails naming `what()` after 10 s. */
const untilCalls = (condition: () => boolean, what: () => string) =>
  untilEvent(publishEntered, 'call', condition, what, 10_000);

/** A gate for {@link Backend.gate}: calls wait on `promise` until `open()`. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Calls until every backend has answered once (each address connected), then zeroes the counts. */
async function untilAllServe(client: Ingest, backends: Backend[]): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (backends.some((b) => b.calls === 0)) {
    assert.ok(Date.now() < deadline, `not all served: ${backends.map((b) => `${b.name}=${b.calls}`)}`);
    await client.publish({});
  }
  for (const b of backends) b.calls = 0;
}

/** `count` calls, `concurrency` at a time: the name of the server that answered each, or its error. */
async function calls(client: Ingest, count: number, concurrency = 1): Promise<(string | AppError)[]> {
  const out: (string | AppError)[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        out.push(
          await client.publish({}).then(
            (r) => r.id,
            (e: AppError) => e,
          ),
        );
      }
    }),
  );
  return out;
}

function tally(answers: (string | AppError)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) {
    const key = typeof a === 'string' ? a : `error ${a.code}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

test('a multi-address target: calls spread evenly over every server; deadlines and error codes as before', async (t) => {
  const backends = await Promise.all(['a', 'b', 'c'].map((name) => startBackend(name)));
  t.after(() => Promise.all(backends.map((b) => b.server.shutdown(1_000))));
  const target = `ipv4:${backends.map((b) => `127.0.0.1:${b.server.port}`).join(',')}`;
  const client = createGrpcClient(IngestService, target, { defaultTimeoutMs: 5_000 });
  t.after(() => client.close());
  await untilAllServe(client, backends);

  const answers = await calls(client, 30);
  assert.deepEqual(tally(answers), { a: 10, b: 10, c: 10 }, 'one call each in turn');
  assert.deepEqual(
    backends.map((b) => b.calls),
    [10, 10, 10],
  );

  // Concurrent calls too: each server gets its share.
  const concurrent = tally(await calls(client, 60, 6));
  for (const name of ['a', 'b', 'c']) assert.ok((concurrent[name] ?? 0) >= 15, JSON.stringify(concurrent));

  // The error of a server arrives as before: its code and field.
  const refused = await client.publishBatch({}).then(
    () => assert.fail('answered'),
    (e: unknown) => e,
  );
  assert.ok(refused instanceof AppError);
  assert.equal(refused.code, Code.INVALID_ARGUMENT);
  assert.equal(refused.field, 'events');
  assert.match(refused.message, /^[abc] refuses batches$/);

  // A deadline still holds, whichever server the call goes to: no server answers until the gate
  // opens, so each call ends by its own 100 ms deadline, long before the client's 5 s default.
  const held = gate();
  t.after(held.open);
  for (const b of backends) b.gate = held.promise;
  for (let i = 0; i < backends.length; i++) {
    const started = performance.now();
    await assert.rejects(
      client.publish({}, { timeoutMs: 100 }),
      (e: unknown) => e instanceof AppError && e.code === Code.DEADLINE_EXCEEDED,
    );
    assert.ok(performance.now() - started < 4_000, 'the call waited past its own deadline');
  }
  held.open();
});

/** A TCP relay to `port` on 127.0.0.1 whose `drop()` cuts every connection, as a vanished pod's do. */
async function relay(port: number): Promise<{
  port: number;
  connections: () => number;
  /** Resolves once the relay has accepted `count` connections in all; fails after 10 s. */
  connected(count: number): Promise<void>;
  /** Resolves once every connection the client opened is closed by the client; fails after 10 s. */
  clientsClosed(): Promise<void>;
  drop(): void;
  freeze(): void;
}> {
  const sockets = new Set<Socket>();
  const incomings = new Set<Socket>();
  const events = new EventEmitter();
  let connections = 0;
  const until = (condition: () => boolean, what: () => string) =>
    untilEvent(events, 'change', condition, what, 10_000);
  const server = createServer((incoming) => {
    connections++;
    incomings.add(incoming);
    incoming.on('close', () => {
      incomings.delete(incoming);
      events.emit('change');
    });
    events.emit('change');
    const outgoing = connect(port, '127.0.0.1');
    for (const [from, to] of [
      [incoming, outgoing],
      [outgoing, incoming],
    ] as const) {
      sockets.add(from);
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
      from.pipe(to);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    connected: (count) =>
      until(
        () => connections >= count,
        () => `${connections} connection(s), not ${count}`,
      ),
    clientsClosed: () =>
      until(
        () => incomings.size === 0,
        () => `${incomings.size} client connection(s) still open`,
      ),
    /**
     * Forwards nothing more, either way, and keeps every connection open: a host gone silent. What
     * the client sends is read and discarded, so its closing a connection is seen.
     */
    freeze() {
      server.close();
      for (const socket of sockets) {
        socket.unpipe();
        if (incomings.has(socket)) socket.resume();
        else socket.pause();
      }
    },
    drop() {
      server.close();
      for (const socket of sockets) socket.resetAndDestroy();
    },
  };
}

test('a server that stops leaves the rotation: no call fails, the others take all of them', async (t) => {
  const backends = await Promise.all(['a', 'b', 'c'].map((name) => startBackend(name)));
  t.after(() => Promise.all(backends.map((b) => b.server.shutdown(1_000))));
  const [a, b, c] = backends as [Backend, Backend, Backend];
  const toC = await relay(c.server.port);
  t.after(() => toC.drop());
  const target = `ipv4:127.0.0.1:${a.server.port},127.0.0.1:${b.server.port},127.0.0.1:${toC.port}`;
  const client = createGrpcClient(IngestService, target, { defaultTimeoutMs: 5_000 });
  t.after(() => client.close());
  await untilAllServe(client, backends);

  // b stops as a draining process does while calls keep coming. b holds the calls it gets until
  // it has begun to stop; each of the 6 callers in turn lands on b and waits there, so once b holds
  // 6 calls every call in flight is on b (none half-delivered anywhere). b then stops: those 6
  // finish, and the rest of the 300 go to a and c.
  for (const x of backends) x.delayMs = 5;
  const bHolds = gate();
  b.gate = bHolds.promise;
  const during = calls(client, 300, 6);
  await untilCalls(
    () => b.calls === 6,
    () => `b holds ${b.calls} of the 6 callers`,
  );
  const stopping = b.stop(5_000);
  bHolds.open();
  await stopping;
  const duringAnswers = await during;
  assert.deepEqual(
    duringAnswers.filter((x) => x instanceof AppError),
    [],
    'a call failed while b stopped',
  );
  assert.equal(b.calls, 6, 'a stopping server got calls');
  assert.equal(
    duringAnswers.filter((x) => x === 'b').length,
    6,
    'the calls in flight on b were answered by b',
  );
  assert.equal(duringAnswers.length, 300);

  for (const x of backends) x.calls = 0;
  const after = tally(await calls(client, 30));
  assert.equal(b.calls, 0, 'a stopped server got calls');
  assert.deepEqual(after, { a: 15, c: 15 });

  // c's connection drops with calls in flight (the pod vanished, no goodbye): those calls fail
  // UNAVAILABLE (they had been sent: gRPC cannot know whether c handled them), and only those.
  // c holds its calls; the drop comes once each of the 10 calls has reached a or c.
  a.delayMs = 0;
  c.delayMs = 0;
  const cHolds = gate();
  t.after(cHolds.open);
  c.gate = cHolds.promise;
  a.calls = 0;
  c.calls = 0;
  const crashing = calls(client, 10, 10);
  await untilCalls(
    () => a.calls + c.calls === 10,
    () => `a=${a.calls} c=${c.calls} of 10 calls`,
  );
  const inFlightOnC = c.calls;
  assert.ok(inFlightOnC > 0, 'c got calls before it went away');
  toC.drop();
  const crashAnswers = await crashing;
  const failed = crashAnswers.filter((x) => x instanceof AppError);
  assert.equal(failed.length, inFlightOnC, JSON.stringify(tally(crashAnswers)));
  for (const e of failed) assert.equal(e.code, Code.UNAVAILABLE, e.message);
  assert.equal(crashAnswers.length - failed.length, 10 - inFlightOnC);

  // The next calls all go to a, the one left.
  c.calls = 0;
  cHolds.open();
  assert.deepEqual(tally(await calls(client, 20, 4)), { a: 20 });
  assert.equal(c.calls, 0);
});

test('the server ends old connections (max connection age): the client reconnects, streams run to their end', async (t) => {
  const a = await startBackend('a', '127.0.0.1', 0, 400);
  t.after(() => a.server.shutdown(1_000));
  const toA = await relay(a.server.port);
  t.after(() => toA.drop());
  const client = createGrpcClient(IngestService, `127.0.0.1:${toA.port}`, { defaultTimeoutMs: 5_000 });
  t.after(() => client.close());

  // A client stream begun on the first connection that goes on after the server asked the client
  // to reconnect (the relay saw a second connection): all of it arrives.
  async function* acrossReconnect() {
    for (let i = 0; i < 5; i++) yield {};
    await toA.connected(2);
    for (let i = 0; i < 10; i++) yield {};
  }
  const streamed = client.publishStream(acrossReconnect());
  // Unary calls meanwhile and after: each gets its answer, on a fresh connection once the old one
  // is asked to go away.
  const first = await calls(client, 40, 1);
  await toA.connected(2);
  const answers = tally([...first, ...(await calls(client, 10, 1))]);
  assert.equal((await streamed).accepted, 15n);
  assert.deepEqual(answers, { a: 50 });
});

test('a server gone silent (no close, no answer) leaves the rotation once keepalive finds it out', async (t) => {
  const a = await startBackend('a');
  const b = await startBackend('b');
  t.after(() => Promise.all([a.server.shutdown(1_000), b.server.shutdown(1_000)]));
  const toB = await relay(b.server.port);
  t.after(() => toB.drop());
  const client = createGrpcClient(IngestService, `ipv4:127.0.0.1:${a.server.port},127.0.0.1:${toB.port}`, {
    defaultTimeoutMs: 5_000,
    keepalive: { timeMs: 300, timeoutMs: 300 },
  });
  t.after(() => client.close());
  await untilAllServe(client, [a, b]);

  toB.freeze();
  // The next keepalive ping goes unanswered: within a ping and its timeout the client drops its
  // connection to b, and every call after that is a's, none waiting for its deadline on b.
  await toB.clientsClosed();
  a.calls = 0;
  b.calls = 0;
  const answers = [];
  for (let i = 0; i < 20; i++)
    answers.push(
      await client.publish({}, { timeoutMs: 1_000 }).then(
        (r) => r.id,
        (e: AppError) => e,
      ),
    );
  assert.deepEqual(tally(answers), { a: 20 });
});

test('a server coming back on its address rejoins the rotation', async (t) => {
  const a = await startBackend('a');
  let b = await startBackend('b');
  const port = b.server.port;
  t.after(() => Promise.all([a.server.shutdown(1_000), b.server.shutdown(1_000)]));
  const client = createGrpcClient(IngestService, `ipv4:127.0.0.1:${a.server.port},127.0.0.1:${port}`, {
    defaultTimeoutMs: 5_000,
  });
  t.after(() => client.close());
  await untilAllServe(client, [a, b]);

  await b.stop(1_000);
  assert.deepEqual(tally(await calls(client, 10)), { a: 10 });

  // Restarted (a pod replaced at the same address): reconnected after grpc-js's reconnect backoff.
  b = await startBackend('b2', '127.0.0.1', port);
  const deadline = Date.now() + 10_000;
  while (b.calls === 0) {
    assert.ok(Date.now() < deadline, 'the restarted server got no call');
    assert.equal(typeof (await calls(client, 1))[0], 'string');
    await new Promise((r) => setTimeout(r, 50));
  }
  a.calls = 0;
  b.calls = 0;
  assert.deepEqual(tally(await calls(client, 20)), { a: 10, b2: 10 });
});

const localhost = await lookup('localhost', { all: true });
const families = new Set(localhost.map((x) => x.family));

test('dns:///localhost:PORT: every address the name resolves to gets calls', async (t) => {
  // One server per address of `localhost` (127.0.0.1, and ::1 where the name also has it), on one port.
  const first = await startBackend(localhost[0]!.address, hostOf(localhost[0]!.address));
  const backends = [first];
  t.after(() => Promise.all(backends.map((b) => b.server.shutdown(1_000))));
  for (const x of localhost.slice(1))
    backends.push(await startBackend(x.address, hostOf(x.address), first.server.port));
  const client = createGrpcClient(IngestService, `dns:///localhost:${first.server.port}`, {
    defaultTimeoutMs: 5_000,
  });
  t.after(() => client.close());
  await untilAllServe(client, backends);

  const answers = tally(await calls(client, 10 * backends.length));
  assert.deepEqual(answers, Object.fromEntries(backends.map((b) => [b.name, 10])));
});

test('dns:///localhost:PORT over IPv4 and IPv6: calls alternate between 127.0.0.1 and ::1', {
  skip:
    families.size < 2 &&
    `localhost resolves to ${localhost.map((x) => x.address).join(', ')} only here (no ::1 entry): the test above covers the single address`,
}, async (t) => {
  const v4 = await startBackend('127.0.0.1', '127.0.0.1');
  const v6 = await startBackend('::1', '[::1]', v4.server.port);
  t.after(() => Promise.all([v4.server.shutdown(1_000), v6.server.shutdown(1_000)]));
  const client = createGrpcClient(IngestService, `dns:///localhost:${v4.server.port}`, {
    defaultTimeoutMs: 5_000,
  });
  t.after(() => client.close());
  await untilAllServe(client, [v4, v6]);
  assert.deepEqual(tally(await calls(client, 20)), { '127.0.0.1': 10, '::1': 10 });

  await v6.stop(1_000);
  assert.deepEqual(tally(await calls(client, 10)), { '127.0.0.1': 10 });
});

function hostOf(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
