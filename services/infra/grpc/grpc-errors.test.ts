/**
 * What a gRPC client of any language sees of a Tally error: a google.rpc.Status in the
 * grpc-status-details-bin trailer, decoded here with the standard protos only; what Tally's own
 * client makes of it; and that REST renders the same details. Also: server reflection, on by
 * default and off on request, answered for grpcurl and kept out of the request metrics.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { anyUnpack, durationMs } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from '../../gen/google/rpc/error_details_pb.js';
import { StatusSchema } from '../../gen/google/rpc/status_pb.js';
import { IngestService, PublishRequestSchema } from '../../gen/tally/v1/ingest_pb.js';
import { grpcurlOrSkip, runGrpcurl } from '../../testing/grpcurl.ts';
import { AppError, Code, Reason, unavailable } from '../app-error.ts';
import { restError } from '../http/http-server.ts';
import { createLogger } from '../logger.ts';
import { createMetricsRegistry, type Registry } from '../metrics.ts';
import { GrpcRegistry } from './grpc-registry.ts';
import { createGrpcClient } from './grpc-service.ts';

/** Errors by event type: what the ingest under test throws. */
const ERRORS: Record<string, () => AppError> = {
  invalid: () =>
    AppError.invalidField('events[3].type', 'must match ^[A-Za-z0-9_.:-]{1,64}$', {
      reason: Reason.INVALID_EVENT,
      metadata: { index: '3' },
    }),
  down: () => unavailable('Kafka did not acknowledge within 10000 ms', new Error('secret cause')),
  missing: () => new AppError(Code.NOT_FOUND, 'no destination "x"'),
};

async function startServer(t: { after(fn: () => unknown): void }, options: { reflection?: boolean } = {}) {
  const metrics: Registry = createMetricsRegistry({ defaultMetrics: false });
  const registry = new GrpcRegistry(createLogger('error'), metrics);
  registry.register(IngestService, {
    async publish({ event }) {
      const make = ERRORS[event?.type ?? ''];
      if (make) throw make();
      return { id: 'ok' };
    },
    async publishBatch() {
      return { ids: [] };
    },
    async publishStream() {
      return { accepted: 0n };
    },
    async *publishStreamAcked() {},
  });
  registry.setServing(true);
  const server = await registry.listen({
    host: '127.0.0.1',
    port: 0,
    maxMessageBytes: 1024 * 1024,
    ...options,
  });
  t.after(() => server.shutdown(1_000));
  return { port: server.port, metrics };
}

/** A Publish with a plain grpc-js client: the error's code, message and raw trailer. */
function rawPublish(port: number, type: string): Promise<grpc.ServiceError> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      '/tally.v1.IngestService/Publish',
      (m: unknown) => Buffer.from(toBinary(PublishRequestSchema, create(PublishRequestSchema, m as never))),
      (b: Buffer) => b,
      { event: { type } },
      new grpc.Metadata(),
      (error) => {
        client.close();
        error ? resolve(error) : reject(new Error('the call succeeded'));
      },
    ),
  );
}

function decodeTrailer(error: grpc.ServiceError) {
  const [bin] = error.metadata.get('grpc-status-details-bin');
  assert.ok(Buffer.isBuffer(bin), 'grpc-status-details-bin is sent');
  const status = fromBinary(StatusSchema, bin);
  assert.equal(status.code, error.code);
  assert.equal(status.message, error.details);
  return {
    status,
    badRequest: status.details.map((d) => anyUnpack(d, BadRequestSchema)).find((d) => d),
    retryInfo: status.details.map((d) => anyUnpack(d, RetryInfoSchema)).find((d) => d),
    errorInfo: status.details.map((d) => anyUnpack(d, ErrorInfoSchema)).find((d) => d),
  };
}

test('grpc-status-details-bin holds a google.rpc.Status with BadRequest, RetryInfo or ErrorInfo', async (t) => {
  const { port } = await startServer(t);

  const invalid = await rawPublish(port, 'invalid');
  assert.equal(invalid.code, grpc.status.INVALID_ARGUMENT);
  const bad = decodeTrailer(invalid);
  assert.deepEqual(
    bad.badRequest?.fieldViolations.map((v) => [v.field, v.description]),
    [['events[3].type', 'must match ^[A-Za-z0-9_.:-]{1,64}$']],
  );
  assert.equal(bad.retryInfo, undefined, 'invalid input is not worth retrying');
  assert.equal(bad.errorInfo?.reason, 'INVALID_EVENT');
  assert.equal(bad.errorInfo?.domain, 'tally.dev');
  assert.deepEqual(bad.errorInfo?.metadata, { index: '3' });
  // The deprecated private trailer is still there for one release.
  assert.deepEqual(invalid.metadata.get('tally-field'), ['events[3].type']);

  const down = await rawPublish(port, 'down');
  assert.equal(down.code, grpc.status.UNAVAILABLE);
  const retry = decodeTrailer(down);
  assert.equal(retry.badRequest, undefined);
  assert.ok(retry.retryInfo?.retryDelay, 'RetryInfo names a delay');
  assert.equal(durationMs(retry.retryInfo.retryDelay), 1_000);
  assert.equal(retry.errorInfo?.reason, 'UNAVAILABLE');
  assert.ok(!JSON.stringify(retry.status).includes('secret'), 'the cause is never sent');

  const missing = await rawPublish(port, 'missing');
  assert.equal(missing.code, grpc.status.NOT_FOUND);
  const other = decodeTrailer(missing);
  assert.equal(other.badRequest, undefined);
  assert.equal(other.retryInfo, undefined);
  assert.equal(other.errorInfo?.reason, 'NOT_FOUND');
  assert.equal(other.errorInfo?.domain, 'tally.dev');
});

test("Tally's gRPC client reads the details back, so REST renders what gRPC sent", async (t) => {
  const { port } = await startServer(t);
  const client = createGrpcClient(IngestService, `127.0.0.1:${port}`);
  t.after(() => client.close());
  for (const [type, make] of Object.entries(ERRORS)) {
    const sent = make();
    const received = await client.publish({ event: { type } }).then(
      () => assert.fail(`${type}: the call succeeded`),
      (error: unknown) => error as AppError,
    );
    assert.ok(received instanceof AppError);
    assert.equal(received.code, sent.code, type);
    assert.equal(received.message, sent.message, type);
    assert.deepEqual(received.fieldViolations, sent.fieldViolations, type);
    assert.equal(received.retryable, sent.retryable, type);
    assert.equal(received.retryAfterMs, sent.retryAfterMs, type);
    assert.equal(received.reason, sent.reason, type);
    assert.deepEqual(received.metadata, sent.metadata, type);
    assert.deepEqual(restError(received), restError(sent), `${type}: the same REST answer`);
  }
  const rest = restError(ERRORS.invalid!());
  assert.equal(rest.status, 400);
  assert.deepEqual(rest.body, {
    error: {
      code: 400,
      status: 'INVALID_ARGUMENT',
      message: 'events[3].type: must match ^[A-Za-z0-9_.:-]{1,64}$',
      field: 'events[3].type',
      details: [
        {
          '@type': 'type.googleapis.com/google.rpc.BadRequest',
          fieldViolations: [{ field: 'events[3].type', description: 'must match ^[A-Za-z0-9_.:-]{1,64}$' }],
        },
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'INVALID_EVENT',
          domain: 'tally.dev',
          metadata: { index: '3' },
        },
      ],
    },
  });
  const unavailableRest = restError(ERRORS.down!());
  assert.equal(unavailableRest.status, 503);
  assert.equal(unavailableRest.headers['retry-after'], '1');
  assert.deepEqual(unavailableRest.body.error.details[0], {
    '@type': 'type.googleapis.com/google.rpc.RetryInfo',
    retryDelay: '1s',
  });
});

test('reflection lists the services for grpcurl, stays out of the request metrics, and turns off', async (t) => {
  const grpcurl = grpcurlOrSkip(t);
  if (!grpcurl) return;
  const { port, metrics } = await startServer(t);
  const list = await runGrpcurl(grpcurl, ['-plaintext', `127.0.0.1:${port}`, 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(list.stdout.trim().split('\n').sort(), [
    'grpc.health.v1.Health',
    'tally.v1.IngestService',
  ]);
  const describe = await runGrpcurl(grpcurl, [
    '-plaintext',
    `127.0.0.1:${port}`,
    'describe',
    'tally.v1.Event',
  ]);
  assert.equal(describe.code, 0, describe.stderr);
  assert.match(describe.stdout, /message Event \{/);
  // A real call is counted; the reflection calls above are not.
  await rawPublish(port, 'missing');
  const counted = (await metrics.getSingleMetric('tally_grpc_requests_total')?.get())?.values ?? [];
  assert.deepEqual(
    counted.map((v) => `${v.labels.service}/${v.labels.method}`),
    ['tally.v1.IngestService/Publish'],
  );

  const off = await startServer(t, { reflection: false });
  const refused = await runGrpcurl(grpcurl, ['-plaintext', `127.0.0.1:${off.port}`, 'list']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /does not support the reflection API/);
});
