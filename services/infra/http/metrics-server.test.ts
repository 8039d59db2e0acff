import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMetricsRegistry, ingestMetrics } from '../metrics.ts';
import type { ReadinessReport } from '../readiness.ts';
import { startMetricsServer } from './metrics-server.ts';

test('the metrics server answers /metrics in the text format, /healthz, /readyz as told, 404 elsewhere', async (t) => {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  ingestMetrics(registry).events.inc({ method: 'Publish' }, 3);
  let ready = false;
  const report = (): ReadinessReport => ({
    ready,
    status: ready ? 'ready' : 'starting',
    backends: {},
    joining: [],
  });
  const server = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry,
    readiness: async () => report(),
  });
  t.after(() => server.close());
  const get = (path: string) => fetch(`http://127.0.0.1:${server.port}${path}`);

  const scrape = await get('/metrics');
  assert.equal(scrape.status, 200);
  assert.match(scrape.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  assert.match(await scrape.text(), /^tally_ingest_events_total\{method="Publish"\} 3$/m);

  assert.equal((await get('/healthz')).status, 200);
  assert.equal((await get('/readyz')).status, 503);
  ready = true;
  assert.equal((await get('/readyz')).status, 200);
  assert.deepEqual(await (await get('/readyz?verbose')).json(), report());

  const missing = await get('/v1/events');
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { error: { status: string } }).error.status, 'NOT_FOUND');
});

test('a taken port fails the start', async (t) => {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const first = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry,
    readiness: async () => ({ ready: true, status: 'ready', backends: {}, joining: [] }),
  });
  t.after(() => first.close());
  await assert.rejects(
    startMetricsServer({
      host: '127.0.0.1',
      port: first.port,
      registry,
      readiness: async () => ({ ready: true, status: 'ready', backends: {}, joining: [] }),
    }),
    /EADDRINUSE/,
  );
});
