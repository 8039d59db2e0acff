/**
 * When tracing is on, and that off it costs nothing: no SDK, no span
 * processor, the API's no-op tracer, no record headers; and the links a
 * batch span gets from its records.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { propagation, type SpanContext, TraceFlags, trace } from '@opentelemetry/api';
import { AppError, Code } from './app-error.ts';
import { createLogger } from './logger.ts';
import {
  errorType,
  extractContext,
  recordTraceHeaders,
  SpanLinks,
  serviceNamedByEnv,
  startTracing,
  TRACING_OFF,
  tracingRequested,
} from './tracing.ts';

test('tracing is on only when an exporter or an OTLP endpoint is configured', () => {
  const cases: [Record<string, string>, boolean][] = [
    [{}, false],
    [{ OTEL_TRACES_EXPORTER: 'none' }, false],
    [{ OTEL_TRACES_EXPORTER: '' }, false],
    [{ OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on' }, false],
    [{ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, true],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: 'console' }, true],
    [{ OTEL_TRACES_EXPORTER: ' otlp , console ' }, true],
    [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, false],
    [{ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }, false],
    [{ OTEL_SDK_DISABLED: 'false', OTEL_TRACES_EXPORTER: 'otlp' }, true],
  ];
  for (const [env, on] of cases) assert.equal(tracingRequested(env), on, JSON.stringify(env));
});

test('the environment names the service with OTEL_SERVICE_NAME or service.name in the resource attributes', () => {
  assert.equal(serviceNamedByEnv({}), false);
  assert.equal(serviceNamedByEnv({ OTEL_SERVICE_NAME: 'edge' }), true);
  assert.equal(serviceNamedByEnv({ OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod' }), false);
  assert.equal(serviceNamedByEnv({ OTEL_RESOURCE_ATTRIBUTES: 'a=b, service.name=edge' }), true);
});

test('off: no SDK, no span processor, the no-op tracer, and no trace headers', async (t) => {
  const saved = Object.entries(process.env).filter(([k]) => k.startsWith('OTEL_'));
  for (const [k] of saved) delete process.env[k];
  t.after(() => Object.assign(process.env, Object.fromEntries(saved)));

  const tracing = await startTracing({ serviceName: 'tally-test', logger: createLogger('error') });
  assert.equal(tracing, TRACING_OFF);
  assert.equal(tracing.tracer, undefined, 'components get no tracer, so they do no tracing work');
  // Nothing was registered: the API's tracer is the no-op one and nothing records.
  const span = trace.getTracer('probe').startSpan('probe');
  assert.equal(span.isRecording(), false);
  assert.equal(trace.isSpanContextValid(span.spanContext()), false);
  span.end();
  assert.deepEqual(propagation.fields(), [], 'no propagator');
  assert.equal(recordTraceHeaders(), undefined);
  const remote = extractContext({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` });
  assert.equal(trace.getSpanContext(remote), undefined, 'no propagator reads a traceparent');
  await tracing.shutdown();
});

const context = (traceByte: string, spanByte: string, sampled = true): SpanContext => ({
  traceId: traceByte.repeat(32),
  spanId: spanByte.repeat(16),
  traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
});

test("a batch span links each distinct sampled source once, up to the SDK's link limit", () => {
  const links = new SpanLinks();
  links.add(context('a', '1'));
  links.add(context('a', '1')); // a second event of the same request
  links.add(context('a', '2'));
  links.add(context('b', '3', false)); // not sampled: nothing to link to
  links.add(undefined); // a record without trace context
  links.add({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: TraceFlags.SAMPLED });
  assert.deepEqual(
    links.links.map((l) => l.context.spanId),
    ['1'.repeat(16), '2'.repeat(16)],
  );
  assert.deepEqual(links.attributes(), {});

  const many = new SpanLinks();
  for (let i = 0; i < 130; i++)
    many.add({ traceId: 'c'.repeat(32), spanId: (i + 1).toString(16).padStart(16, '0'), traceFlags: 1 });
  assert.equal(many.links.length, 128);
  assert.deepEqual(many.attributes(), { 'tally.links.dropped': 2 });
});

test('a failure is named by its status code or class, never by its message', () => {
  assert.equal(errorType(new AppError(Code.UNAVAILABLE, 'Kafka did not answer for user 42')), 'UNAVAILABLE');
  assert.equal(errorType(new TypeError('bad target https://x.example/')), 'TypeError');
  assert.equal(errorType('text'), 'string');
});
