/**
 * The *Tally business* dashboard: what is being counted. Events per type and the most counted
 * targets today, this month and hour by hour, from the hourly summaries in PostgreSQL
 * (`event_summary`); and, from Prometheus, the events flowing in now and how far behind the
 * counts are.
 */
import {
  type Dashboard,
  DatasourceVariableBuilder,
  QueryVariableBuilder,
  RowBuilder,
  VariableRefresh,
  VariableSort,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { COUNTER_FRESHNESS_SECONDS, SUMMARY_FRESHNESS_SECONDS, seconds } from '../slo.ts';
import {
  build,
  POSTGRES,
  POSTGRES_PLUGIN,
  quantile,
  RATE,
  selectorFor,
  statPanel,
  tablePanel,
  tallyDashboard,
  timeSeries,
} from './panels.ts';

/** Rows of each type a leaderboard shows. */
export const TOP_TARGETS = 10;

/** The summaries of the types picked in the `type` variable (a quoted list: `'like','view'`). */
const OF_TYPES = 'type IN ($type)';

/**
 * Where a period begins: the start of the current UTC day or month. Summary hours are UTC hours,
 * and so are the query service's days and months by default; `now()` alone would be truncated in
 * the session's time zone, which is the data source's, not Tally's.
 */
const since = (period: 'day' | 'month') => `date_trunc('${period}', now(), 'UTC')`;

/**
 * The types picked from: those summarized since the dashboard's time range or the current month
 * began, whichever is earlier (so that every panel's types are offered). A range scan of the
 * `event_summary_hour` index (hour, type), not a scan of every summary ever written.
 */
export const TYPES_SQL = `SELECT DISTINCT type
  FROM event_summary
 WHERE hour >= least($__timeFrom()::timestamptz, ${since('month')})
 ORDER BY type`;

/** Events per type since the start of `period`, as one point per type at that start. */
function totalSql(period: 'day' | 'month'): string {
  return `SELECT ${since(period)} AS "time", type AS metric, sum(count)::bigint AS events
  FROM event_summary
 WHERE hour >= ${since(period)} AND ${OF_TYPES}
 GROUP BY type
 ORDER BY type`;
}

/**
 * The most counted targets of each type since the start of `period`: highest first, ties by
 * target descending in code unit order, as the query service's TopTargets ranks them.
 */
function topSql(period: 'day' | 'month'): string {
  return `SELECT type, rank, target, events FROM (
  SELECT type, target, sum(count)::bigint AS events,
         row_number() OVER (PARTITION BY type ORDER BY sum(count) DESC, target COLLATE "C" DESC) AS rank
    FROM event_summary
   WHERE hour >= ${since(period)} AND ${OF_TYPES}
   GROUP BY type, target) ranked
 WHERE rank <= ${TOP_TARGETS}
 ORDER BY type, rank`;
}

/** `column` summed per summary hour and type over the dashboard's time range. */
function perHourSql(value: string, name: string): string {
  return `SELECT $__time(hour), type AS metric, ${value} AS "${name}"
  FROM event_summary
 WHERE $__timeFilter(hour) AND ${OF_TYPES}
 GROUP BY hour, type
 ORDER BY hour, type`;
}

const SUMMARIES =
  'From the hourly summaries (PostgreSQL event_summary), which the aggregator updates within ' +
  `seconds of an event (objective: 99% within ${seconds(SUMMARY_FRESHNESS_SECONDS)}).`;

export function businessDashboard(): Dashboard {
  const s = selectorFor(['namespace']);
  const dashboard = tallyDashboard({
    uid: 'tally-business',
    title: 'Tally business',
    description:
      'What Tally counts: events per type and the most counted targets today, this month and hour by ' +
      'hour, from the hourly summaries in PostgreSQL (pick its data source and the types at the top), ' +
      'and the events flowing in now, from Prometheus (pick the namespace). Days and months are UTC. ' +
      "A target's live counters are on Tally's own dashboard (/) and its page.",
    filters: ['namespace'],
    from: 'now-7d',
  })
    .refresh('1m')
    .withVariable(
      new DatasourceVariableBuilder('postgres')
        .label('PostgreSQL')
        .description(
          "Tally's PostgreSQL, through a read-only role, on a replica where there is one (docs/deploy.md, " +
            '"The business dashboard\'s PostgreSQL").',
        )
        .type(POSTGRES_PLUGIN),
    )
    .withVariable(
      new QueryVariableBuilder('type')
        .label('Event type')
        .description('Event types summarized over the time range or this month.')
        .datasource(POSTGRES)
        .query(TYPES_SQL)
        .refresh(VariableRefresh.OnTimeRangeChanged)
        .sort(VariableSort.AlphabeticalAsc)
        .multi(true)
        .includeAll(true)
        .current({ selected: true, text: ['All'], value: ['$__all'] }),
    )
    .withRow(new RowBuilder('Today and this month (UTC)'))
    .withPanel(
      statPanel({
        title: 'Events today, by type',
        description: `Events of each type since midnight UTC, all targets together. ${SUMMARIES}`,
        unit: 'short',
        decimals: 0,
        width: 12,
        sql: [{ rawSql: totalSql('day'), format: 'time_series' }],
      }),
    )
    .withPanel(
      statPanel({
        title: 'Events this month, by type',
        description: `Events of each type since the first of the month, midnight UTC, all targets together. ${SUMMARIES}`,
        unit: 'short',
        decimals: 0,
        width: 12,
        sql: [{ rawSql: totalSql('month'), format: 'time_series' }],
      }),
    )
    .withPanel(
      tablePanel({
        title: `Top ${TOP_TARGETS} targets today, by type`,
        description:
          `The ${TOP_TARGETS} targets with the most events of each type since midnight UTC (rank 1 the ` +
          'most; equal counts ranked by target, descending, as GET /v1/top ranks them). ' +
          SUMMARIES,
        unit: 'short',
        decimals: 0,
        sql: [{ rawSql: topSql('day'), format: 'table' }],
      }),
    )
    .withPanel(
      tablePanel({
        title: `Top ${TOP_TARGETS} targets this month, by type`,
        description:
          `The ${TOP_TARGETS} targets with the most events of each type since the first of the month, ` +
          'midnight UTC (rank 1 the most; equal counts ranked by target, descending). Reads every ' +
          `summary of the month, by the index on hour. ${SUMMARIES}`,
        unit: 'short',
        decimals: 0,
        sql: [{ rawSql: topSql('month'), format: 'table' }],
      }),
    )
    .withRow(new RowBuilder('Hour by hour, over the time range'))
    .withPanel(
      timeSeries({
        title: 'Events per hour, by type',
        description:
          'Events of each type per hour (UTC hours, by the time the event occurred), all targets ' +
          'together, over the time range; an hour that began before the range starts is left out. ' +
          'The current hour is still filling. ' +
          SUMMARIES,
        unit: 'short',
        min: 0,
        decimals: 0,
        width: 24,
        sql: [{ rawSql: perHourSql('sum(count)::bigint', 'events'), format: 'time_series' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Sum of event values per hour, by type',
        description:
          "The events' values (an amount, a duration, a score: whatever the sender puts in value) summed " +
          'per hour and type, all targets together; events without a value add nothing. ' +
          SUMMARIES,
        unit: 'short',
        width: 24,
        sql: [{ rawSql: perHourSql('sum(sum_value)', 'sum of values'), format: 'time_series' }],
      }),
    )
    .withRow(new RowBuilder('Live (Prometheus)'))
    .withPanel(
      statPanel({
        title: 'Events accepted per second, last 5 minutes',
        description:
          'Events Tally accepted per second over the last 5 minutes, all types (Prometheus has no ' +
          'per-type series: event types are chosen by the senders, unbounded).',
        unit: 'cps',
        decimals: 1,
        queries: [{ expr: `sum(rate(tally_ingest_events_total${s}[5m]))` }],
      }),
    )
    .withPanel(
      statPanel({
        title: 'Events accepted, last 24 hours',
        description:
          'Events Tally accepted over the last 24 hours, all types: refused events (invalid, too large, ' +
          'rate limited) are not counted.',
        unit: 'short',
        decimals: 0,
        queries: [{ expr: `sum(increase(tally_ingest_events_total${s}[1d]))` }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'How far behind the counts are (p99)',
        description:
          'How long after Tally accepted an event 99% of events were counted: "counter" for the live ' +
          `counters and leaderboards (Redis; objective ${seconds(COUNTER_FRESHNESS_SECONDS)}), ` +
          `"aggregator" for the hourly summaries the panels above read (objective ${seconds(SUMMARY_FRESHNESS_SECONDS)}).`,
        unit: 's',
        min: 0,
        queries: [
          {
            expr: quantile(
              0.99,
              'tally_sink_visible_latency_seconds',
              selectorFor(['namespace'], 'sink=~"counter|aggregator"'),
              ['sink'],
            ),
            legend: '{{sink}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Events per second: accepted, counted, summarized',
        description:
          'Events accepted by ingest, held by the live counters (counter) and by the hourly summaries ' +
          '(aggregator), per second. The three lines follow each other when the counts keep up; a ' +
          'redelivered event counts again here, but is applied once.',
        unit: 'cps',
        min: 0,
        width: 24,
        queries: [
          { expr: `sum(rate(tally_ingest_events_total${s}${RATE}))`, legend: 'accepted' },
          {
            expr: `sum by (sink) (rate(tally_sink_events_total${selectorFor(['namespace'], 'sink=~"counter|aggregator"')}${RATE}))`,
            legend: '{{sink}}',
          },
        ],
      }),
    );
  return build(dashboard);
}
