/** The *Tally overview* dashboard: traffic, errors, latency, consumers and dead letters. */
import { type Dashboard, RowBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import {
  COUNTER_FRESHNESS_SECONDS,
  INGEST_LATENCY_SECONDS,
  INGEST_SERVICE,
  INGEST_UNARY_METHODS,
  SUMMARY_FRESHNESS_SECONDS,
  seconds,
} from '../slo.ts';
import { build, quantile, RATE, sel, statPanel, tallyDashboard, timeSeries } from './panels.ts';

const ingestUnary = sel(`service="${INGEST_SERVICE}"`, `method=~"${INGEST_UNARY_METHODS.join('|')}"`);

export function overviewDashboard(): Dashboard {
  const dashboard = tallyDashboard({
    uid: 'tally-overview',
    title: 'Tally overview',
    description:
      'Is Tally taking events in, answering without errors and quickly, and are the sinks keeping up? ' +
      'Filter by namespace, role and process (pod) at the top.',
    filters: ['namespace', 'role', 'pod'],
    from: 'now-3h',
  })
    .withRow(new RowBuilder('Traffic'))
    .withPanel(
      timeSeries({
        title: 'Events accepted per second, by gRPC method',
        description:
          'Events that ingest accepted, i.e. that the event log (Kafka) acknowledged, per second. REST ' +
          'requests count here too: the gateway forwards POST /v1/events to Publish and POST ' +
          '/v1/events:batch to PublishBatch. Refused events (invalid, too large) are not counted.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (method) (rate(tally_ingest_events_total${sel()}${RATE}))`,
            legend: '{{method}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'REST requests per second, by route and method',
        description:
          "Requests the gateway answered, per route template (never a raw path) and HTTP method, whatever the outcome. 'dashboard' is the live dashboard's pages, 'unmatched' a request no route took.",
        unit: 'reqps',
        min: 0,
        queries: [
          {
            expr: `sum by (route, method) (rate(tally_http_requests_total${sel()}${RATE}))`,
            legend: '{{method}} {{route}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'gRPC calls per second, by method',
        description:
          'Calls that ingest and query answered, per method, whatever the outcome. Calls from the gateway ' +
          'count here as well as those of gRPC clients. A PublishStream call carries many events.',
        unit: 'reqps',
        min: 0,
        queries: [
          {
            expr: `sum by (service, method) (rate(tally_grpc_requests_total${sel()}${RATE}))`,
            legend: '{{method}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Processes up, by role',
        description:
          "Processes Prometheus scraped successfully, per role (its 'up' metric): a drop means a process " +
          'is down, stuck or unreachable.',
        unit: 'short',
        min: 0,
        decimals: 0,
        queries: [{ expr: `sum by (role) (up${sel()})`, legend: '{{role}}' }],
      }),
    )
    .withRow(new RowBuilder('Errors'))
    .withPanel(
      timeSeries({
        title: 'REST errors per second, by status code',
        description:
          "Answers that were not 2xx or 3xx. 4xx are the client's mistakes (400 invalid event, 413 too " +
          "large, 429 rate limited, 499 client gone before the answer); 5xx are Tally's (503: Kafka did not " +
          'acknowledge in time, or the process is draining). Empty while there are none.',
        unit: 'reqps',
        min: 0,
        queries: [
          {
            expr: `sum by (code) (rate(tally_http_requests_total${sel('code!~"[23].."')}${RATE}))`,
            legend: '{{code}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'gRPC errors per second, by method and code',
        description:
          "Calls that did not end OK. INVALID_ARGUMENT and RESOURCE_EXHAUSTED are the caller's mistakes; " +
          "UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN and DATA_LOSS are Tally's and spend the " +
          'availability error budget (see the SLOs dashboard). Empty while there are none.',
        unit: 'reqps',
        min: 0,
        queries: [
          {
            expr: `sum by (method, code) (rate(tally_grpc_requests_total${sel('code!="OK"')}${RATE}))`,
            legend: '{{method}} {{code}}',
          },
        ],
      }),
    )
    .withRow(new RowBuilder('Latency'))
    .withPanel(
      timeSeries({
        title: 'Ingest latency (Publish, PublishBatch): p50, p95, p99',
        description:
          'Time from an ingest call to its answer, which comes only after Kafka acknowledged the events. ' +
          `p99 is the time 99% of calls stay under; the dashed line is the ${seconds(INGEST_LATENCY_SECONDS)} ` +
          'that 99% of calls must stay under (the latency SLO). PublishStream is left out: it lasts as ' +
          'long as its client streams.',
        unit: 's',
        min: 0,
        steps: [
          { value: null, color: 'green' },
          { value: INGEST_LATENCY_SECONDS, color: 'red' },
        ],
        queries: [0.5, 0.95, 0.99].map((q) => ({
          expr: quantile(q, 'tally_grpc_request_duration_seconds', ingestUnary),
          legend: `p${q * 100}`,
        })),
      }),
    )
    .withPanel(
      timeSeries({
        title: 'REST latency p99, by route',
        description:
          'Time from a request to the end of its answer, for 99% of requests, per route. It includes the ' +
          'call the gateway makes to ingest or query. A WebSocket (/v1/stream) counts its upgrade only.',
        unit: 's',
        min: 0,
        queries: [
          {
            expr: quantile(0.99, 'tally_http_request_duration_seconds', sel(), ['route']),
            legend: '{{route}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'gRPC latency p99, by method',
        description:
          'Time from a call to its answer, for 99% of calls, per method of ingest and query. A ' +
          'PublishStream call is timed from its start to its end, however long its client streams.',
        unit: 's',
        min: 0,
        width: 24,
        queries: [
          {
            expr: quantile(0.99, 'tally_grpc_request_duration_seconds', sel(), ['method']),
            legend: '{{method}}',
          },
        ],
      }),
    )
    .withRow(new RowBuilder('Consumers and sinks'))
    .withPanel(
      timeSeries({
        title: 'Consumer lag, by group and topic',
        description:
          'Records that each consumer group has not committed yet on the topic it reads, all partitions ' +
          'together: how far the persister (group_persistence, on the events topic), counter ' +
          '(group_realtimecounter), aggregator (group_aggregation) and alerter (group_alerting, the ' +
          'last three on the accepted topic, events.accepted by default) are behind. The counter, the ' +
          'aggregator and the alerter get only what the persister forwarded: while the persister lags, ' +
          'their sinks fall behind with it. Near zero ' +
          'and flat is healthy; steady growth means a sink cannot keep up or is stuck. Every process ' +
          'of a group reports the whole group, hence max.',
        unit: 'short',
        min: 0,
        queries: [
          {
            expr: `sum by (group, topic) (max by (group, topic, partition) (tally_consumer_lag_messages${sel()}))`,
            legend: '{{group}} ({{topic}})',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Time until visible (end-to-end latency), by sink: p50 and p99',
        description:
          "How long after ingest wrote an event to the log it became readable in each sink: 'counter' is " +
          `the live counters in Redis (objective: p99 under ${seconds(COUNTER_FRESHNESS_SECONDS)}), ` +
          `'aggregator' the hourly summaries (p99 under ${seconds(SUMMARY_FRESHNESS_SECONDS)}), 'persister' ` +
          'the raw event table. A consumer catching up on old records reports their full age.',
        unit: 's',
        min: 0,
        queries: [0.5, 0.99].map((q) => ({
          expr: quantile(q, 'tally_sink_visible_latency_seconds', sel(), ['sink']),
          legend: `{{sink}} p${q * 100}`,
        })),
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Events held by the sinks per second',
        description:
          'Events each sink wrote (or already held) per second. In a steady state each sink follows the ' +
          'accepted events; a redelivered event counts again here, but the sink applies it once.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (sink) (rate(tally_sink_events_total${sel()}${RATE}))`,
            legend: '{{sink}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Notifications raised per second',
        description:
          'Notifications the alert rules raised (docs/alerts.md): each kept once in the notification ' +
          'store and published to the notifications topic, one record per recipient. A redelivered ' +
          'batch answers its crossings again under the same ids, which are not counted twice. It moves ' +
          "only when a rule's threshold is crossed: flat at zero is normal between milestones, while " +
          "the alerter's lag (above) says whether it keeps up.",
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum(rate(tally_notifications_total${sel()}${RATE}))`,
            legend: 'notifications',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Alert evaluation: late events and retried evaluations per second',
        description:
          'Threshold and spike rules (docs/alerts.md). Late: events that came more than ' +
          "TALLY_ALERT_LATENESS_MS behind their series' latest event, left out of its windows and " +
          'baseline — zero when the alerter keeps up; steady while it catches up on a backlog ' +
          '(raise the bound for a replay). Retried: evaluations not committed because another batch ' +
          'changed the series since it was read, then read and evaluated again — a few on hot ' +
          'targets with several alerter replicas is normal.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum(rate(tally_alert_late_events_total${sel()}${RATE}))`,
            legend: 'late events',
          },
          {
            expr: `sum(rate(tally_alert_evaluation_conflicts_total${sel()}${RATE}))`,
            legend: 'evaluations retried',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Routed events per second, by destination; transform failures',
        description:
          "Records the router wrote to each destination's topic (docs/delivery.md): the accepted events " +
          "matching the destination's filter, transformed. A batch written again after a redelivery counts " +
          'again (the senders deliver it once). Transform failures: events a destination wanted whose ' +
          'transformed body would pass its bound, which that destination never gets (logged with their ' +
          'ids) — fix the transform. Empty while no destination is enabled.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (destination) (rate(tally_routed_events_total${sel()}${RATE}))`,
            legend: '{{destination}}',
          },
          {
            expr: `sum by (destination) (rate(tally_route_transform_failures_total${sel()}${RATE}))`,
            legend: '{{destination}} transform failures',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Projected events per second, by kind and outcome; refused transitions',
        description:
          'Events the projector folded into live entities (docs/entities.md): applied (an entity changed), ' +
          'stale (older than the event that set its state: only its newer attributes kept) and duplicate ' +
          '(seen before: nothing changed). Refused: events whose transition the projection does not allow ' +
          "(or without the entity's id), sent to the dead-letter topic with the reason — a client sending " +
          'events out of lifecycle, or a projection too strict. Empty while no event of a projection comes.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (kind, outcome) (rate(tally_projected_events_total${sel()}${RATE}))`,
            legend: '{{kind}} {{outcome}}',
          },
          {
            expr: `sum by (kind) (rate(tally_projection_refused_total${sel()}${RATE}))`,
            legend: '{{kind}} refused',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Duplicate events per second, by kind',
        description:
          'Events the persister did not accept because their id was stored before, so that no sink ' +
          "applied them. 'retry': the same event sent again (a client retrying after a timeout or a " +
          "lost answer; expected now and then). 'conflict': an id reused for a different event, a " +
          'client error: the event stored first is kept, the later one is dropped, and the persister ' +
          'logs it with the fields that differ (docs/runbook.md, TallyEventIdConflicts). Empty while there are none.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (kind) (rate(tally_duplicate_events_total${sel()}${RATE}))`,
            legend: '{{kind}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Dead-lettered records per second, by group and reason',
        description:
          "Records a consumer could not decode ('undecodable') or that broke the event rules ('invalid'), " +
          'sent to the dead-letter topic with the reason. They reach no sink until replayed (tally ' +
          'dlq-replay). Empty, as it should be, while there are none.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (group, reason) (rate(tally_dlq_records_total${sel()}${RATE}))`,
            legend: '{{group}} {{reason}}',
          },
        ],
      }),
    )
    .withPanel(
      statPanel({
        title: 'Dead-lettered records, last 24 hours',
        description:
          'Records sent to the dead-letter topic over the last day, all groups. Anything above zero ' +
          'deserves a look (docs/runbook.md, TallyDeadLetters). Shows "No data" when there were none.',
        unit: 'short',
        decimals: 0,
        width: 12,
        height: 8,
        steps: [
          { value: null, color: 'green' },
          { value: 1, color: 'red' },
        ],
        queries: [{ expr: `sum(increase(tally_dlq_records_total${sel()}[1d]))` }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Failed consumer batches per second, by group',
        description:
          'Batches whose sink (PostgreSQL, Redis) or dead-letter topic failed: nothing was committed and ' +
          'the batch will be delivered again. Occasional failures during a backend restart are expected; ' +
          'a steady rate means a backend is down. Empty while there are none.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (group) (rate(tally_consumer_batch_failures_total${sel()}${RATE}))`,
            legend: '{{group}}',
          },
        ],
      }),
    )
    .withRow(new RowBuilder('Delivery'))
    .withPanel(
      timeSeries({
        title: 'Deliveries per second, by destination',
        description:
          'Delivered: a 2xx from the webhook, or a Kafka destination’s append acknowledged — at once ' +
          'or after parking. Failed attempts by outcome: retry (timeouts, connection errors, 5xx, 429), ' +
          'dead (other 4xx) and gone (410, which disables the destination). docs/delivery.md.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (destination) (rate(tally_delivery_delivered_total${sel()}${RATE}))`,
            legend: '{{destination}} delivered',
          },
          {
            expr: `sum by (destination, outcome) (rate(tally_delivery_failed_attempts_total${sel()}${RATE}))`,
            legend: '{{destination}} failed ({{outcome}})',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Retries, dead letters and router duplicates per second, by destination',
        description:
          'Retried: failed attempts given another on the destination’s schedule. Dead-lettered: refused ' +
          'by the receiver or out of attempts, kept with every attempt in PostgreSQL. Duplicates: records ' +
          'the router wrote twice, skipped by their source position. Invalid: records no router wrote.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (destination) (rate(tally_delivery_retries_total${sel()}${RATE}))`,
            legend: '{{destination}} retried',
          },
          {
            expr: `sum by (destination) (rate(tally_delivery_dead_letters_total${sel()}${RATE}))`,
            legend: '{{destination}} dead-lettered',
          },
          {
            expr: `sum by (destination) (rate(tally_delivery_duplicates_total${sel()}${RATE}))`,
            legend: '{{destination}} duplicates',
          },
          {
            expr: `sum(rate(tally_delivery_invalid_records_total${sel()}${RATE}))`,
            legend: 'invalid records',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Delivery attempt latency p99, by destination',
        description:
          'One attempt, from the call to the end of the response or the failure (timeouts included).',
        unit: 's',
        min: 0,
        queries: [
          {
            expr: quantile(0.99, 'tally_delivery_attempt_duration_seconds', sel(), ['destination']),
            legend: '{{destination}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Parked deliveries and circuit breakers, by destination',
        description:
          'Parked: deliveries waiting in PostgreSQL (due retries, records behind their user, a destination ' +
          'whose breaker is open), sampled; it grows while a destination fails and drains when it ' +
          'recovers. Breaker: 0 closed, 1 half-open, 2 open, as each sender last saw it.',
        unit: 'short',
        min: 0,
        queries: [
          {
            expr: `max by (destination) (tally_delivery_parked${sel()})`,
            legend: '{{destination}} parked',
          },
          {
            expr: `max by (destination) (tally_delivery_breaker_state${sel()})`,
            legend: '{{destination}} breaker',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Time waiting on destination limits, by destination and limit',
        description:
          'Seconds per second that starts spent waiting for their destination’s concurrency and ' +
          'rate_limit_per_second, shared by every sender (about how many starts wait at once); limit ' +
          'is the one that held them last: local (this sender’s slots), concurrency (every sender’s), ' +
          'rate. Limiter errors: the shared limiter (Redis) failed and senders paced by their own ' +
          'limits. docs/delivery.md, "Shared limits".',
        unit: 'short',
        min: 0,
        queries: [
          {
            expr: `sum by (destination, limit) (rate(tally_delivery_limit_wait_seconds_sum${sel()}${RATE}))`,
            legend: '{{destination}} {{limit}}',
          },
          {
            expr: `sum(rate(tally_delivery_limiter_errors_total${sel()}${RATE}))`,
            legend: 'limiter errors',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Records parked by their batch per second, by destination and reason',
        description:
          'Why a batch parked a record instead of delivering it at once: retry, user (behind its ' +
          'user’s parked record), breaker (open), slow (the batch’s time was up, or the destination ' +
          'parks until its backlog drains), dead, disabled.',
        unit: 'cps',
        min: 0,
        queries: [
          {
            expr: `sum by (destination, reason) (rate(tally_delivery_parked_total${sel()}${RATE}))`,
            legend: '{{destination}} {{reason}}',
          },
        ],
      }),
    );
  return build(dashboard);
}
