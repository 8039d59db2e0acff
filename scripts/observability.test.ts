/**
 * Tally's dashboards and Prometheus rules (observability/): the committed files are a fresh render
 * of their sources; every panel can be read by a newcomer (description, unit, data source,
 * filters); every metric a dashboard or rule uses is one the code exports (docs/metrics.md's table,
 * itself checked against the code by services/metrics.integration.test.ts), and every documented
 * metric is on a dashboard; every alert explains itself, links to its runbook section, and has
 * promtool tests that fire it and that must not. The business dashboard's SQL is run against a
 * real PostgreSQL by scripts/business-dashboard.integration.test.ts; here, only its shape, and the
 * substitution of Grafana's macros and variables that test relies on.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DATASOURCE, POSTGRES } from '../observability/dashboards/panels.ts';
import { interpolateGrafanaSql } from '../observability/grafana-sql.ts';
import {
  type DashboardQuery,
  metricNames,
  panelQueries,
  sqlQueries,
  variableQueries,
} from '../observability/inspect.ts';
import { localPrometheusConfig, parseTarget } from '../observability/prometheus/local-config.ts';
import { RULE_FILES, RUNBOOK_URL, type Rule } from '../observability/prometheus/rules.ts';
import { DASHBOARDS, OBSERVABILITY_DIR, renderAll, staleFiles } from '../observability/render.ts';
import { SLOS } from '../observability/slo.ts';

const repo = join(import.meta.dirname, '..');
const rendered = renderAll();
const dashboards = Object.keys(DASHBOARDS).map(
  (name) => JSON.parse(rendered.get(join(OBSERVABILITY_DIR, 'dashboards', 'json', name))!) as DashboardJson,
);
const rules: Rule[] = Object.values(RULE_FILES).flatMap((groups) => groups().flatMap((g) => g.rules));
const alerts = rules.filter((r) => 'alert' in r);
const recorded = new Set(rules.flatMap((r) => ('record' in r ? [r.record] : [])));

interface PanelJson {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type: string; uid: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: {
    expr?: string;
    rawSql?: string;
    format?: string;
    refId: string;
    datasource?: { type: string; uid: string };
  }[];
}
interface DashboardJson {
  uid: string;
  title: string;
  description?: string;
  tags?: string[];
  panels: PanelJson[];
  templating: {
    list: { name: string; type: string; query?: unknown; datasource?: { type: string; uid: string } }[];
  };
}

/** docs/metrics.md's table: metric name → type. */
function documentedMetrics(): Map<string, string> {
  const doc = readFileSync(join(repo, 'docs', 'metrics.md'), 'utf8');
  const table = /<!-- metrics-table:start -->([\s\S]*?)<!-- metrics-table:end -->/.exec(doc)?.[1] ?? '';
  return new Map([...table.matchAll(/^\|\s*`([a-z0-9_:]+)`\s*\|\s*(\w+)\s*\|/gm)].map((m) => [m[1]!, m[2]!]));
}

const documented = documentedMetrics();
/** Series Prometheus itself makes: a target's scrape health, and the alerts' state. */
const PROMETHEUS_SERIES = new Set(['up', 'ALERTS']);

/** The documented metric a selected series name belongs to (a histogram's `_bucket`, …), if any. */
function exportedMetric(name: string): string | undefined {
  if (documented.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return documented.get(base) === 'histogram' ? base : undefined;
}

function allDashboardQueries(): DashboardQuery[] {
  return dashboards.flatMap((d) => [
    ...panelQueries(d),
    ...variableQueries(d).map((v) => ({
      dashboard: d.title,
      panel: `variable ${v.variable}`,
      expr: v.match,
    })),
  ]);
}

test('the committed dashboards and rule files equal a fresh render of their sources', () => {
  assert.deepEqual(staleFiles(), [], 'stale: run `node observability/render.ts` and commit the result');
});

test('docs/metrics.md has a metrics table to check against', () => {
  assert.ok(documented.size >= 20, `only ${documented.size} metrics parsed from docs/metrics.md`);
  assert.equal(documented.get('tally_sink_visible_latency_seconds'), 'histogram');
});

test('every metric a dashboard or rule uses is exported by Tally, recorded by a rule, or made by Prometheus', () => {
  const uses = [
    ...allDashboardQueries().map((q) => ({ where: `${q.dashboard} / ${q.panel}`, expr: q.expr })),
    ...rules.map((r) => ({ where: 'record' in r ? `rule ${r.record}` : `alert ${r.alert}`, expr: r.expr })),
  ];
  const unknown: string[] = [];
  for (const { where, expr } of uses) {
    const names = metricNames(expr);
    assert.ok(names.length > 0, `${where}: no metric found in ${expr}`);
    for (const name of names)
      if (!exportedMetric(name) && !recorded.has(name) && !PROMETHEUS_SERIES.has(name))
        unknown.push(`${where}: ${name}`);
  }
  assert.deepEqual(unknown, []);
});

test('every metric documented in docs/metrics.md is on a dashboard', () => {
  const shown = new Set(
    allDashboardQueries().flatMap((q) => metricNames(q.expr).flatMap((n) => exportedMetric(n) ?? [])),
  );
  assert.deepEqual(
    [...documented.keys()].filter((m) => !shown.has(m)),
    [],
  );
});

test('the metric name extraction finds metrics, not functions, labels or durations', () => {
  assert.deepEqual(
    metricNames(
      'sum by (namespace, le) (rate(a_bucket{job="tally", x=~"y|z"}[5m])) / on (namespace) b offset 10m ' +
        'or 0 * histogram_quantile(0.99, c) and time() - d',
    ),
    ['a_bucket', 'b', 'c', 'd'],
  );
});

test('each dashboard has a uid, the tally tag, the data source variable and its filters', () => {
  const uids = dashboards.map((d) => d.uid);
  assert.equal(new Set(uids).size, uids.length);
  for (const d of dashboards) {
    assert.ok(d.description, `${d.title}: no description`);
    assert.deepEqual(d.tags, ['tally']);
    const variables = d.templating.list.map((v) => v.name);
    assert.equal(variables[0], 'datasource', d.title);
    assert.ok(variables.includes('namespace'), `${d.title}: no namespace variable`);
  }
  const filters = (uid: string) => dashboards.find((d) => d.uid === uid)!.templating.list.map((v) => v.name);
  assert.deepEqual(filters('tally-overview'), ['datasource', 'namespace', 'role', 'pod']);
  assert.deepEqual(filters('tally-backends'), ['datasource', 'namespace', 'role', 'pod']);
  // The SLOs are recorded per namespace: role and pod do not apply.
  assert.deepEqual(filters('tally-slos'), ['datasource', 'namespace']);
  // Business: Prometheus by namespace; PostgreSQL (its own data source) by event type.
  assert.deepEqual(filters('tally-business'), ['datasource', 'namespace', 'postgres', 'type']);
});

/** The variables that filter the queries of each data source: the query variables fed by it. */
function filtersBySource(d: DashboardJson): Map<string, string[]> {
  const by = new Map<string, string[]>([
    [DATASOURCE.uid!, []],
    [POSTGRES.uid!, []],
  ]);
  for (const v of d.templating.list)
    if (v.type === 'query') {
      const list = by.get(v.datasource?.uid ?? '');
      assert.ok(
        list,
        `${d.title} / $${v.name}: fed by no known data source: ${JSON.stringify(v.datasource)}`,
      );
      list.push(v.name);
    }
  return by;
}

test('every panel has a description, a unit and a data source variable, and queries filtered by its variables', () => {
  for (const d of dashboards) {
    const filters = filtersBySource(d);
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, `${d.title}: panel ids not unique`);
    for (const p of d.panels.filter((p) => p.type !== 'row')) {
      const where = `${d.title} / ${p.title}`;
      assert.ok((p.description ?? '').length >= 60, `${where}: description missing or too short`);
      assert.ok(p.fieldConfig?.defaults?.unit, `${where}: no unit`);
      const source = [DATASOURCE, POSTGRES].find((s) => s.uid === p.datasource?.uid);
      assert.ok(source, `${where}: data source ${JSON.stringify(p.datasource)}`);
      assert.deepEqual(p.datasource, source, where);
      assert.ok(p.targets && p.targets.length > 0, `${where}: no query`);
      for (const t of p.targets) {
        assert.match(t.refId, /^[A-Z]$/, where);
        assert.deepEqual(t.datasource, source, where);
        const query = source === DATASOURCE ? t.expr : t.rawSql;
        assert.ok(query, `${where}: no ${source === DATASOURCE ? 'expr' : 'rawSql'} for ${source.type}`);
        if (source === POSTGRES) assert.match(t.format ?? '', /^(time_series|table)$/, where);
        for (const v of filters.get(source.uid!)!)
          assert.ok(query.includes(`$${v}`), `${where}: ${query} ignores $${v}`);
      }
    }
  }
});

test('the business dashboard has PostgreSQL panels and Prometheus panels, each checked by its own test', () => {
  const business = dashboards.find((d) => d.uid === 'tally-business')!;
  const sql = sqlQueries(business, POSTGRES.type!);
  const promql = panelQueries(business);
  assert.ok(sql.filter((q) => q.format !== 'variable').length >= 4, 'PostgreSQL panels');
  assert.ok(promql.length >= 3, 'Prometheus panels');
  // Neither list holds the other's queries: PromQL checks skip the SQL, and the reverse.
  for (const q of promql) assert.doesNotMatch(q.expr, /\bevent_summary\b|\bSELECT\b/i, q.panel);
  for (const q of sql) assert.match(q.sql, /^SELECT\b[\s\S]*\bFROM event_summary\b/, q.panel);
  assert.deepEqual(
    variableQueries(business).map((v) => v.variable),
    ['namespace'],
  );
  // Only this dashboard reads PostgreSQL.
  for (const d of dashboards.filter((d) => d !== business))
    assert.deepEqual(sqlQueries(d, POSTGRES.type!), []);
});

test("Grafana's SQL substitution: variables quoted as Grafana's SQL data sources do, then the PostgreSQL macros", () => {
  const context = {
    from: new Date('2025-03-01T00:00:00Z'),
    to: new Date('2025-03-02T01:30:00.120Z'),
    variables: { type: ['like', "o'clock"], one: ['view'], single: "it's" },
  };
  assert.equal(
    interpolateGrafanaSql(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template.
      "SELECT $__time(hour), x FROM t WHERE $__timeFilter( hour ) AND type IN ($type) AND a IN (${one}) AND b = '$single'",
      context,
    ),
    "SELECT hour AS \"time\", x FROM t WHERE hour BETWEEN '2025-03-01T00:00:00Z' AND '2025-03-02T01:30:00.12Z' " +
      "AND type IN ('like','o''clock') AND a IN ('view') AND b = 'it''s'",
  );
  assert.equal(
    interpolateGrafanaSql('least($__timeFrom()::timestamptz, $__timeTo())', context),
    "least('2025-03-01T00:00:00Z'::timestamptz, '2025-03-02T01:30:00.12Z')",
  );
  // Anything it does not reproduce fails, rather than reaching the database as Grafana would not send it.
  assert.throws(() => interpolateGrafanaSql('SELECT $missing', context), /\$missing: no such variable/);
  assert.throws(
    () => interpolateGrafanaSql("SELECT $__timeGroupAlias(hour, '1h')", context),
    /\$__timeGroupAlias: a macro this substitution does not reproduce/,
  );
  assert.throws(() => interpolateGrafanaSql('SELECT $__interval', context), /not substituted: \$__interval/);
  assert.throws(
    () => interpolateGrafanaSql('SELECT 1 WHERE $__timeFilter()', context),
    /missing time column/,
  );
  assert.throws(
    () => interpolateGrafanaSql('SELECT 1 WHERE t IN ($type)', { ...context, variables: { type: [] } }),
    /no value selected/,
  );
});

test('every SLO has its panels on the SLO dashboard', () => {
  const slos = dashboards.find((d) => d.uid === 'tally-slos')!;
  const exprs = panelQueries(slos).map((q) => q.expr);
  for (const slo of SLOS) {
    for (const window of ['30d', '1h', '6h', '3d'])
      assert.ok(
        exprs.some((e) => e.includes(`ratio_rate${window}{slo="${slo.id}"`)),
        `${slo.id}: no ${window} panel`,
      );
  }
});

const runbook = readFileSync(join(repo, 'docs', 'runbook.md'), 'utf8');
/** GitHub's anchors of the runbook's headings. */
const anchors = new Set(
  [...runbook.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
    m[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-'),
  ),
);

test('every alert has a severity, a summary, a description with its value and a runbook section', () => {
  assert.ok(alerts.length >= 8);
  for (const a of alerts) {
    if (!('alert' in a)) continue;
    assert.match(a.labels.severity ?? '', /^(critical|warning)$/, a.alert);
    assert.ok(a.annotations.summary.length > 20, a.alert);
    assert.match(
      a.annotations.description,
      /\{\{[^}]*\$value[^}]*\}\}/,
      `${a.alert}: no value in the description`,
    );
    const [url, anchor] = a.annotations.runbook_url.split('#');
    assert.equal(url, RUNBOOK_URL, a.alert);
    assert.equal(anchor, a.alert.toLowerCase(), a.alert);
    assert.ok(anchors.has(anchor!), `${a.alert}: docs/runbook.md has no section #${anchor}`);
  }
});

test('every alert has promtool tests where it fires and where it must not', () => {
  const dir = join(OBSERVABILITY_DIR, 'prometheus', 'tests');
  const tests = readdirSync(dir)
    .filter((f) => f.endsWith('.test.yml'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
  for (const name of new Set(alerts.map((a) => ('alert' in a ? a.alert : '')))) {
    const cases = [...tests.matchAll(new RegExp(`alertname: ${name}\\n(\\s*exp_alerts:\\n\\s*- )?`, 'g'))];
    assert.ok(
      cases.some((c) => c[1]),
      `${name}: no test where it fires`,
    );
    assert.ok(
      cases.some((c) => !c[1]),
      `${name}: no test where it must stay silent`,
    );
  }
});

test('the local scrape configuration gives each target the labels the dashboards and rules expect', () => {
  const config = localPrometheusConfig({
    targets: [parseTarget('gateway=127.0.0.1:8080'), parseTarget('persister+counter=127.0.0.1:9465')],
    interval: '1s',
  });
  assert.match(config, /job_name: tally\n/);
  assert.match(
    config,
    /targets:\n\s+- 127\.0\.0\.1:8080\n\s+labels:\n\s+namespace: local\n\s+role: gateway\n\s+pod: 127\.0\.0\.1:8080\n/,
  );
  assert.match(config, /role: persister\+counter\n/);
  for (const file of Object.keys(RULE_FILES)) assert.ok(config.includes(`/observability/prometheus/${file}`));
  assert.throws(() => parseTarget('127.0.0.1:8080'), /expected ROLE=HOST:PORT/);
});
