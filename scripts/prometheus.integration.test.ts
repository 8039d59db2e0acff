/**
 * Tally's dashboards and rules against a real Prometheus (Debian's `prometheus` package) scraping
 * a real Tally: `tally all` on embedded backends, scraped every second with the project's rule files
 * and the local scrape configuration (observability/prometheus/local-config.ts), after a few
 * hundred events sent over REST. Every recording and alert rule evaluates without error, every
 * dashboard query is valid and returns series (except those whose metrics have nothing to report
 * in such a run, each with its reason), every variable finds the target's labels, and the
 * events-accepted panel shows the events sent. The PostgreSQL panels and variables of the business
 * dashboard are not PromQL: scripts/business-dashboard.integration.test.ts runs them. Fails, saying
 * how to install it, when Prometheus is missing.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { metricNames, panelQueries, variableQueries } from '../observability/inspect.ts';
import { localPrometheusConfig } from '../observability/prometheus/local-config.ts';
import { RULE_FILES } from '../observability/prometheus/rules.ts';
import { DASHBOARDS, OBSERVABILITY_DIR } from '../observability/render.ts';
import {
  COUNTER_FRESHNESS_SECONDS,
  INGEST_LATENCY_SECONDS,
  SUMMARY_FRESHNESS_SECONDS,
} from '../observability/slo.ts';
import { routesTo } from '../services/testing/routing-run.ts';
import { CONSUMER_GROUPS } from '../services/testing/tally-client.ts';
import { freePort, startTally, type TallyProcess } from '../services/testing/tally-process.ts';

const NAMESPACE = 'tally-test';
const ROLE = 'all';
const RATE_INTERVAL = '1m';

/**
 * Metrics with nothing to report in this run, and why: a dashboard query that uses one may be
 * empty, but must still be valid. Every other query must return series.
 */
const MAY_BE_EMPTY: Record<string, string> = {
  tally_dlq_records_total: 'nothing is dead-lettered: every event sent is valid',
  tally_duplicate_events_total: 'no event id is sent twice: the persister refuses nothing',
  tally_consumer_batch_failures_total: 'no consumer batch fails: the embedded backends stay up',
  tally_redis_operation_duration_seconds: 'the embedded counter store is not Redis',
  tally_pg_query_duration_seconds: 'PGlite, the embedded SQL database, is not PostgreSQL',
  ALERTS: 'no Tally alert has to fire',
  tally_auth_failures_total: 'access control is off in this run: nothing is refused',
  tally_rate_limited_total: 'no credential or address of this run reaches a limit',
  tally_rate_limit_backend_errors_total: "the rate limiter's store answers throughout",
  tally_route_transform_failures_total: "the destination's transform (none: the default body) never fails",
  tally_delivery_delivered_total:
    "the destination's host (hooks.example.com) does not resolve here: no delivery succeeds, while its failed attempts and retries have series",
  tally_delivery_dead_letters_total:
    'a failing delivery is retried on its schedule for hours before it is dead-lettered',
  tally_delivery_duplicates_total: 'the router writes each record once in this run: nothing to skip',
  tally_projected_events_total: 'no event of this run is of a projected type (order.*): no entity changes',
  tally_projection_refused_total: 'no event of this run is of a projected type: nothing is refused',
  nodejs_gc_duration_seconds:
    'a series appears with the first collection of its kind: the scraped process need not have collected garbage in the seconds of the test',
};

try {
  execFileSync('prometheus', ['--version'], { stdio: 'ignore' });
} catch {
  throw new Error(
    "prometheus not found: install Debian's prometheus package (scripts/install-deps.sh does, " +
      'or: apt-get install prometheus)',
  );
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

let tally: TallyProcess;
let prometheus: ChildProcess;
let prometheusExited: Promise<unknown>;
let promUrl: string;
let target: string;
const prometheusOutput: string[] = [];
const dirs: string[] = [];

/** A Prometheus HTTP API call's `data`; throws with Prometheus's error. */
async function api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
  const response = await fetch(`${promUrl}/api/v1/${path}?${new URLSearchParams(params)}`);
  const body = (await response.json()) as { status: string; data: T; errorType?: string; error?: string };
  if (body.status !== 'success')
    throw new Error(`${path} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
  return body.data;
}

async function instant(expr: string, time?: number): Promise<Sample[]> {
  const data = await api<{ resultType: string; result: Sample[] }>('query', {
    query: expr,
    ...(time === undefined ? {} : { time: String(time) }),
  });
  assert.equal(data.resultType, 'vector', expr);
  return data.result;
}

/** The single value of `expr`, or undefined when it returns nothing. */
async function value(expr: string): Promise<number | undefined> {
  const result = await instant(expr);
  return result.length === 0 ? undefined : Number(result[0]!.value[1]);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}; Prometheus said:\n${prometheusOutput.slice(-20).join('')}`,
      );
    await sleep(250);
  }
}

async function post(path: string, body: unknown): Promise<number> {
  const response = await fetch(`http://${target}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response.status;
}

function event(i: number) {
  return { type: 'view', target: `page/${i % 7}`, userId: `user-${i % 11}` };
}

/** A dashboard query with Grafana's variables replaced by this run's values. */
function substitute(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', RATE_INTERVAL)
    .replaceAll('$namespace', NAMESPACE)
    .replaceAll('$role', ROLE)
    .replaceAll('$pod', target);
}

const dashboards = Object.keys(DASHBOARDS).map((name) =>
  JSON.parse(readFileSync(join(OBSERVABILITY_DIR, 'dashboards', 'json', name), 'utf8')),
);

/** Events accepted: the warm-up's (one per method, so each series exists before the count). */
let warmUpEvents = 0;
let measuredEvents = 0;

before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-prometheus-data-'));
  const promDir = mkdtempSync(join(tmpdir(), 'tally-prometheus-'));
  dirs.push(dataDir, promDir);
  tally = await startTally(['all'], {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: '0',
    TALLY_GRPC_PORT: '0',
    TALLY_CONSUMER_LAG_INTERVAL_MS: '1000',
    TALLY_DESTINATIONS_REFRESH_MS: '200',
  });
  target = `127.0.0.1:${tally.httpPort}`;
  // A destination for every event, in force in the router before the first one.
  assert.equal(
    await post('/v1/destinations', { name: 'all', webhook: { url: 'https://hooks.example.com/tally' } }),
    200,
  );
  await waitFor('the router to route to the destination', async () => routesTo(tally.lines, 1));

  const configFile = join(promDir, 'prometheus.yml');
  writeFileSync(
    configFile,
    localPrometheusConfig({
      targets: [{ role: ROLE, address: target }],
      namespace: NAMESPACE,
      interval: '1s',
    }),
  );
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(promDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheusExited = once(prometheus, 'exit');
  for (const stream of [prometheus.stdout!, prometheus.stderr!])
    stream.on('data', (chunk: Buffer) => prometheusOutput.push(chunk.toString()));
  await waitFor('Prometheus to be ready', async () => {
    if (prometheus.exitCode !== null) throw new Error(`prometheus exited:\n${prometheusOutput.join('')}`);
    return fetch(`${promUrl}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
  });
  await waitFor('the first scrape of Tally', async () => (await value(`up{job="tally"}`)) === 1);

  // Warm-up: one event per method, and one refused batch (a client error, on the error panels).
  assert.equal(await post('/v1/events', event(0)), 200);
  assert.equal(await post('/v1/events:batch', { events: [event(1)] }), 200);
  assert.equal(await post('/v1/events:batch', { events: [{ type: '', target: 'x' }] }), 400);
  warmUpEvents = 2;
  await waitFor(
    'Prometheus to see the warm-up events',
    async () =>
      (await instant(`tally_ingest_events_total{job="tally", namespace="${NAMESPACE}"}`)).length === 2,
  );

  // The measured events: 4 batches of 50 and 10 single events.
  for (let b = 0; b < 4; b++)
    assert.equal(
      await post('/v1/events:batch', {
        events: Array.from({ length: 50 }, (_, i) => event(100 + b * 50 + i)),
      }),
      200,
    );
  for (let i = 0; i < 10; i++) assert.equal(await post('/v1/events', event(500 + i)), 200);
  measuredEvents = 210;
  const sent = warmUpEvents + measuredEvents;
  await waitFor(
    `Prometheus to see all ${sent} events accepted`,
    async () => (await value(`sum(tally_ingest_events_total{job="tally"})`)) === sent,
  );
  // `tally all` runs every sink: each holds every event once.
  await waitFor(
    'every sink to hold the events',
    async () => (await value(`sum(tally_sink_events_total{job="tally"})`)) === CONSUMER_GROUPS.length * sent,
  );
  // The recording rules see the sinks' histograms once a scrape after the last batch is in.
  await waitFor('every SLO to be recorded over 30 days', async () => {
    const recorded = await instant(`namespace:tally_slo_errors:ratio_rate30d{namespace="${NAMESPACE}"}`);
    return recorded.length === 4 && recorded.every((s) => !Number.isNaN(Number(s.value[1])));
  });
});

after(async () => {
  if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
    prometheus.kill('SIGTERM');
    await prometheusExited;
  }
  if (tally) assert.equal(await tally.kill('SIGTERM'), 0);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

interface RulesData {
  groups: {
    name: string;
    file: string;
    rules: { name: string; type: string; health: string; lastError?: string }[];
  }[];
}

test('every recording and alert rule of the rule files is loaded and evaluates without error', async () => {
  const expected = Object.values(RULE_FILES).flatMap((groups) =>
    groups().flatMap((g) => g.rules.map((r) => ('record' in r ? r.record : r.alert))),
  );
  let rules: RulesData['groups'][number]['rules'] = [];
  await waitFor('every rule to be evaluated', async () => {
    rules = (await api<RulesData>('rules')).groups.flatMap((g) => g.rules);
    return rules.length === expected.length && rules.every((r) => r.health !== 'unknown');
  });
  assert.deepEqual(rules.map((r) => r.name).sort(), expected.sort());
  const failing = rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError}`);
  assert.deepEqual(failing, []);
});

test('every dashboard query is valid, and returns series unless its metrics have nothing to report', async () => {
  const queries = dashboards.flatMap(panelQueries);
  assert.ok(queries.length > 40, `only ${queries.length} queries found`);
  // Every dashboard's PromQL is here, the business one's too (its SQL is not).
  assert.deepEqual(
    [...new Set(queries.map((q) => q.dashboard))].sort(),
    dashboards.map((d) => d.title as string).sort(),
  );
  const empty: string[] = [];
  for (const q of queries) {
    const where = `${q.dashboard} / ${q.panel}: ${q.expr}`;
    const result = await instant(substitute(q.expr)).catch((error: Error) => {
      throw new Error(`${where}\n${error.message}`);
    });
    const excused = metricNames(q.expr).some(
      (name) => name.replace(/_(bucket|sum|count)$/, '') in MAY_BE_EMPTY,
    );
    if (result.length === 0 && !excused) empty.push(where);
  }
  assert.deepEqual(empty, [], 'queries that returned no series');
});

test("every dashboard variable finds the scraped target's namespace, role and pod", async () => {
  const expected: Record<string, string> = { namespace: NAMESPACE, role: ROLE, pod: target };
  for (const v of dashboards.flatMap(variableQueries)) {
    const values = await api<string[]>(`label/${v.label}/values`, { 'match[]': substitute(v.match) });
    assert.ok(
      values.includes(expected[v.label]!),
      `${v.dashboard} / $${v.variable}: ${JSON.stringify(values)}`,
    );
  }
});

test('the events-accepted panel shows the events sent', async (t) => {
  const panel = dashboards
    .flatMap(panelQueries)
    .find((q) => q.panel === 'Events accepted per second, by gRPC method');
  assert.ok(panel, 'no events-accepted panel on the overview');
  // Over a window holding the whole run, at the time of the last scrape: rate × window is the
  // increase, i.e. the events accepted since each series appeared (Prometheus extrapolates back
  // to zero across most of the warm-up event that created it).
  const windowSeconds = 600;
  const scrapedAt = Math.max(
    ...(await instant(`timestamp(tally_ingest_events_total{job="tally"})`)).map((s) => Number(s.value[1])),
  );
  const perMethod = await instant(
    substitute(panel.expr).replace(`[${RATE_INTERVAL}]`, `[${windowSeconds}s]`),
    scrapedAt,
  );
  assert.deepEqual(perMethod.map((s) => s.metric.method).sort(), ['Publish', 'PublishBatch']);
  const increase = perMethod.reduce((sum, s) => sum + Number(s.value[1]) * windowSeconds, 0);
  t.diagnostic(`events accepted over the run, from the panel: ${increase.toFixed(2)}`);
  assert.ok(
    increase >= measuredEvents - 1 && increase <= measuredEvents + warmUpEvents + 1,
    `the panel shows ${increase.toFixed(2)} events over the run; ${measuredEvents} were sent after the warm-up's ${warmUpEvents}`,
  );
});

test("the histograms have a bucket at each objective's bound, so the SLOs count exactly", async () => {
  const buckets: [string, string][] = [
    [
      'tally_grpc_request_duration_seconds_bucket{service="tally.v1.IngestService"}',
      String(INGEST_LATENCY_SECONDS),
    ],
    ['tally_sink_visible_latency_seconds_bucket{sink="counter"}', String(COUNTER_FRESHNESS_SECONDS)],
    ['tally_sink_visible_latency_seconds_bucket{sink="aggregator"}', String(SUMMARY_FRESHNESS_SECONDS)],
  ];
  for (const [selector, le] of buckets) {
    const les = new Set((await instant(selector)).map((s) => s.metric.le));
    assert.ok(les.has(le), `${selector}: no bucket le="${le}" among ${[...les].join(', ')}`);
  }
});

test('no process-down, dead-letter or id-conflict alert fires on a healthy Tally', async () => {
  assert.deepEqual(
    await instant(
      'ALERTS{alertname=~"TallyTargetDown|TallyRoleDown|TallyDeadLetters|TallyEventIdConflicts"}',
    ),
    [],
  );
});
