/**
 * Reading the rendered observability files back, for the tests: the PromQL of every dashboard
 * panel and variable, the metric names an expression uses, and the SQL of the PostgreSQL panels
 * and variables.
 */

/** One PromQL query of a dashboard. */
export interface DashboardQuery {
  dashboard: string;
  /** The panel's title, or `variable <name>`. */
  panel: string;
  expr: string;
}

interface PanelJson {
  title?: string;
  targets?: { expr?: string; rawSql?: string; format?: string; datasource?: { type?: string } }[];
  panels?: PanelJson[];
}

interface VariableJson {
  name: string;
  type: string;
  query?: unknown;
  datasource?: { type?: string };
}

interface DashboardJson {
  title: string;
  panels?: PanelJson[];
  templating?: { list?: VariableJson[] };
}

/** Every panel target's `expr` (PromQL) of a dashboard (rows' panels included). */
export function panelQueries(dashboard: DashboardJson): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const visit = (panels: PanelJson[] | undefined) => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? [])
        if (target.expr)
          out.push({ dashboard: dashboard.title, panel: panel.title ?? '', expr: target.expr });
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  return out;
}

/** A query variable's `label_values(<selector>, <label>)`, split. */
export interface LabelValuesQuery {
  dashboard: string;
  variable: string;
  /** The series selector, e.g. `up{job="tally", namespace=~"$namespace"}`. */
  match: string;
  label: string;
}

/** The Prometheus query variables of a dashboard (those of other data sources left out). */
export function variableQueries(dashboard: DashboardJson): LabelValuesQuery[] {
  const out: LabelValuesQuery[] = [];
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query' || v.datasource?.type !== 'prometheus') continue;
    const match = /^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(String(v.query));
    if (!match)
      throw new Error(`${dashboard.title}: variable ${v.name}: not a label_values() query: ${v.query}`);
    out.push({ dashboard: dashboard.title, variable: v.name, match: match[1]!, label: match[2]! });
  }
  return out;
}

/** One SQL query of a dashboard: a PostgreSQL panel's target, or a query variable's. */
export interface DashboardSqlQuery {
  dashboard: string;
  /** The panel's title, or `variable <name>`. */
  panel: string;
  sql: string;
  /** How Grafana reads the rows: `time_series`, `table`; a variable's values: `variable`. */
  format: string;
}

/** Every panel target's `rawSql` and every query variable's SQL of a dashboard, for one data source type. */
export function sqlQueries(dashboard: DashboardJson, datasourceType: string): DashboardSqlQuery[] {
  const out: DashboardSqlQuery[] = [];
  const visit = (panels: PanelJson[] | undefined) => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? [])
        if (target.rawSql && target.datasource?.type === datasourceType)
          out.push({
            dashboard: dashboard.title,
            panel: panel.title ?? '',
            sql: target.rawSql,
            format: target.format ?? 'time_series',
          });
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  for (const v of dashboard.templating?.list ?? [])
    if (v.type === 'query' && v.datasource?.type === datasourceType)
      out.push({
        dashboard: dashboard.title,
        panel: `variable ${v.name}`,
        sql: String(v.query),
        format: 'variable',
      });
  return out;
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression selects (not functions, keywords, labels or durations).
 * Enough for the expressions written here: strings, label matchers, ranges and grouping clauses
 * are dropped first, then every remaining identifier not followed by `(` is a metric name.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![A-Za-z0-9_.:$])[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const rest = stripped.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}
