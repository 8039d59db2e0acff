/**
 * Tracing end to end on the real servers, as docs/tracing.md describes it:
 * `tally all` with only OTEL_EXPORTER_OTLP_ENDPOINT set exports its spans
 * (OTLP/HTTP JSON) to a receiver this test runs. One event sent over REST is
 * followed from the gateway's HTTP span through its gRPC client span, ingest's
 * server span (whose context the Kafka record carries as `traceparent`), the
 * send that wrote it (a link), and in each of persister, counter and
 * aggregator the batch span that read it (a link) and the sink write (its
 * child). The batch processor is told to wait a minute, so every span
 * arrives through the flush of the drain on SIGTERM. A process started
 * without OTEL_* variables writes records with no trace headers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { ConsumedRecord } from './infra/log/event-log.ts';
import { decodeEvent } from './pipeline/event-codec.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, CONSUMER_GROUPS, http, ingestClient, topicOfGroup } from './testing/tally-client.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

/** OTLP span kinds (the protocol's enum). */
const KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  links: { traceId: string; spanId: string }[];
  status: { code?: number; message?: string };
}

type OtlpValue = {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
};
type OtlpAttributes = { key: string; value: OtlpValue }[] | undefined;

function otlpValue(v: OtlpValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(otlpValue);
  return undefined;
}

function attributesOf(list: OtlpAttributes): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, otlpValue(a.value)]));
}

/** A minimal OTLP/HTTP JSON trace receiver: `POST /v1/traces`, every span kept. */
async function startOtlpReceiver(): Promise<{ server: Server; port: number; spans: ReceivedSpan[] }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request as AsyncIterable<Buffer>) chunks.push(chunk);
    let body = Buffer.concat(chunks);
    if (request.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
    if (request.method !== 'POST' || request.url !== '/v1/traces') {
      response.writeHead(404).end();
      return;
    }
    const payload = JSON.parse(body.toString('utf8')) as {
      resourceSpans?: {
        resource?: { attributes?: OtlpAttributes };
        scopeSpans?: {
          spans?: {
            traceId: string;
            spanId: string;
            parentSpanId?: string;
            name: string;
            kind: number;
            attributes?: OtlpAttributes;
            links?: { traceId: string; spanId: string }[];
            status?: { code?: number; message?: string };
          }[];
        }[];
      }[];
    };
    for (const rs of payload.resourceSpans ?? []) {
      const service = String(attributesOf(rs.resource?.attributes)['service.name']);
      for (const ss of rs.scopeSpans ?? [])
        for (const s of ss.spans ?? [])
          spans.push({
            service,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            name: s.name,
            kind: s.kind,
            attributes: attributesOf(s.attributes),
            links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
            status: s.status ?? {},
          });
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, spans };
}

/** The OTEL_* variables set to nothing (unset, for the SDK): whatever the test's own environment says. */
const NO_OTEL = Object.fromEntries(
  [
    'OTEL_SDK_DISABLED',
    'OTEL_TRACES_EXPORTER',
    'OTEL_EXPORTER_OTLP_ENDPOINT',
    'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    'OTEL_EXPORTER_OTLP_PROTOCOL',
    'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
    'OTEL_SERVICE_NAME',
    'OTEL_RESOURCE_ATTRIBUTES',
    'OTEL_TRACES_SAMPLER',
    'OTEL_PROPAGATORS',
  ].map((name) => [name, '']),
);

describe('tracing on the real servers', () => {
  const ns = testNamespace(3);
  const backends = new Backends(ns);
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let traced: TallyProcess | undefined;
  let untraced: TallyProcess | undefined;

  before(async () => {
    receiver = await startOtlpReceiver();
    traced = await startTally(['all'], {
      ...ns.env,
      ...NO_OTEL,
      // Only the endpoint: with no exporter named, that is what turns tracing on.
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      // Nothing is exported before the drain: every span below arrives through the stop's flush.
      OTEL_BSP_SCHEDULE_DELAY: '60000',
    });
    untraced = await startTally(['ingest'], { ...ns.env, ...NO_OTEL });
  });
  after(async () => {
    await traced?.kill('SIGKILL');
    await untraced?.kill('SIGTERM');
    receiver?.server.close();
    await backends.cleanup();
  });

  test("one event's trace runs from the gateway through ingest into every consumer", async () => {
    const target = `https://trace-${ns.id}.example/page`;
    const userId = `user-${ns.id}`;
    const sent = await http(traced!.httpPort!, 'POST', '/v1/events', { type: 'CLICK', target, userId });
    assert.equal(sent.status, 200, sent.text);
    const eventId = (sent.body as { id: string }).id;

    // A client's own trace context is continued.
    const clientTraceId = randomBytes(16).toString('hex');
    const clientSpanId = randomBytes(8).toString('hex');
    const continued = await http(
      traced!.httpPort!,
      'POST',
      '/v1/events',
      { type: 'VIEW', target, userId },
      { traceparent: `00-${clientTraceId}-${clientSpanId}-01` },
    );
    assert.equal(continued.status, 200, continued.text);

    // A query, whose route is a template and whose target is in no attribute.
    const read = await http(traced!.httpPort!, 'GET', `/v1/counters?target=${encodeURIComponent(target)}`);
    assert.equal(read.status, 200, read.text);

    // And one event through the process without tracing.
    const plain = ingestClient(untraced!.grpcPort!);
    let plainId: string;
    try {
      plainId = (await plain.publish({ event: { type: 'CLICK', target, userId } })).id;
    } finally {
      plain.close();
    }

    await waitFor(
      () => backends.caughtUp(),
      () => `consumer groups behind the end of ${ns.eventsTopic}`,
      120_000,
    );
    const records = await readRecords(backends, ns.groupPrefix, ns.eventsTopic, 3);
    const recordOf = (id: string) => {
      const found = records.find((r) => decodeEvent(r.value).id === id);
      assert.ok(found, `the record of ${id}`);
      return found;
    };

    assert.equal(await traced!.kill('SIGTERM'), 0, 'tally drains and exits 0');
    traced = undefined;
    const spans = receiver.spans;
    assert.ok(spans.length > 0, 'spans were exported by the drain');
    for (const s of spans) assert.equal(s.service, 'tally-all', `service.name of ${s.name}`);

    // The request: HTTP server span (a root) → ingest's call, in-process in `tally all`: one
    // INTERNAL span named as the RPC (split roles have a gRPC CLIENT and SERVER span: see below).
    const httpSpans = spans.filter((s) => s.name === 'POST /v1/events');
    const root = httpSpans.find((s) => s.parentSpanId === '');
    assert.ok(root, 'the HTTP span of the request without trace context is a root');
    assert.equal(root.kind, KIND.SERVER);
    assert.deepEqual(
      {
        method: root.attributes['http.request.method'],
        route: root.attributes['http.route'],
        status: root.attributes['http.response.status_code'],
      },
      { method: 'POST', route: '/v1/events', status: 200 },
    );
    const traceId = root.traceId;
    const inTrace = spans.filter((s) => s.traceId === traceId);
    const server = childOf(inTrace, root, 'tally.v1.IngestService/Publish');
    assert.equal(server.kind, KIND.INTERNAL);
    assert.equal(server.attributes['tally.rpc.transport'], 'in-process');
    assert.equal(server.attributes['rpc.grpc.status_code'], 0);

    // The record carries the request's context: ingest's call.
    assert.equal(recordOf(eventId).headers.traceparent, `00-${traceId}-${server.spanId}-01`);
    const linksToEvent = (s: ReceivedSpan) =>
      s.links.some((l) => l.traceId === traceId && l.spanId === server.spanId);

    // The write: a PRODUCER span of its own, linked to the request.
    const produce = spans.find((s) => s.name === `send ${ns.eventsTopic}` && linksToEvent(s));
    assert.ok(produce, 'a send span links to the request');
    assert.equal(produce.kind, KIND.PRODUCER);
    assert.equal(produce.parentSpanId, '', 'the send span is a root: it serves many requests');
    assert.equal(produce.attributes['messaging.destination.name'], ns.eventsTopic);
    assert.ok(Number(produce.attributes['messaging.batch.message_count']) >= 1);

    // Each consumer: a CONSUMER span per batch linked to the request, and the sink write its child
    // (or, when the write gathered several partitions' batches, a child of the first, linked to this one).
    const sinkSpans = {
      group_persistence: 'persister insert',
      group_realtimecounter: 'counter apply',
      group_aggregation: 'aggregator upsert',
      group_alerting: 'alerter evaluate',
      group_routing: 'router write',
      group_projection: 'projector fold',
    } as const;
    for (const group of CONSUMER_GROUPS) {
      const consume = spans.find(
        (s) =>
          s.name === `process ${topicOfGroup(ns, group)}` &&
          s.attributes['messaging.consumer.group.name'] === ns.groupPrefix + group &&
          linksToEvent(s),
      );
      assert.ok(consume, `${group}: a batch span links to the request`);
      assert.equal(consume.kind, KIND.CONSUMER);
      assert.equal(consume.parentSpanId, '', `${group}: the batch span is a root`);
      assert.equal(consume.status.code ?? 0, 0, `${group}: the batch succeeded`);
      const sink = spans.find(
        (s) =>
          s.parentSpanId === consume.spanId ||
          s.links.some((l) => l.traceId === consume.traceId && l.spanId === consume.spanId),
      );
      assert.ok(sink, `${group}: the sink write is a child of the batch span, or linked to it`);
      if (sink.parentSpanId !== consume.spanId)
        assert.ok(
          spans.some((s) => s.spanId === sink.parentSpanId && s.name === consume.name),
          `${group}: a gathered write is the child of another batch span`,
        );
      assert.equal(sink.name, sinkSpans[group]);
      assert.equal(sink.traceId, spans.find((s) => s.spanId === sink.parentSpanId)?.traceId);
      assert.equal(sink.kind, KIND.INTERNAL);
      assert.ok(Number(sink.attributes['tally.sink.events']) >= 1);
    }

    // A client's traceparent: the HTTP span continues it.
    const continuedSpan = httpSpans.find((s) => s.traceId === clientTraceId);
    assert.ok(continuedSpan, "the second request's HTTP span is in the client's trace");
    assert.equal(continuedSpan.parentSpanId, clientSpanId);

    // The query: route template, and the same chain to the query role.
    const queryHttp = spans.find((s) => s.name === 'GET /v1/counters');
    assert.ok(queryHttp, 'the query request is traced under its route template');
    const queryCall = childOf(spans, queryHttp, 'tally.v1.QueryService/GetCounters');
    assert.equal(queryCall.kind, KIND.INTERNAL);

    // Bounded attributes: never the target or the user.
    for (const s of spans)
      for (const [key, value] of Object.entries(s.attributes)) {
        assert.ok(!String(value).includes(target), `${s.name}: ${key} holds no target`);
        assert.ok(!String(value).includes(userId), `${s.name}: ${key} holds no user id`);
      }

    // Without OTEL_* variables the record has no trace headers at all.
    assert.deepEqual(recordOf(plainId).headers, {}, 'an untraced process writes no traceparent');
  });
});

describe('tracing across split roles', () => {
  const ns = testNamespace(1);
  const backends = new Backends(ns);
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let services: TallyProcess | undefined;
  let gateway: TallyProcess | undefined;

  before(async () => {
    receiver = await startOtlpReceiver();
    const otel = {
      ...NO_OTEL,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '60000',
    };
    services = await startTally(['ingest', 'query'], { ...ns.env, ...otel });
    gateway = await startTally(['gateway'], {
      ...ns.env,
      ...otel,
      TALLY_INGEST_ADDR: `127.0.0.1:${services.grpcPort}`,
      TALLY_QUERY_ADDR: `127.0.0.1:${services.grpcPort}`,
    });
  });
  after(async () => {
    await gateway?.kill('SIGKILL');
    await services?.kill('SIGKILL');
    receiver?.server.close();
    await backends.cleanup();
  });

  test("a REST call's trace: the gateway's gRPC CLIENT span, ingest's SERVER span, the record", async () => {
    const sent = await http(gateway!.httpPort!, 'POST', '/v1/events', {
      type: 'CLICK',
      target: `https://split-${ns.id}.example/`,
      userId: `user-${ns.id}`,
    });
    assert.equal(sent.status, 200, sent.text);
    const eventId = (sent.body as { id: string }).id;
    const [record] = await readRecords(backends, ns.groupPrefix, ns.eventsTopic, 1);
    assert.equal(decodeEvent(record!.value).id, eventId);

    assert.equal(await gateway!.kill('SIGTERM'), 0, 'the gateway drains and exits 0');
    assert.equal(await services!.kill('SIGTERM'), 0, 'ingest and query drain and exit 0');
    gateway = services = undefined;
    const spans = receiver.spans;
    const root = spans.find((s) => s.name === 'POST /v1/events' && s.parentSpanId === '');
    assert.ok(root, 'the HTTP span is a root');
    assert.equal(root.service, 'tally-gateway');
    const client = childOf(spans, root, 'tally.v1.IngestService/Publish');
    assert.equal(client.kind, KIND.CLIENT);
    assert.equal(client.service, 'tally-gateway');
    const server = childOf(spans, client, 'tally.v1.IngestService/Publish');
    assert.equal(server.kind, KIND.SERVER);
    assert.equal(server.service, 'tally-ingest-query');
    assert.equal(server.attributes['rpc.system'], 'grpc');
    assert.equal(server.attributes['rpc.grpc.status_code'], 0);
    assert.equal(record!.headers.traceparent, `00-${root.traceId}-${server.spanId}-01`);
  });
});

/** The one span named `name` whose parent is `parent`. */
function childOf(spans: readonly ReceivedSpan[], parent: ReceivedSpan, name: string): ReceivedSpan {
  const children = spans.filter(
    (s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId && s.name === name,
  );
  assert.equal(children.length, 1, `one ${name} span under ${parent.name}`);
  return children[0]!;
}

/** The first `count` records of `topic`, read through a consumer group of the test's own. */
async function readRecords(
  backends: Backends,
  groupPrefix: string,
  topic: string,
  count: number,
): Promise<ConsumedRecord[]> {
  const records: ConsumedRecord[] = [];
  const consumer = backends.log.consumer({
    groupId: `${groupPrefix}trace-reader`,
    topics: [topic],
    fromBeginning: true,
    maxWaitMs: 500,
  });
  await consumer.run(async (batch) => {
    records.push(...batch.records);
  });
  try {
    await waitFor(
      () => records.length >= count,
      () => `${records.length} of ${count} records read from ${topic}`,
      60_000,
    );
  } finally {
    await consumer.stop();
  }
  return records;
}
