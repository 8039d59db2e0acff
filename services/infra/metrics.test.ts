import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  consumerMetrics,
  createMetricsRegistry,
  grpcMetrics,
  httpMethodLabel,
  type Registry,
  sqlOperation,
} from './metrics.ts';

/** The samples of metric `name` in `registry`: labels and value of each. */
async function samples(registry: Registry, name: string) {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric, `${name} is registered`);
  return (await metric.get()).values;
}

test('instruments are created once per registry and shared by everyone asking for them', async () => {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const first = consumerMetrics(registry);
  const second = consumerMetrics(registry);
  assert.equal(first.lag, second.lag);
  assert.equal(first.sinkEvents, second.sinkEvents);
  first.sinkEvents.inc({ sink: 'counter' }, 2);
  second.sinkEvents.inc({ sink: 'counter' }, 3);
  assert.deepEqual(
    (await samples(registry, 'tally_sink_events_total')).map((s) => [s.labels, s.value]),
    [[{ sink: 'counter' }, 5]],
  );

  // Another registry (another process) has instruments of its own.
  const other = createMetricsRegistry({ defaultMetrics: false });
  assert.notEqual(consumerMetrics(other).sinkEvents, first.sinkEvents);
  assert.deepEqual(await samples(other, 'tally_sink_events_total'), []);
  // Only what was asked for is registered.
  assert.equal(registry.getSingleMetric('tally_grpc_requests_total'), undefined);
  grpcMetrics(registry);
  assert.ok(registry.getSingleMetric('tally_grpc_requests_total'));
});

test('a registry carries the event-loop and process metrics under their standard names', async () => {
  const text = await createMetricsRegistry().metrics();
  for (const name of [
    'nodejs_eventloop_lag_p99_seconds',
    'process_cpu_seconds_total',
    'nodejs_heap_size_used_bytes',
  ])
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'));
  assert.doesNotMatch(await createMetricsRegistry({ defaultMetrics: false }).metrics(), /nodejs_/);
});

test('label values stay within a fixed set whatever the input', () => {
  assert.equal(httpMethodLabel('GET'), 'GET');
  assert.equal(httpMethodLabel('DELETE'), 'DELETE');
  assert.equal(httpMethodLabel('BREW'), 'other');
  assert.equal(httpMethodLabel('get'), 'other');
  assert.equal(httpMethodLabel(undefined), 'other');

  assert.equal(sqlOperation('SELECT 1'), 'select');
  assert.equal(sqlOperation('\n  INSERT INTO event (id) VALUES ($1)'), 'insert');
  assert.equal(sqlOperation('update consumer_offset SET x = 1'), 'update');
  assert.equal(sqlOperation('WITH gone AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM gone'), 'with');
  assert.equal(sqlOperation('BEGIN'), 'begin');
  assert.equal(sqlOperation('COMMIT'), 'commit');
  assert.equal(sqlOperation('CREATE TABLE x (id int)'), 'other');
  assert.equal(sqlOperation('-- a comment\nSELECT 1'), 'other');
  assert.equal(sqlOperation(''), 'other');
});
