/**
 * An event's `ip`, filled by ingest when the client left it empty: the gRPC peer's address, or the
 * `x-forwarded-for` metadata only when the peer is a trusted proxy (TALLY_TRUSTED_PROXIES), as
 * for the rate limits. A client that reaches ingest directly cannot pass for another address.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Cidr, parseCidr } from '../domain/client-address.ts';
import { defaultEventLimits } from '../domain/event-rules.ts';
import { IngestService } from '../gen/tally/v1/ingest_pb.js';
import { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import { createGrpcClient } from '../infra/grpc/grpc-service.ts';
import { createEmbeddedEventLog } from '../infra/log/embedded-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { createMetricsRegistry } from '../infra/metrics.ts';
import { decodeEvent } from '../pipeline/event-codec.ts';
import { start } from './ingest.ts';

const logger = createLogger('error');

/** Ingest on the embedded log behind a real gRPC server on 127.0.0.1, believing `trusted`. */
async function startIngest(t: { after: (fn: () => Promise<void>) => void }, trusted: string[]) {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-event-ip-'));
  const log = createEmbeddedEventLog({ dataDir, logger });
  const topic = `t-${randomUUID()}`;
  await log.ensureTopics([{ name: topic, partitions: 1 }]);
  const registry = new GrpcRegistry(logger);
  const ingest = await start(
    { log, grpc: registry, logger, metrics: createMetricsRegistry() },
    {
      eventsTopic: topic,
      maxBatchEvents: 100,
      limits: defaultEventLimits,
      lingerMs: 0,
      maxProduceBatchEvents: 100,
      produceTimeoutMs: 10_000,
      trustedProxies: trusted.map((text) => parseCidr(text) as Cidr),
    },
  );
  const server = await registry.listen({ host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20 });
  const client = createGrpcClient(IngestService, `127.0.0.1:${server.port}`);
  t.after(async () => {
    client.close();
    await server.shutdown(1_000);
    await ingest.stop();
    await log.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  /** Publishes one event with `metadata` and reads back the `ip` ingest wrote. */
  const ipOf = async (metadata: Record<string, string>, ip = ''): Promise<string> => {
    const { id } = await client.publish(
      { event: { type: 'VIEW', target: 'https://ip.example/', userId: 'u1', ip } },
      { metadata },
    );
    const consumer = log.consumer({ groupId: `g-${randomUUID()}`, topics: [topic], maxWaitMs: 20 });
    const found = new Promise<string>((resolve) => {
      void consumer.run(async (batch) => {
        for (const r of batch.records) {
          const event = decodeEvent(r.value);
          if (event.id === id) resolve(event.ip);
        }
      });
    });
    const value = await found;
    await consumer.stop();
    return value;
  };
  return { ipOf };
}

test('x-forwarded-for from a peer that is no trusted proxy is ignored: the event gets the peer', async (t) => {
  const { ipOf } = await startIngest(t, []);
  assert.equal(await ipOf({}), '127.0.0.1');
  assert.equal(await ipOf({ 'x-forwarded-for': '203.0.113.9' }), '127.0.0.1');
});

test('x-forwarded-for from a trusted proxy gives the client: the rightmost untrusted address', async (t) => {
  const { ipOf } = await startIngest(t, ['127.0.0.1/32', '10.0.0.0/8']);
  assert.equal(await ipOf({ 'x-forwarded-for': '203.0.113.9' }), '203.0.113.9');
  // A client's own x-forwarded-for, left of what the trusted hops appended, is not believed.
  assert.equal(await ipOf({ 'x-forwarded-for': '198.51.100.1, 203.0.113.9, 10.1.2.3' }), '203.0.113.9');
  assert.equal(await ipOf({ 'x-forwarded-for': 'not-an-address' }), '127.0.0.1');
});

test("an event's own ip is kept whoever sends it", async (t) => {
  const { ipOf } = await startIngest(t, []);
  assert.equal(await ipOf({ 'x-forwarded-for': '203.0.113.9' }, '192.0.2.44'), '192.0.2.44');
});
