/**
 * Metrics on the real servers, one role per process: each role exports exactly
 * the `tally_*` metrics docs/metrics.md gives it (the test reads the doc's
 * table, so the two cannot drift), with the documented types and labels, plus
 * the process and Node.js ones; and after events, requests, a poison record and
 * a milestone rule's two crossings the counters and histograms that should move
 * did, and the lag returns to 0.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends, CONSUMER_GROUPS, http, ingestClient, topicOfGroup } from './testing/tally-client.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

await requireRealServers();

const ROLES = [
  'gateway',
  'ingest',
  'query',
  'persister',
  'counter',
  'aggregator',
  'alerter',
  'router',
] as const;
type Role = (typeof ROLES)[number];
/** Roles the table names whose metrics other tests check. */
const OTHER_ROLES: readonly string[] = ['sender', 'projector'];
const GROUP_OF = {
  persister: CONSUMER_GROUPS[0],
  counter: CONSUMER_GROUPS[1],
  aggregator: CONSUMER_GROUPS[2],
  alerter: CONSUMER_GROUPS[3],
  router: CONSUMER_GROUPS[4],
} as const;
const PARTITIONS = 3;

interface DocumentedMetric {
  name: string;
  type: string;
  labels: string[];
  roles: Role[];
}

/** The table of docs/metrics.md. */
function documentedMetrics(): DocumentedMetric[] {
  const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'metrics.md'), 'utf8');
  const table = /<!-- metrics-table:start -->([\s\S]*?)<!-- metrics-table:end -->/.exec(doc)?.[1] ?? '';
  const metrics = [...table.matchAll(/^\|\s*`([a-z_]+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|/gm)].map((m) => {
    const roles = m[4]!.trim();
    return {
      name: m[1]!,
      type: m[2]!.trim(),
      labels: [...m[3]!.matchAll(/`(\w+)`/g)].map((l) => l[1]!).sort(),
      roles: roles === 'all' ? [...ROLES] : (roles.split(/,\s*/) as Role[]),
    };
  });
  assert.ok(metrics.length >= 20, `docs/metrics.md lists ${metrics.length} metrics`);
  for (const m of metrics)
    for (const r of m.roles) assert.ok(ROLES.includes(r) || OTHER_ROLES.includes(r), `${m.name}: role ${r}`);
  // The sender's metrics are checked by its own tests (services/sender/), on real receivers.
  return metrics.map((m) => ({ ...m, roles: m.roles.filter((r) => ROLES.includes(r)) }));
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A scrape in the Prometheus text format: the TYPE of each metric and every sample. */
class Scrape {
  readonly types = new Map<string, string>();
  readonly samples: Sample[] = [];
  readonly text: string;

  constructor(text: string) {
    this.text = text;
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) this.types.set(type[1]!, type[2]!);
      if (line === '' || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      assert.ok(m, `a sample line: ${line}`);
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
      this.samples.push({ name: m[1]!, labels, value: Number(m[3]) });
    }
  }

  /** The sum of the samples named `name` whose labels include `labels`. */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((total, s) => total + s.value, 0);
  }

  /** The samples of metric `name` (a histogram's `_bucket`, `_sum` and `_count` included). */
  of(name: string): Sample[] {
    const histogram = this.types.get(name) === 'histogram';
    return this.samples.filter(
      (s) => s.name === name || (histogram && /^_(bucket|sum|count)$/.test(s.name.slice(name.length))),
    );
  }
}

async function scrape(tally: TallyProcess): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${tally.metricsPort}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return new Scrape(await response.text());
}

describe('metrics of every role on real Kafka, Redis and PostgreSQL', () => {
  const ns = testNamespace(PARTITIONS);
  const backends = new Backends(ns);
  const documented = documentedMetrics();
  const processes = new Map<Role, TallyProcess>();
  const env = { ...ns.env, TALLY_CONSUMER_LAG_INTERVAL_MS: '300', TALLY_ALERT_RULES_REFRESH_MS: '200' };
  const proc = (role: Role) => processes.get(role)!;

  before(async () => {
    const backs = ['ingest', 'query', 'persister', 'counter', 'aggregator', 'alerter', 'router'] as const;
    const started = await Promise.allSettled(backs.map((role) => startTally([role], env)));
    started.forEach((s, i) => {
      if (s.status === 'fulfilled') processes.set(backs[i]!, s.value);
    });
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    processes.set(
      'gateway',
      await startTally(['gateway'], {
        ...env,
        TALLY_INGEST_ADDR: `127.0.0.1:${proc('ingest').grpcPort}`,
        TALLY_QUERY_ADDR: `127.0.0.1:${proc('query').grpcPort}`,
      }),
    );
  });
  after(async () => {
    const codes = await Promise.all([...processes.values()].map((p) => p.kill('SIGTERM')));
    await backends.cleanup();
    assert.deepEqual(
      codes,
      [...processes.keys()].map(() => 0),
      'every role drains and exits 0',
    );
  });

  test('each role serves /metrics (the gateway on its HTTP port), the others /healthz and /readyz too', async () => {
    assert.equal(proc('gateway').metricsPort, proc('gateway').httpPort);
    for (const role of ROLES) {
      const { metricsPort } = proc(role);
      assert.ok(metricsPort, `${role} logged its metrics port`);
      assert.equal((await http(metricsPort, 'GET', '/healthz')).status, 200, `${role} /healthz`);
      assert.equal((await http(metricsPort, 'GET', '/readyz')).status, 200, `${role} /readyz`);
    }
    const ports = new Set(ROLES.map((r) => proc(r).metricsPort));
    assert.equal(ports.size, ROLES.length, 'one port per process');
  });

  test('each role exports exactly the tally metrics docs/metrics.md gives it, with their types', async () => {
    for (const role of ROLES) {
      const scraped = await scrape(proc(role));
      for (const metric of documented) {
        if (metric.roles.includes(role)) {
          assert.equal(
            scraped.types.get(metric.name),
            metric.type,
            `${role} exports ${metric.name} (${metric.type})`,
          );
        } else {
          assert.equal(scraped.types.get(metric.name), undefined, `${role} does not export ${metric.name}`);
        }
      }
      const undocumented = [...scraped.types.keys()].filter(
        (name) => name.startsWith('tally_') && !documented.some((m) => m.name === name),
      );
      assert.deepEqual(undocumented, [], `${role} exports only documented tally metrics`);
    }
  });

  test('after events, requests, a poison record and two milestones, what should move moved, and the lag is back to 0', async () => {
    const gateway = proc('gateway');
    const target = `https://metrics.example/${ns.id}/${randomUUID()}`;
    const event = (i: number) => ({ id: `${ns.id}-${i}`, type: 'view', target, userId: `u${i % 7}` });

    // A milestone rule on the target (50 and 100 views: the events below reach both), in force in
    // the alerter before the first event.
    const rule = await http(gateway.httpPort!, 'POST', '/v1/alert-rules', {
      name: 'metrics',
      eventType: 'view',
      recipients: { dashboard: true },
      milestone: { subject: { target }, thresholds: [50, 100] },
    });
    assert.equal(rule.status, 200, rule.text);
    await waitFor(
      () => proc('alerter').lines.some((line) => line.includes('"msg":"alert rules changed"')),
      () => 'the alerter never loaded the rule',
    );

    // 5 single events and a batch of 50 over REST, a batch of 45 over gRPC: 100 events.
    for (let i = 0; i < 5; i++)
      assert.equal((await http(gateway.httpPort!, 'POST', '/v1/events', event(i))).status, 200);
    const restBatch = Array.from({ length: 50 }, (_, i) => event(5 + i));
    assert.equal(
      (await http(gateway.httpPort!, 'POST', '/v1/events:batch', { events: restBatch })).status,
      200,
    );
    const ingest = ingestClient(proc('ingest').grpcPort!);
    try {
      await ingest.publishBatch({ events: Array.from({ length: 45 }, (_, i) => event(55 + i)) });
    } finally {
      ingest.close();
    }
    // Refused requests, one an unknown path that must not become a label.
    assert.equal((await http(gateway.httpPort!, 'POST', '/v1/events', { target })).status, 400);
    const stray = `/nowhere-${randomUUID()}`;
    assert.equal((await http(gateway.httpPort!, 'GET', stray)).status, 404);
    // A record that is not an event: each consumer group dead-letters it.
    await backends.log
      .producer()
      .send(ns.eventsTopic, [{ key: 'poison', value: Uint8Array.from([0x0a, 0xff]) }]);

    await waitFor(
      () => backends.caughtUp(CONSUMER_GROUPS.filter((g) => g !== 'group_projection')),
      () => 'consumers behind',
    );
    const query = `target=${encodeURIComponent(target)}`;
    const counters = await http(gateway.httpPort!, 'GET', `/v1/counters?${query}`);
    assert.equal(counters.status, 200);
    assert.deepEqual((counters.body as { counts: { count: string }[] }).counts[0]?.count, '100');
    const date = new Date().toISOString().slice(0, 10);
    assert.equal((await http(gateway.httpPort!, 'GET', `/v1/report?${query}&date=${date}`)).status, 200);

    // Gateway: per route template, never the raw path.
    const gw = await scrape(gateway);
    const requests = 'tally_http_requests_total';
    assert.equal(gw.sum(requests, { route: '/v1/events', method: 'POST', code: '200' }), 5);
    assert.equal(gw.sum(requests, { route: '/v1/events', method: 'POST', code: '400' }), 1);
    assert.equal(gw.sum(requests, { route: '/v1/events:batch', method: 'POST', code: '200' }), 1);
    assert.equal(gw.sum(requests, { route: '/v1/counters', method: 'GET', code: '200' }), 1);
    assert.equal(gw.sum(requests, { route: '/v1/report', method: 'GET', code: '200' }), 1);
    assert.equal(gw.sum(requests, { route: 'unmatched', method: 'GET', code: '404' }), 1);
    assert.equal(
      gw.sum('tally_http_request_duration_seconds_count', { route: '/v1/events', method: 'POST' }),
      6,
    );
    assert.ok(!gw.text.includes(stray) && !gw.text.includes(ns.id), 'no path or target in the labels');

    // Ingest: accepted events per method, calls per code, and the Kafka writes that carried them.
    const ig = await scrape(proc('ingest'));
    assert.equal(ig.sum('tally_ingest_events_total', { method: 'Publish' }), 5);
    assert.equal(ig.sum('tally_ingest_events_total', { method: 'PublishBatch' }), 95);
    const ingestCalls = { service: 'tally.v1.IngestService' };
    assert.equal(ig.sum('tally_grpc_requests_total', { ...ingestCalls, method: 'Publish', code: 'OK' }), 5);
    assert.equal(
      ig.sum('tally_grpc_requests_total', { ...ingestCalls, method: 'Publish', code: 'INVALID_ARGUMENT' }),
      1,
    );
    assert.equal(
      ig.sum('tally_grpc_requests_total', { ...ingestCalls, method: 'PublishBatch', code: 'OK' }),
      2,
    );
    assert.equal(ig.sum('tally_grpc_request_duration_seconds_count', ingestCalls), 8);
    assert.equal(ig.sum('tally_kafka_produce_batch_events_sum'), 100, 'every accepted event in one write');
    // Each call waited for its acknowledgement before the next was made: one write each.
    assert.equal(ig.sum('tally_kafka_produce_batch_events_count'), 7);
    assert.equal(ig.sum('tally_kafka_produce_duration_seconds_count'), 7);
    assert.equal(ig.sum('tally_kafka_produce_failures_total'), 0);

    // Query: its calls, and the Redis and PostgreSQL reads behind them.
    const qy = await scrape(proc('query'));
    const queryCalls = { service: 'tally.v1.QueryService' };
    assert.equal(
      qy.sum('tally_grpc_requests_total', { ...queryCalls, method: 'GetCounters', code: 'OK' }),
      1,
    );
    assert.equal(qy.sum('tally_grpc_requests_total', { ...queryCalls, method: 'GetReport', code: 'OK' }), 1);
    assert.equal(qy.sum('tally_redis_operation_duration_seconds_count', { operation: 'read' }), 1);
    assert.ok(qy.sum('tally_pg_query_duration_seconds_count', { operation: 'select' }) >= 1);

    // Consumers: every event held by each sink, its visible latency, its batches, the poison record.
    for (const sink of ['persister', 'counter', 'aggregator', 'alerter', 'router'] as const) {
      const group = ns.groupPrefix + GROUP_OF[sink];
      await waitFor(
        async () => {
          const lag = (await scrape(proc(sink))).samples.filter(
            (s) => s.name === 'tally_consumer_lag_messages',
          );
          return (
            lag.length === PARTITIONS &&
            lag.every(
              (s) =>
                s.value === 0 &&
                s.labels.group === group &&
                s.labels.topic === topicOfGroup(ns, GROUP_OF[sink]),
            )
          );
        },
        async () =>
          `${sink}: lag ${JSON.stringify((await scrape(proc(sink))).of('tally_consumer_lag_messages'))}`,
        20_000,
      );
      const s = await scrape(proc(sink));
      const held = s.sum('tally_sink_events_total', { sink });
      assert.ok(held >= 100, `${sink} holds ${held} events`);
      assert.equal(
        s.sum('tally_sink_visible_latency_seconds_count', { sink }),
        held,
        `${sink}: a latency per event`,
      );
      const visible = s.sum('tally_sink_visible_latency_seconds_sum', { sink }) / held;
      assert.ok(visible > 0 && visible < 120, `${sink}: mean visible latency ${visible} s`);
      const batches = s.sum('tally_consumer_batch_events_count', { group });
      assert.ok(batches >= 1, `${sink}: ${batches} batches`);
      // The poison record is the persister's alone: it reads the events topic and forwards only
      // what it stored.
      const poison = sink === 'persister' ? 1 : 0;
      assert.ok(
        s.sum('tally_consumer_batch_events_sum', { group }) >= 100 + poison,
        `${sink}: every record in a batch`,
      );
      assert.equal(s.sum('tally_consumer_batch_duration_seconds_count', { group }), batches);
      if (poison)
        assert.ok(
          s.sum('tally_dlq_records_total', { group, reason: 'undecodable' }) >= 1,
          `${sink}: dead letter`,
        );
      else
        assert.equal(
          s.sum('tally_dlq_records_total', { group, reason: 'undecodable' }),
          0,
          `${sink}: no poison`,
        );
      assert.equal(s.sum('tally_dlq_records_total', { group, reason: 'invalid' }), 0);
    }
    const duplicates = await scrape(proc('persister'));
    assert.equal(duplicates.sum('tally_duplicate_events_total', { kind: 'retry' }), 0);
    const counter = await scrape(proc('counter'));
    assert.ok(counter.sum('tally_redis_operation_duration_seconds_count', { operation: 'apply' }) >= 1);
    const persister = await scrape(proc('persister'));
    // Its batch is one statement writing event_id and event: a WITH.
    assert.ok(persister.sum('tally_pg_query_duration_seconds_count', { operation: 'with' }) >= 1);
    const aggregator = await scrape(proc('aggregator'));
    for (const operation of ['begin', 'insert', 'select', 'update', 'commit'])
      assert.ok(aggregator.sum('tally_pg_query_duration_seconds_count', { operation }) >= 1, operation);
    // The alerter: both milestones crossed, each notification kept (an insert) and counted once.
    const alerter = await scrape(proc('alerter'));
    assert.equal(alerter.sum('tally_notifications_total'), 2);
    assert.ok(alerter.sum('tally_pg_query_duration_seconds_count', { operation: 'insert' }) >= 1);
    assert.ok(alerter.sum('tally_redis_operation_duration_seconds_count', { operation: 'milestones' }) >= 1);

    // Every sample of a documented metric has exactly the documented labels.
    for (const role of ROLES) {
      const scraped = await scrape(proc(role));
      for (const metric of documented.filter((m) => m.roles.includes(role))) {
        for (const sample of scraped.of(metric.name)) {
          const labels = Object.keys(sample.labels)
            .filter((l) => l !== 'le')
            .sort();
          assert.deepEqual(labels, metric.labels, `${role}: labels of ${sample.name}`);
        }
      }
    }
  });
});
