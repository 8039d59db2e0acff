/** The *Tally SLOs* dashboard: each objective's compliance, error budget and burn rates. */
import { type Dashboard, RowBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import { BURN_RATE_ALERTS, budgetRatio, percent, RECORDED, SLOS, type Slo, WINDOW_NAMES } from '../slo.ts';
import { build, statPanel, tallyDashboard, timeSeries } from './panels.ts';

function sloSelector(slo: Slo): string {
  return `{slo="${slo.id}", namespace=~"$namespace"}`;
}

function alerting(slo: Slo): string {
  return slo.alerting === 'burn-rate'
    ? 'Burn-rate alerts page when the 1-hour and 6-hour burn rates pass 14.4 and 6, and warn when the ' +
        '3-day one passes 1 (each confirmed by a shorter window).'
    : 'Its alert, TallySinkLatencyHigh, fires when the p99 over 5 minutes stays above the bound for 10 minutes.';
}

function sloPanels(slo: Slo, builder: ReturnType<typeof tallyDashboard>): void {
  const budget = budgetRatio(slo);
  const s = sloSelector(slo);
  builder
    .withRow(new RowBuilder(`${slo.title}: ${percent(slo.objective)} over 30 days`))
    .withPanel(
      statPanel({
        title: `${slo.title}: compliance, last 30 days`,
        description:
          `Share of good events over the last 30 days; the objective is ${percent(slo.objective)}. ` +
          `${slo.sli} Needs 30 days of Prometheus history to cover the whole period; until then it covers ` +
          'what there is.',
        unit: 'percentunit',
        decimals: 3,
        steps: [
          { value: null, color: 'red' },
          { value: slo.objective, color: 'green' },
        ],
        queries: [{ expr: `1 - ${RECORDED.errorRatio('30d')}${s}`, legend: '{{namespace}}' }],
      }),
    )
    .withPanel(
      statPanel({
        title: `${slo.title}: error budget left, last 30 days`,
        description:
          `The objective allows ${percent(budget)} of bad events over 30 days: that is the error budget. ` +
          'This is the share of it not spent over the last 30 days: 100% with no bad events, 0% when the ' +
          'objective is just met, negative when it is missed.',
        unit: 'percentunit',
        decimals: 1,
        steps: [
          { value: null, color: 'red' },
          { value: 0, color: 'orange' },
          { value: 0.25, color: 'green' },
        ],
        queries: [{ expr: `1 - ${RECORDED.errorRatio('30d')}${s} / ${budget}`, legend: '{{namespace}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: `${slo.title}: burn rates over 1 hour, 6 hours and 3 days`,
        description:
          'How fast the error budget is being spent: the share of bad events over the window divided by ' +
          `the ${percent(budget)} allowed. 1 spends exactly the budget in 30 days; 14.4 spends 2% of it in ` +
          `an hour (all of it in about 2 days). ${alerting(slo)}`,
        unit: 'none',
        min: 0,
        decimals: 2,
        // A dashed line at each alert's burn rate: yellow for the warning, orange and red for the pages.
        steps: [
          { value: null, color: 'green' },
          ...BURN_RATE_ALERTS.map((b) => b.factor)
            .sort((x, y) => x - y)
            .map((factor, i) => ({ value: factor, color: ['yellow', 'orange', 'red'][i] ?? 'red' })),
        ],
        queries: (['1h', '6h', '3d'] as const).map((w) => ({
          expr: `${RECORDED.errorRatio(w)}${s} / ${budget}`,
          legend: `{{namespace}} ${WINDOW_NAMES[w]}`,
        })),
      }),
    )
    .withPanel(
      timeSeries({
        title: `${slo.title}: bad events over 5 minutes and 1 hour`,
        description:
          `Share of bad events over the last 5 minutes and the last hour. ${slo.sli} The dashed line is ` +
          `the ${percent(budget)} the objective allows on average.`,
        unit: 'percentunit',
        min: 0,
        width: 24,
        steps: [
          { value: null, color: 'green' },
          { value: budget, color: 'red' },
        ],
        queries: (['5m', '1h'] as const).map((w) => ({
          expr: `${RECORDED.errorRatio(w)}${s}`,
          legend: `{{namespace}} ${WINDOW_NAMES[w]}`,
        })),
      }),
    );
}

export function slosDashboard(): Dashboard {
  const builder = tallyDashboard({
    uid: 'tally-slos',
    title: 'Tally SLOs',
    description:
      "Tally's service level objectives (docs/slo.md): compliance over 30 days, the error budget left " +
      'and how fast it is being spent. The objectives are measured per namespace (one Tally installation), ' +
      'from recording rules, so only the namespace filter applies.',
    filters: ['namespace'],
    from: 'now-7d',
  }).withPanel(
    timeSeries({
      title: 'Tally alerts firing',
      description:
        'Alerts of the Tally rules firing now, by name and severity (critical pages, warning opens a ' +
        'ticket). Each has a section in docs/runbook.md. Empty, as it should be, while none fires.',
      unit: 'short',
      min: 0,
      decimals: 0,
      width: 24,
      height: 6,
      queries: [
        {
          expr: 'sum by (alertname, severity) (ALERTS{alertstate="firing", alertname=~"Tally.+", namespace=~"$namespace"})',
          legend: '{{alertname}} ({{severity}})',
        },
      ],
    }),
  );
  for (const slo of SLOS) sloPanels(slo, builder);
  builder.withPanel(
    timeSeries({
      title: 'Refused credentials',
      description:
        'Requests refused by access control (docs/security.md), per second, by surface (rest, grpc, ' +
        'websocket, metrics) and reason (MISSING_CREDENTIAL, INVALID_CREDENTIAL, INVALID_TOKEN, ' +
        "INSUFFICIENT_SCOPE, …). Refusals spend no error budget (they are the caller's fault), but a " +
        'rise is a misconfigured client, a revoked key still deployed, or someone guessing.',
      unit: 'reqps',
      min: 0,
      width: 24,
      height: 8,
      queries: [
        {
          expr: 'sum by (surface, reason) (rate(tally_auth_failures_total{namespace=~"$namespace"}[5m]))',
          legend: '{{surface}} {{reason}}',
        },
      ],
    }),
  );
  builder.withPanel(
    timeSeries({
      title: 'Rate limited',
      description:
        'Requests refused by a rate limit or quota (HTTP 429, gRPC RESOURCE_EXHAUSTED; docs/security.md), ' +
        'per second, by limit (ingest, read, ip, monthly), and checks whose limiter backend (Redis) failed ' +
        '(admitted or refused by TALLY_RATE_LIMIT_FAILURE). Refusals spend no error budget; backend ' +
        'failures mean limits are not enforced (failing open) or everything is refused (failing closed).',
      unit: 'reqps',
      min: 0,
      width: 24,
      height: 8,
      queries: [
        {
          expr: 'sum by (limit) (rate(tally_rate_limited_total{namespace=~"$namespace"}[5m]))',
          legend: '{{limit}}',
        },
        {
          expr: 'sum(rate(tally_rate_limit_backend_errors_total{namespace=~"$namespace"}[5m]))',
          legend: 'backend errors',
        },
      ],
    }),
  );
  return build(builder);
}
