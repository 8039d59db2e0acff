/**
 * Tally's Prometheus recording and alert rules, rendered to `*.rules.yml` beside this file by
 * `node observability/render.ts`. docs/slo.md explains the objectives, docs/runbook.md each alert.
 */
import {
  BURN_RATE_ALERTS,
  budgetRatio,
  COUNTER_FRESHNESS,
  COUNTER_FRESHNESS_SECONDS,
  errorRatioExpr,
  INGEST_AVAILABILITY,
  INGEST_LATENCY,
  INGEST_LATENCY_SECONDS,
  JOB,
  percent,
  RECORDED,
  SLO_WINDOWS,
  SLOS,
  type Slo,
  SUMMARY_FRESHNESS,
  SUMMARY_FRESHNESS_SECONDS,
  seconds,
  selector,
  WINDOW_NAMES,
} from '../slo.ts';
import { toYaml } from '../yaml.ts';

export interface RecordingRule {
  record: string;
  expr: string;
  labels?: Record<string, string>;
}

export interface AlertingRule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: { summary: string; description: string; runbook_url: string };
}

export type Rule = RecordingRule | AlertingRule;

export interface RuleGroup {
  name: string;
  rules: Rule[];
}

/**
 * Where the alerts' runbook lives; each alert links to its section (`#<alert name in lower case>`,
 * GitHub's anchor for a `## AlertName` heading).
 */
export const RUNBOOK_URL = 'docs/runbook.md';

export function runbookUrl(alert: string): string {
  return `${RUNBOOK_URL}#${alert.toLowerCase()}`;
}

/** Recorded: every consumer process samples its whole group's lag, so the max per partition, summed. */
export const LAG_BY_GROUP = 'namespace_group:tally_consumer_lag_messages:sum';
/** Recorded: p99 of the time until an event is readable, per sink, over 5 minutes. */
export const SINK_P99 = 'namespace_sink:tally_sink_visible_latency_seconds:p99_rate5m';

/** Consumer lag below this many records never alerts, however it moves. */
export const LAG_ALERT_MIN_RECORDS = 1000;

/** The burn-rate alert of each SLO alerted on burn rates, and what its bad events are. */
const BURN_ALERTS: Record<string, { alert: string; bad: string }> = {
  [INGEST_AVAILABILITY.id]: { alert: 'TallyIngestErrorBudgetBurn', bad: 'of ingest calls failed' },
  [INGEST_LATENCY.id]: {
    alert: 'TallyIngestLatencyBudgetBurn',
    bad: `of unary ingest calls took longer than ${seconds(INGEST_LATENCY_SECONDS)}`,
  },
};

const PERIOD_DAYS = 30;

function days(value: number): string {
  const rounded = Number(value.toFixed(1));
  return `${Number.isInteger(rounded) ? rounded : `about ${rounded}`} day${rounded === 1 ? '' : 's'}`;
}

/** The recording rules of one SLO, and its burn-rate alerts when it has them. */
function sloGroup(slo: Slo): RuleGroup {
  const labels = { slo: slo.id };
  const rules: Rule[] = [
    { record: RECORDED.requestsRate5m, expr: slo.total('5m'), labels },
    { record: RECORDED.errorsRate5m, expr: slo.bad('5m'), labels },
    ...SLO_WINDOWS.map((window) => ({
      record: RECORDED.errorRatio(window),
      expr: errorRatioExpr(slo, window),
      labels,
    })),
  ];
  const burn = BURN_ALERTS[slo.id];
  if (slo.alerting === 'burn-rate' && burn) {
    const budget = budgetRatio(slo);
    for (const b of BURN_RATE_ALERTS) {
      const long = WINDOW_NAMES[b.longWindow];
      const short = WINDOW_NAMES[b.shortWindow];
      const threshold = `(${b.factor} * ${budget})`;
      rules.push({
        alert: burn.alert,
        expr:
          `${RECORDED.errorRatio(b.longWindow)}{slo="${slo.id}"} > ${threshold}\n` +
          `and\n${RECORDED.errorRatio(b.shortWindow)}{slo="${slo.id}"} > ${threshold}`,
        for: '2m',
        labels: { severity: b.severity, window: b.longWindow },
        annotations: {
          summary: `${slo.title}: error budget burn rate above ${b.factor} over ${long} in {{ $labels.namespace }}`,
          description:
            `{{ $value | humanizePercentage }} ${burn.bad} in namespace {{ $labels.namespace }} over the last ` +
            `${long} (and over the last ${short} as well), more than ${b.factor === 1 ? '' : `${b.factor}× `}the ${percent(budget)} that ` +
            `the ${percent(slo.objective)} objective allows. At this rate ${percent(b.budgetSpent)} of the ` +
            `${PERIOD_DAYS}-day error budget goes in ${long}, all of it in ${days(PERIOD_DAYS / b.factor)}.`,
          runbook_url: runbookUrl(burn.alert),
        },
      });
    }
  }
  return { name: `tally-slo-${slo.id}`, rules };
}

/** The SLO rule groups: `tally-slos.rules.yml`. */
export function sloRuleGroups(): RuleGroup[] {
  return SLOS.map(sloGroup);
}

function sinkLatencyAlert(slo: Slo, sink: string, boundSeconds: number, where: string): AlertingRule {
  return {
    alert: 'TallySinkLatencyHigh',
    expr: `${SINK_P99}{sink="${sink}"} > ${boundSeconds}`,
    for: '10m',
    labels: { severity: 'warning', slo: slo.id },
    annotations: {
      summary: `Events take too long to show ${where} in {{ $labels.namespace }}`,
      description:
        `99% of the events the ${sink} sink held in namespace {{ $labels.namespace }} over the last ` +
        `5 minutes became readable ${where} within {{ $value | humanizeDuration }} of ingest's write ` +
        `to the event log; the objective is ${seconds(boundSeconds)}. It has been above for 10 minutes.`,
      runbook_url: runbookUrl('TallySinkLatencyHigh'),
    },
  };
}

/** The other rules: `tally.rules.yml`. */
export function tallyRuleGroups(): RuleGroup[] {
  const up = `up${selector()}`;
  const dlq = `tally_dlq_records_total${selector()}`;
  const conflicts = `tally_duplicate_events_total${selector('kind="conflict"')}`;
  return [
    {
      name: 'tally-recording',
      rules: [
        {
          record: LAG_BY_GROUP,
          expr:
            'sum by (namespace, group) (\n' +
            `  max by (namespace, group, topic, partition) (tally_consumer_lag_messages${selector()})\n)`,
        },
        {
          record: SINK_P99,
          expr:
            'histogram_quantile(\n  0.99,\n' +
            `  sum by (namespace, sink, le) (rate(tally_sink_visible_latency_seconds_bucket${selector()}[5m]))\n)`,
        },
      ],
    },
    {
      name: 'tally-alerts',
      rules: [
        {
          alert: 'TallyConsumerLagGrowing',
          expr: `${LAG_BY_GROUP} > ${LAG_ALERT_MIN_RECORDS}\nand\nderiv(${LAG_BY_GROUP}[10m]) > 0`,
          for: '10m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'Consumer group {{ $labels.group }} is falling behind in {{ $labels.namespace }}',
            description:
              'Group {{ $labels.group }} in namespace {{ $labels.namespace }} has {{ $value | humanize }} ' +
              'records of the topic it reads not committed yet, and that number has kept growing for ' +
              '10 minutes: its sink is slower than the events arriving, or stuck.',
            runbook_url: runbookUrl('TallyConsumerLagGrowing'),
          },
        },
        sinkLatencyAlert(
          COUNTER_FRESHNESS,
          'counter',
          COUNTER_FRESHNESS_SECONDS,
          'in the live counters (Redis)',
        ),
        sinkLatencyAlert(
          SUMMARY_FRESHNESS,
          'aggregator',
          SUMMARY_FRESHNESS_SECONDS,
          'in the hourly summaries (PostgreSQL)',
        ),
        {
          alert: 'TallyDeadLetters',
          // A counter series born inside the window has no earlier sample for increase() to
          // start from, hence the second branch: series that did not exist 10 minutes ago.
          expr:
            'sum by (namespace, group, reason) (\n' +
            `  increase(${dlq}[10m]) > 0\n  or\n  (${dlq} unless ${dlq} offset 10m)\n) > 0`,
          labels: { severity: 'warning' },
          annotations: {
            summary: 'Records dead-lettered by {{ $labels.group }} in {{ $labels.namespace }}',
            description:
              'Consumer group {{ $labels.group }} in namespace {{ $labels.namespace }} has sent records to ' +
              'the dead-letter topic in the last 10 minutes: {{ printf "%.0f" $value }} (reason: ' +
              '{{ $labels.reason }}). They are in no sink until replayed.',
            runbook_url: runbookUrl('TallyDeadLetters'),
          },
        },
        {
          alert: 'TallyEventIdConflicts',
          // As for the dead letters: the persister's series of a kind is born with its first event
          // of that kind, which increase() alone would not see.
          expr:
            'sum by (namespace) (\n' +
            `  increase(${conflicts}[10m]) > 0\n  or\n  (${conflicts} unless ${conflicts} offset 10m)\n) > 0`,
          labels: { severity: 'warning' },
          annotations: {
            summary: 'Event ids reused for different events in {{ $labels.namespace }}',
            description:
              'The persister in namespace {{ $labels.namespace }} has refused events in the last 10 ' +
              'minutes whose id was stored before for a different event (another type, target, user, ' +
              'value or attributes): {{ printf "%.0f" $value }}. A client reuses ids; the event stored ' +
              'first is kept, these are in no sink.',
            runbook_url: runbookUrl('TallyEventIdConflicts'),
          },
        },
        {
          alert: 'TallyTargetDown',
          expr: `${up} == 0`,
          for: '2m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'Tally process {{ $labels.pod }} ({{ $labels.role }}) cannot be scraped',
            description:
              'Prometheus has failed to scrape {{ $labels.instance }} (role {{ $labels.role }}, pod ' +
              '{{ $labels.pod }}, namespace {{ $labels.namespace }}) for 2 minutes (up = {{ $value }}): ' +
              'the process is down, stuck or unreachable.',
            runbook_url: runbookUrl('TallyTargetDown'),
          },
        },
        {
          alert: 'TallyRoleDown',
          expr:
            `count by (namespace, job, role) (${up} == 0)\n==\n` + `count by (namespace, job, role) (${up})`,
          for: '1m',
          labels: { severity: 'critical' },
          annotations: {
            summary: 'Every process of role {{ $labels.role }} is down in {{ $labels.namespace }}',
            description:
              'Every scraped process of role {{ $labels.role }} in namespace {{ $labels.namespace }} ' +
              '(job {{ $labels.job }}; {{ $value }} in all) has failed its scrapes for a minute: what ' +
              'the role does has stopped.',
            runbook_url: runbookUrl('TallyRoleDown'),
          },
        },
      ],
    },
  ];
}

/** Every rule file, by name (relative to this directory), with its groups. */
export const RULE_FILES: Record<string, () => RuleGroup[]> = {
  'tally-slos.rules.yml': sloRuleGroups,
  'tally.rules.yml': tallyRuleGroups,
};

/** A rule file's text. */
export function renderRuleFile(groups: RuleGroup[]): string {
  const header =
    '# Generated by `node observability/render.ts` from observability/prometheus/rules.ts and\n' +
    `# observability/slo.ts: edit those, not this file. Tally's targets have job="${JOB}" (docs/slo.md).\n`;
  return header + toYaml({ groups: groups.map((g) => ({ name: g.name, rules: g.rules.map(ruleYaml) })) });
}

function ruleYaml(rule: Rule): Record<string, string | Record<string, string> | undefined> {
  if ('record' in rule) return { record: rule.record, expr: rule.expr, labels: rule.labels };
  return {
    alert: rule.alert,
    expr: rule.expr,
    for: rule.for,
    labels: rule.labels,
    annotations: rule.annotations,
  };
}
