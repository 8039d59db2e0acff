/** The *Tally backends* dashboard: Kafka writes, consumer batches, Redis, PostgreSQL, Node.js. */
import { type Dashboard, RowBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import { build, quantile, RATE, sel, tallyDashboard, timeSeries } from './panels.ts';

/** p50 and p99 of a duration histogram, by `by`. */
function p50p99(metric: string, by: readonly string[], legendPrefix: string) {
  return [0.5, 0.99].map((q) => ({
    expr: quantile(q, metric, sel(), by),
    legend: `${legendPrefix}p${q * 100}`,
  }));
}

export function backendsDashboard(): Dashboard {
  const dashboard = tallyDashboard({
    uid: 'tally-backends',
    title: 'Tally backends',
    description:
      "How Tally's backends answer it: Kafka writes, consumer batches, Redis and PostgreSQL calls, and " +
      'the Node.js processes themselves (event loop, memory, CPU). With the embedded backends (npm ' +
      'start) the Redis and PostgreSQL panels stay empty and the Kafka panels measure the embedded log.',
    filters: ['namespace', 'role', 'pod'],
    from: 'now-3h',
  })
    .withRow(new RowBuilder('Kafka writes (ingest)'))
    .withPanel(
      timeSeries({
        title: 'Kafka write latency: p50, p95, p99',
        description:
          'Time of one write of gathered events to the events topic, until Kafka acknowledged it (all ' +
          'in-sync replicas). Ingest answers its callers only after this, so it is the floor of the ingest ' +
          'latency. Failed writes are included.',
        unit: 's',
        min: 0,
        queries: [0.5, 0.95, 0.99].map((q) => ({
          expr: quantile(q, 'tally_kafka_produce_duration_seconds', sel()),
          legend: `p${q * 100}`,
        })),
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Events per Kafka write: mean and p99',
        description:
          'Ingest gathers the events of concurrent calls for a few milliseconds into one write. Bigger ' +
          'writes under load are expected and cheaper; writes of 1 event under load mean little batching.',
        unit: 'short',
        min: 0,
        queries: [
          {
            expr:
              `sum(rate(tally_kafka_produce_batch_events_sum${sel()}${RATE}))\n/\n` +
              `sum(rate(tally_kafka_produce_batch_events_count${sel()}${RATE}))`,
            legend: 'mean',
          },
          { expr: quantile(0.99, 'tally_kafka_produce_batch_events', sel()), legend: 'p99' },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Kafka writes per second: all and failed',
        description:
          'Writes to the events topic per second, and those that failed or were not acknowledged within TALLY_PRODUCE_TIMEOUT_MS (their callers got UNAVAILABLE / 503). Any failure means Kafka is unreachable or refusing writes.',
        unit: 'cps',
        min: 0,
        width: 24,
        queries: [
          { expr: `sum(rate(tally_kafka_produce_duration_seconds_count${sel()}${RATE}))`, legend: 'writes' },
          { expr: `sum(rate(tally_kafka_produce_failures_total${sel()}${RATE}))`, legend: 'failed' },
        ],
      }),
    )
    .withRow(new RowBuilder('Consumer batches'))
    .withPanel(
      timeSeries({
        title: 'Consumer batch duration, by group: p50 and p99',
        description:
          'Time to handle one consumed batch: decoding, dead-lettering bad records and writing to the sink ' +
          '(PostgreSQL or Redis), before the offset commit. This is most of the time until an event is ' +
          'visible; when it grows, look at the sink below.',
        unit: 's',
        min: 0,
        queries: p50p99('tally_consumer_batch_duration_seconds', ['group'], '{{group}} '),
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Records per consumed batch (mean), by group',
        description:
          'How many records a consumer gets at once. It grows with the load and the lag: a consumer ' +
          'behind catches up in big batches.',
        unit: 'short',
        min: 0,
        queries: [
          {
            expr:
              `sum by (group) (rate(tally_consumer_batch_events_sum${sel()}${RATE}))\n/\n` +
              `sum by (group) (rate(tally_consumer_batch_events_count${sel()}${RATE}))`,
            legend: '{{group}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Events per sink write (mean), by sink',
        description:
          'How many events one write of a sink carries: the batches of every partition a fetch ' +
          'brought, gathered into one insert, script call or transaction. Small writes at a steady ' +
          'load mean per-write costs dominate (see TALLY_CONSUMER_MIN_BYTES).',
        unit: 'short',
        min: 0,
        queries: [
          {
            expr:
              `sum by (sink) (rate(tally_sink_write_events_sum${sel()}${RATE}))\n/\n` +
              `sum by (sink) (rate(tally_sink_write_events_count${sel()}${RATE}))`,
            legend: '{{sink}}',
          },
        ],
      }),
    )
    .withRow(new RowBuilder('Redis and PostgreSQL'))
    .withPanel(
      timeSeries({
        title: 'Redis call latency, by operation: p50 and p99',
        description:
          "Time of one counter store call on Redis: 'apply' writes a batch's counts (scripts and " +
          "leaderboards; the counter role), 'read' and 'top' serve queries (the query role). Empty with " +
          'the embedded counter store.',
        unit: 's',
        min: 0,
        queries: p50p99('tally_redis_operation_duration_seconds', ['operation'], '{{operation}} '),
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Redis calls per second, by operation',
        description: 'Counter store calls on Redis per second. Empty with the embedded counter store.',
        unit: 'reqps',
        min: 0,
        queries: [
          {
            expr: `sum by (operation) (rate(tally_redis_operation_duration_seconds_count${sel()}${RATE}))`,
            legend: '{{operation}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'PostgreSQL statement latency, by operation: p50 and p99',
        description:
          "Time of one statement, by its first SQL keyword ('with' for the persister's batches, 'select' " +
          "for reports, 'begin'/'commit' around the aggregator's transactions), including the wait for a " +
          'pooled connection: a long wait shows here first. Empty with the embedded PGlite.',
        unit: 's',
        min: 0,
        queries: p50p99('tally_pg_query_duration_seconds', ['operation'], '{{operation}} '),
      }),
    )
    .withPanel(
      timeSeries({
        title: 'PostgreSQL statements per second, by operation',
        description: 'Statements run on PostgreSQL per second. Empty with the embedded PGlite.',
        unit: 'reqps',
        min: 0,
        queries: [
          {
            expr: `sum by (operation) (rate(tally_pg_query_duration_seconds_count${sel()}${RATE}))`,
            legend: '{{operation}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Event partitions: maintenance runs by outcome, and days dropped, per hour',
        description:
          "The persisters' maintenance of the event table's day partitions (hourly, and at start): " +
          "'done' by the one that held the lock, 'skipped' by the others, 'failed' logged and tried " +
          'again at the next run. Days dropped: partitions past TALLY_EVENT_RETENTION_DAYS, zero ' +
          'without a retention (docs/architecture.md, The event table by day).',
        unit: 'short',
        min: 0,
        queries: [
          {
            expr: `sum by (outcome) (increase(tally_event_partition_maintenance_runs_total${sel()}[1h]))`,
            legend: '{{outcome}}',
          },
          {
            expr: `sum(increase(tally_event_partitions_dropped_total${sel()}[1h]))`,
            legend: 'days dropped',
          },
        ],
      }),
    )
    .withRow(new RowBuilder('Node.js processes'))
    .withPanel(
      timeSeries({
        title: 'Event-loop delay, by process',
        description:
          "How long the process's JavaScript thread was busy before it could run a ready callback: " +
          "'p99' since the process started, 'now' sampled at the scrape. Everything a process does waits " +
          'behind this delay; tens of milliseconds mean the process is CPU-bound.',
        unit: 's',
        min: 0,
        queries: [
          { expr: `nodejs_eventloop_lag_p99_seconds${sel()}`, legend: '{{pod}} p99' },
          { expr: `nodejs_eventloop_lag_seconds${sel()}`, legend: '{{pod}} now' },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Memory, by process: resident and V8 heap used',
        description:
          "Resident memory is what the operating system counts against the process (and a container's " +
          'memory limit); the V8 heap is the JavaScript objects in it. A heap that only grows is a leak.',
        unit: 'bytes',
        min: 0,
        queries: [
          { expr: `process_resident_memory_bytes${sel()}`, legend: '{{pod}} resident' },
          { expr: `nodejs_heap_size_used_bytes${sel()}`, legend: '{{pod}} heap used' },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'CPU, by process',
        description:
          'CPU time used per second of wall time: 100% is one core fully busy. A Node.js process does ' +
          'its JavaScript on one core, so near 100% it cannot go faster.',
        unit: 'percentunit',
        min: 0,
        queries: [{ expr: `rate(process_cpu_seconds_total${sel()}${RATE})`, legend: '{{pod}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Garbage collection time, by process and kind',
        description:
          'Share of the time the process spent collecting garbage, per kind of collection (minor, major, ' +
          'incremental, weakcb): the JavaScript thread pauses meanwhile. A few percent is normal.',
        unit: 'percentunit',
        min: 0,
        queries: [
          {
            expr: `sum by (pod, kind) (rate(nodejs_gc_duration_seconds_sum${sel()}${RATE}))`,
            legend: '{{pod}} {{kind}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Open file descriptors, by process',
        description:
          'Files and sockets the process holds open (connections to clients, Kafka, Redis, PostgreSQL, ' +
          'and the embedded log files). Steady growth is a leak.',
        unit: 'short',
        min: 0,
        queries: [{ expr: `process_open_fds${sel()}`, legend: '{{pod}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Uptime, by process',
        description: 'Time since each process started: a drop to zero is a restart.',
        unit: 's',
        min: 0,
        queries: [{ expr: `time() - process_start_time_seconds${sel()}`, legend: '{{pod}}' }],
      }),
    );
  return build(dashboard);
}
