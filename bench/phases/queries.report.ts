/** Phase `queries` in the report: its section and summary rows. */
import { cpuEvidence } from '../lib/evidence.ts';
import { ms, num, type Push, pct } from '../lib/format.ts';
import type { Results } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';

/** GetCounters and GetReport. */
export function queryRows(r: Results, rows: SummaryRow[]): void {
  const gc = r.getCounters;
  const redisHget = r.redisBench?.rows.find((x) => x.name === 'HGETALL, 10 clients, no pipeline');
  rows.push({
    label: 'GetCounters p99 at 1,000 calls/s',
    measured: gc ? `${ms(gc.latency.p99)} at ${num(gc.rate)} calls/s` : '—',
    target: `≤ ${TARGETS.getCountersP99Ms} ms`,
    ok: gc ? gc.latency.p99 <= TARGETS.getCountersP99Ms && gc.rate >= TARGETS.getCountersRate : undefined,
    baseline: redisHget
      ? `redis-benchmark HGETALL (10 clients, no pipeline) p99 ${ms(redisHget.p99Ms)}`
      : '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: gc ? cpuEvidence(gc.cpu, `At ${num(gc.rate)} calls/s`) : undefined,
  });
  const gr = r.getReport;
  rows.push({
    label: 'GetReport p99 on ≥ 10 M events',
    measured: gr
      ? `${ms(gr.latency.p99)} at ${num(gr.rate)} calls/s, ${num(gr.seed.rows)} summary rows of ${num(gr.seed.events)} events`
      : '—',
    target: `≤ ${TARGETS.getReportP99Ms} ms`,
    ok: gr
      ? gr.latency.p99 <= TARGETS.getReportP99Ms && gr.seed.events >= TARGETS.getReportEvents
      : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: gr
      ? `${cpuEvidence(gr.cpu, `At ${num(gr.rate)} calls/s`)}${gr.seed.events < TARGETS.getReportEvents ? ` The table summarised only ${num(gr.seed.events)} events (a smoke run's tiny table).` : ''}`
      : undefined,
  });
}

/** Phase `queries`: GetCounters and GetReport at their fixed rates. */
export function renderQueries(r: Results, push: Push): void {
  push('## Queries', '');
  const gc = r.getCounters;
  push(
    gc
      ? `\`bench/grpc-query.js\` (k6) calling \`QueryService/GetCounters\` on the query role at ${num(gc.rate)} calls/s for ${num(gc.seconds)} s, targets of the load tests' mix by popularity: p50 ${ms(gc.latency.p50)}, p90 ${ms(gc.latency.p90)}, p99 ${ms(gc.latency.p99)}, max ${ms(gc.latency.max)}; ${num(gc.dropped)} dropped, ${pct(gc.failedRate * 100, 2)} failed. ${cpuEvidence(gc.cpu, 'Meanwhile')}`
      : 'GetCounters: not measured.',
    '',
  );
  const gr = r.getReport;
  push(
    gr
      ? `\`QueryService/GetReport\` at ${num(gr.rate)} calls/s for ${num(gr.seconds)} s, for a random target of ${num(gr.seed.targetsPerFamily * 3)} and a random day of ${gr.seed.firstDate} … ${gr.seed.lastDate}, on \`event_summary\` seeded with ${num(gr.seed.rows)} rows (${num(gr.seed.tableBytes / 2 ** 20)} MiB with its key) summarising ${num(gr.seed.events)} events (seeded in ${num(gr.seed.seconds, 1)} s): p50 ${ms(gr.latency.p50)}, p90 ${ms(gr.latency.p90)}, p99 ${ms(gr.latency.p99)}, max ${ms(gr.latency.max)}; ${num(gr.dropped)} dropped, ${pct(gr.failedRate * 100, 2)} failed. ${cpuEvidence(gr.cpu, 'Meanwhile')}`
      : 'GetReport: not measured.',
    '',
  );
}
