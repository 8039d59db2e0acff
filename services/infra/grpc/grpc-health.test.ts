/**
 * grpc.health.v1.Health on a real gRPC server, asked by a plain @grpc/grpc-js client with the
 * generated descriptors: Check and Watch through a GrpcRegistry's start, readiness and drain, and
 * through a running `tally` process's start and SIGTERM.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { INVALID_SPAN_CONTEXT, trace } from '@opentelemetry/api';
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../../gen/grpc/health/v1/health_pb.js';
import { IngestService } from '../../gen/tally/v1/ingest_pb.js';
import { startTally } from '../../testing/tally-process.ts';
import { AppError, Code } from '../app-error.ts';
import { createLogger } from '../logger.ts';
import { createMetricsRegistry } from '../metrics.ts';
import type { Tracer } from '../tracing.ts';
import { GrpcRegistry } from './grpc-registry.ts';
import { createGrpcClient } from './grpc-service.ts';

const CHECK = `/${Health.typeName}/${Health.method.check.name}`;
const WATCH = `/${Health.typeName}/${Health.method.watch.name}`;
const serialize = (service: string) =>
  Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service })));
const deserialize = (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes).status;

/** A watch in progress: the statuses received so far, and how the call ended. */
interface Watching {
  statuses: ServingStatus[];
  /** Resolves once `count` statuses have arrived. */
  received(count: number): Promise<ServingStatus[]>;
  ended: Promise<grpc.StatusObject>;
  cancel(): void;
}

/** A plain grpc-js client of the health service, nothing of the code under test. */
function healthClient(port: number) {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return {
    client,
    check: (service: string, timeoutMs = 5_000) =>
      new Promise<ServingStatus>((resolve, reject) =>
        client.makeUnaryRequest(
          CHECK,
          serialize,
          deserialize,
          service,
          new grpc.Metadata(),
          { deadline: Date.now() + timeoutMs },
          (error, status) => (error ? reject(error) : resolve(status!)),
        ),
      ),
    watch(service: string): Watching {
      const call = client.makeServerStreamRequest(WATCH, serialize, deserialize, service);
      const statuses: ServingStatus[] = [];
      const waiters: (() => void)[] = [];
      call.on('data', (status: ServingStatus) => {
        statuses.push(status);
        for (const w of waiters.splice(0)) w();
      });
      call.on('error', () => {}); // the status arrives on 'status'
      const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      return {
        statuses,
        ended,
        cancel: () => call.cancel(),
        async received(count) {
          const deadline = Date.now() + 5_000;
          while (statuses.length < count) {
            assert.ok(Date.now() < deadline, `only ${statuses.length} of ${count} statuses: ${statuses}`);
            await Promise.race([
              new Promise<void>((r) => waiters.push(r)),
              new Promise((r) => setTimeout(r, 100)),
            ]);
          }
          return statuses.slice(0, count);
        },
      };
    },
  };
}

/**
 * An ingest service whose Publish calls `onEnter` once the handler runs, then waits for `release`
 * (a call in flight), answering `id`.
 */
function slowIngest(release: Promise<void>, onEnter: () => void = () => {}) {
  return {
    async publish() {
      onEnter();
      await release;
      return { id: 'done' };
    },
    async publishBatch() {
      return { ids: [] };
    },
    async publishStream() {
      return { accepted: 0n };
    },
    async *publishStreamAcked() {},
  };
}

const logger = createLogger('error');
const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'OK',
    (error: grpc.ServiceError) => grpc.status[error.code],
  );

test('Check: NOT_SERVING while starting, SERVING when ready, per registered service, NOT_FOUND for others; NOT_SERVING on drain', async (t) => {
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let entered!: () => void;
  const handlerEntered = new Promise<void>((r) => {
    entered = r;
  });
  const registry = new GrpcRegistry(logger);
  registry.register(IngestService, slowIngest(released, entered));
  assert.deepEqual(registry.serviceNames, ['tally.v1.IngestService', 'grpc.health.v1.Health']);
  const server = await registry.listen({ host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 });
  t.after(() => server.shutdown(1_000));
  const health = healthClient(server.port);
  t.after(() => health.client.close());

  // Listening, but the process has not said it is ready: starting up.
  assert.equal(await health.check(''), ServingStatus.NOT_SERVING);
  assert.equal(await health.check('tally.v1.IngestService'), ServingStatus.NOT_SERVING);

  registry.setServing(true);
  assert.equal(await health.check(''), ServingStatus.SERVING);
  assert.equal(await health.check('tally.v1.IngestService'), ServingStatus.SERVING);
  for (const unknown of ['tally.v1.QueryService', 'grpc.health.v1.Health', 'x'.repeat(5_000)]) {
    const error = await health.check(unknown).then(
      () => assert.fail(`${unknown.slice(0, 30)}: answered`),
      (e: grpc.ServiceError) => e,
    );
    assert.equal(error.code, grpc.status.NOT_FOUND, unknown.slice(0, 30));
    assert.match(error.details, /^unknown service: "/);
    assert.ok(error.details.length < 300, 'a long name is not echoed whole');
  }

  // A call in flight, then the drain: new calls are refused, health answers NOT_SERVING.
  const ingest = createGrpcClient(IngestService, `127.0.0.1:${server.port}`, { defaultTimeoutMs: 5_000 });
  t.after(() => ingest.close());
  const inFlight = ingest.publish({});
  await handlerEntered; // the server holds the call: it is in flight when the drain begins
  registry.drain();
  registry.setServing(true); // too late: draining is for good
  assert.equal(await health.check(''), ServingStatus.NOT_SERVING);
  assert.equal(await health.check('tally.v1.IngestService'), ServingStatus.NOT_SERVING);
  await assert.rejects(
    ingest.publish({}),
    (e: AppError) => e instanceof AppError && e.code === Code.UNAVAILABLE,
  );
  release();
  assert.deepEqual(await inFlight, create(IngestService.method.publish.output, { id: 'done' }));
});

test('Watch: the status now, then each change; SERVICE_UNKNOWN for an unknown service; NOT_SERVING and the end on drain', async (t) => {
  const registry = new GrpcRegistry(logger);
  registry.register(IngestService, slowIngest(Promise.resolve()));
  const server = await registry.listen({ host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 });
  t.after(() => server.shutdown(1_000));
  const health = healthClient(server.port);
  t.after(() => health.client.close());

  const all = health.watch('');
  const ingest = health.watch('tally.v1.IngestService');
  const unknown = health.watch('tally.v1.QueryService');
  assert.deepEqual(await all.received(1), [ServingStatus.NOT_SERVING]);
  assert.deepEqual(await ingest.received(1), [ServingStatus.NOT_SERVING]);
  assert.deepEqual(await unknown.received(1), [ServingStatus.SERVICE_UNKNOWN]);

  registry.setServing(true);
  assert.deepEqual(await all.received(2), [ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
  assert.deepEqual(await ingest.received(2), [ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
  registry.setServing(true); // no change: nothing sent

  // A watch the caller cancels is let go (it would otherwise hold the shutdown below).
  const cancelled = health.watch('');
  assert.deepEqual(await cancelled.received(1), [ServingStatus.SERVING]);
  cancelled.cancel();
  assert.equal((await cancelled.ended).code, grpc.status.CANCELLED);

  registry.drain();
  for (const w of [all, ingest]) {
    assert.equal((await w.ended).code, grpc.status.OK, 'a watch ends once the server drains');
    assert.deepEqual(w.statuses, [
      ServingStatus.NOT_SERVING,
      ServingStatus.SERVING,
      ServingStatus.NOT_SERVING,
    ]);
  }
  assert.equal((await unknown.ended).code, grpc.status.OK);
  assert.deepEqual(unknown.statuses, [ServingStatus.SERVICE_UNKNOWN]);

  // No call left open: the server closes at once, not at the drain deadline.
  const started = performance.now();
  await server.shutdown(10_000);
  assert.ok(performance.now() - started < 2_000, 'the shutdown waited for a watch');
});

test('health calls are neither counted in the request metrics nor traced; the other services still are', async (t) => {
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const spans: string[] = [];
  const tracer = {
    startSpan(name: string) {
      spans.push(name);
      return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    },
  } as unknown as Tracer;
  const registry = new GrpcRegistry(logger, metrics, tracer);
  registry.register(IngestService, slowIngest(Promise.resolve()));
  const server = await registry.listen({ host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 });
  t.after(() => server.shutdown(1_000));
  registry.setServing(true);
  const health = healthClient(server.port);
  t.after(() => health.client.close());
  const ingest = createGrpcClient(IngestService, `127.0.0.1:${server.port}`, { defaultTimeoutMs: 5_000 });
  t.after(() => ingest.close());

  assert.equal(await health.check(''), ServingStatus.SERVING);
  assert.equal(await codeOf(health.check('nope')), 'NOT_FOUND');
  const watch = health.watch('');
  await watch.received(1);
  watch.cancel();
  await watch.ended;
  await ingest.publish({});

  const text = await metrics.metrics();
  assert.doesNotMatch(text, /grpc\.health/, 'health calls in the metrics');
  assert.match(
    text,
    /tally_grpc_requests_total\{service="tally\.v1\.IngestService",method="Publish",code="OK"\} 1/,
  );
  assert.deepEqual(spans, ['tally.v1.IngestService/Publish']);
});

test('a running `tally ingest`: SERVING once started, per service, NOT_FOUND for a role it does not run; NOT_SERVING on SIGTERM', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-health-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const tally = await startTally(['ingest'], {
    TALLY_DATA_DIR: dataDir,
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_GRPC_PORT: '0',
    TALLY_EVENTS_PARTITIONS: '1',
  });
  t.after(() => tally.kill('SIGKILL'));
  const health = healthClient(tally.grpcPort!);
  t.after(() => health.client.close());

  assert.equal(await health.check(''), ServingStatus.SERVING);
  assert.equal(await health.check('tally.v1.IngestService'), ServingStatus.SERVING);
  assert.equal(await codeOf(health.check('tally.v1.QueryService')), 'NOT_FOUND');

  const watch = health.watch('');
  assert.deepEqual(await watch.received(1), [ServingStatus.SERVING]);
  assert.equal(await tally.kill('SIGTERM'), 0, 'drains and exits 0');
  assert.equal((await watch.ended).code, grpc.status.OK);
  assert.deepEqual(watch.statuses, [ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
});

test('a running `tally gateway ingest`: Check answers NOT_SERVING while the gateway drains a request in flight', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-health-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const tally = await startTally(['gateway', 'ingest'], {
    TALLY_DATA_DIR: dataDir,
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_HTTP_PORT: '0',
    TALLY_GRPC_PORT: '0',
    TALLY_EVENTS_PARTITIONS: '1',
    TALLY_DRAIN_TIMEOUT_MS: '20000',
  });
  t.after(() => tally.kill('SIGKILL'));
  const health = healthClient(tally.grpcPort!);
  t.after(() => health.client.close());
  assert.equal(await health.check(''), ServingStatus.SERVING);

  // A REST request whose body has not all arrived: the gateway's drain waits for it.
  const socket = connect(tally.httpPort!, '127.0.0.1');
  t.after(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write('POST /v1/events HTTP/1.1\r\nHost: tally\r\nContent-Type: application/json\r\n');
  // Expect: 100-continue makes node:http answer "100 Continue" as it hands the request to the
  // gateway's handler, so the request is known to be in flight before the signal.
  const continued = new Promise<string>((resolve) => {
    let seen = '';
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      if (seen.includes('\r\n\r\n')) resolve(seen);
    });
  });
  socket.write('Expect: 100-continue\r\nContent-Length: 100\r\n\r\n');
  assert.match(await continued, /^HTTP\/1\.1 100 Continue\r\n/);
  socket.write('{"event":');

  tally.child.kill('SIGTERM');
  const deadline = Date.now() + 5_000;
  let status = await health.check('');
  while (status === ServingStatus.SERVING && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    status = await health.check('');
  }
  assert.equal(status, ServingStatus.NOT_SERVING, 'draining');
  assert.equal(await health.check('tally.v1.IngestService'), ServingStatus.NOT_SERVING);

  socket.destroy(); // the request goes away: the drain goes on and the process exits
  assert.equal(await tally.exited, 0);
});
