/**
 * What Tally's dashboards share: the data source and filter variables, the label selector they
 * feed, and panel builders that always set a description, a unit and the data source — Prometheus
 * for PromQL queries, PostgreSQL for SQL ones.
 */
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import * as common from '@grafana/grafana-foundation-sdk/common';
import {
  type Dashboard,
  DashboardBuilder,
  DashboardCursorSync,
  DashboardLinkBuilder,
  DashboardLinkType,
  type DataSourceRef,
  DatasourceVariableBuilder,
  QueryVariableBuilder,
  type Threshold,
  ThresholdsConfigBuilder,
  ThresholdsMode,
  VariableRefresh,
  VariableSort,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder } from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { JOB } from '../slo.ts';

/** Every query goes to the Prometheus data source picked in the `datasource` variable. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template.
export const DATASOURCE: DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/** Grafana's PostgreSQL data source plugin (built in since Grafana 10.3, formerly `postgres`). */
export const POSTGRES_PLUGIN = 'grafana-postgresql-datasource';

/** Every SQL query goes to the PostgreSQL data source picked in the `postgres` variable. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template.
export const POSTGRES: DataSourceRef = { type: POSTGRES_PLUGIN, uid: '${postgres}' };

/** The filter variables, in the order they narrow each other. */
export type Filter = 'namespace' | 'role' | 'pod';

/** `{job="tally", namespace=~"$namespace", …}` for the given filters, then `extra` matchers. */
export function selectorFor(filters: readonly Filter[], ...extra: string[]): string {
  return `{${[`job="${JOB}"`, ...filters.map((f) => `${f}=~"$${f}"`), ...extra].join(', ')}}`;
}

/** The selector of the Overview and Backends dashboards: namespace, role and pod. */
export function sel(...extra: string[]): string {
  return selectorFor(['namespace', 'role', 'pod'], ...extra);
}

/** The range of every rate: Grafana's, at least four scrape intervals. */
export const RATE = '[$__rate_interval]';

/** The histogram quantile `q` of `metric` (its `_bucket` series) summed by `by` and `le`. */
export function quantile(q: number, metric: string, selector: string, by: readonly string[] = []): string {
  return `histogram_quantile(${q}, sum by (${[...by, 'le'].join(', ')}) (rate(${metric}_bucket${selector}${RATE})))`;
}

const FILTER_DESCRIPTIONS: Record<Filter, string> = {
  namespace: 'Kubernetes namespace of the Tally installation (local runs: "local").',
  role: 'Tally role a process runs (gateway, ingest, query, persister, counter, aggregator, alerter; "all" when one process runs them all).',
  pod: 'One process: a pod in Kubernetes, host:port locally.',
};

function filterVariable(filter: Filter, narrowedBy: readonly Filter[]): QueryVariableBuilder {
  return new QueryVariableBuilder(filter)
    .label(filter[0]!.toUpperCase() + filter.slice(1))
    .description(FILTER_DESCRIPTIONS[filter])
    .datasource(DATASOURCE)
    .query(`label_values(up${selectorFor(narrowedBy)}, ${filter})`)
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.*');
}

export interface DashboardOptions {
  uid: string;
  title: string;
  description: string;
  filters: readonly Filter[];
  /** Default time range, e.g. `now-3h`. */
  from: string;
}

/** A dashboard with Tally's tags, links to the other Tally dashboards and the filter variables. */
export function tallyDashboard(options: DashboardOptions): DashboardBuilder {
  const builder = new DashboardBuilder(options.title)
    .uid(options.uid)
    .description(options.description)
    .tags(['tally'])
    .editable()
    .tooltip(DashboardCursorSync.Crosshair)
    .time({ from: options.from, to: 'now' })
    .refresh('30s')
    .timezone('browser')
    .link(
      new DashboardLinkBuilder('Tally dashboards')
        .type(DashboardLinkType.Dashboards)
        .tags(['tally'])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    )
    .withVariable(
      new DatasourceVariableBuilder('datasource')
        .label('Data source')
        .description('The Prometheus that scrapes Tally.')
        .type('prometheus'),
    );
  options.filters.forEach((filter, i) => {
    builder.withVariable(filterVariable(filter, options.filters.slice(0, i)));
  });
  return builder;
}

export interface Query {
  expr: string;
  /** Legend template: `{{method}}`. */
  legend?: string;
}

/** The panel's queries: over the time range, or only at its end (`instant`, for a stat). */
function queries(list: readonly Query[], instant = false): DataqueryBuilder[] {
  return list.map((q, i) => {
    const builder = new DataqueryBuilder()
      .expr(q.expr)
      .refId(String.fromCharCode(65 + i))
      .datasource(DATASOURCE);
    if (instant) builder.instant();
    if (q.legend !== undefined) builder.legendFormat(q.legend);
    return builder;
  });
}

/** Threshold steps: the colour below the first value, then from each value on. */
function thresholds(steps: Threshold[]): ThresholdsConfigBuilder {
  return new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps(steps);
}

/**
 * A query of Grafana's PostgreSQL data source, as its query editor's code mode saves it: the SQL,
 * with Grafana's macros (`$__timeFilter(hour)`) and variables (`$type`), and how Grafana reads the
 * rows: `time_series` (a `time` column, a `metric` column naming the series, value columns; sorted
 * by time) or `table` (the rows as they are).
 */
export interface SqlQuery {
  rawSql: string;
  format: 'time_series' | 'table';
}

/** The target a panel stores for a SQL query; the SDK has no builder for this data source. */
class SqlQueryBuilder implements cog.Builder<cog.Dataquery> {
  readonly #query: SqlQuery;
  readonly #refId: string;
  constructor(query: SqlQuery, refId: string) {
    this.#query = query;
    this.#refId = refId;
  }
  build(): cog.Dataquery {
    return {
      refId: this.#refId,
      datasource: POSTGRES,
      editorMode: 'code',
      format: this.#query.format,
      rawQuery: true,
      rawSql: this.#query.rawSql,
      _implementsDataqueryVariant: () => {},
    } as cog.Dataquery;
  }
}

/** A panel's queries: PromQL to the Prometheus data source, or SQL to the PostgreSQL one. */
export type PanelQueries =
  | { queries: readonly Query[]; sql?: never }
  | { sql: readonly SqlQuery[]; queries?: never };

/** The data source and targets of a panel's queries (PromQL only at the range's end when `instant`). */
function targetsOf(
  q: PanelQueries,
  instant = false,
): { datasource: DataSourceRef; targets: cog.Builder<cog.Dataquery>[] } {
  if (q.sql)
    return {
      datasource: POSTGRES,
      targets: q.sql.map((query, i) => new SqlQueryBuilder(query, String.fromCharCode(65 + i))),
    };
  return { datasource: DATASOURCE, targets: queries(q.queries, instant) };
}

export type PanelOptions = PanelCommon & PanelQueries;

export interface PanelCommon {
  title: string;
  /** What the panel shows and how to read it, for someone new to Tally. */
  description: string;
  /** A Grafana unit id: `s`, `bytes`, `reqps`, `percentunit`, … */
  unit: string;
  /** Grid width (of 24) and height. */
  width?: number;
  height?: number;
  min?: number;
  decimals?: number;
  /** Lines drawn on a time series, or the colours of a stat, as [value, colour] from low to high. */
  steps?: Threshold[];
}

/** A time series panel. */
export function timeSeries(o: PanelOptions): timeseries.PanelBuilder {
  const { datasource, targets } = targetsOf(o);
  const panel = new timeseries.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(datasource)
    .unit(o.unit)
    .span(o.width ?? 12)
    .height(o.height ?? 8)
    .lineWidth(1)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.List)
        .placement(common.LegendPlacement.Bottom),
    )
    .tooltip(
      new common.VizTooltipOptionsBuilder()
        .mode(common.TooltipDisplayMode.Multi)
        .sort(common.SortOrder.Descending),
    )
    .targets(targets);
  if (o.min !== undefined) panel.min(o.min);
  if (o.decimals !== undefined) panel.decimals(o.decimals);
  if (o.steps) {
    panel
      .thresholds(thresholds(o.steps))
      .thresholdsStyle(
        new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Dashed),
      );
  }
  return panel;
}

/** A stat panel showing each series' value at the end of the time range. */
export function statPanel(o: PanelOptions): stat.PanelBuilder {
  const { datasource, targets } = targetsOf(o, true);
  const panel = new stat.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(datasource)
    .unit(o.unit)
    .span(o.width ?? 6)
    .height(o.height ?? 6)
    .graphMode(common.BigValueGraphMode.None)
    .colorMode(common.BigValueColorMode.Value)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .targets(targets);
  if (o.min !== undefined) panel.min(o.min);
  if (o.decimals !== undefined) panel.decimals(o.decimals);
  if (o.steps) panel.thresholds(thresholds(o.steps));
  return panel;
}

/** A table panel showing the rows of its queries as they are (sortable by clicking a header). */
export function tablePanel(o: PanelOptions): table.PanelBuilder {
  const { datasource, targets } = targetsOf(o);
  const panel = new table.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(datasource)
    .unit(o.unit)
    .span(o.width ?? 12)
    .height(o.height ?? 10)
    .showHeader(true)
    .cellHeight(common.TableCellHeight.Sm)
    .targets(targets);
  if (o.decimals !== undefined) panel.decimals(o.decimals);
  return panel;
}

/** The built dashboard, with panel ids numbered in order (Grafana needs them unique). */
export function build(builder: DashboardBuilder): Dashboard {
  const dashboard = builder.build();
  let id = 0;
  for (const panel of dashboard.panels ?? []) {
    panel.id = ++id;
    if ('panels' in panel) for (const inner of panel.panels) inner.id = ++id;
  }
  return dashboard;
}
