/** Phase `delivery` in the report: its section and summary rows. */
import { cpuEvidence } from '../lib/evidence.ts';
import { cpuCells, cpuHeader, micros, ms, num, type Push, pct, table } from '../lib/format.ts';
import type { CpuUse } from '../lib/proc.ts';
import type { IsolationRun, Results } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';

/** The CPU groups of the delivery path (and the rest of the suite), for the progress lines and the report. */
export const DELIVERY_GROUPS = [
  'router',
  'sender',
  'receiver',
  'ingest',
  'persister',
  'counter',
  'aggregator',
  'kafka',
  'postgres',
  'redis',
];

/** Each process's CPU per delivery, µs: `router 40 µs, sender 120 µs, …`. */
function perDelivery(cpu: CpuUse | undefined, perSecond: number | undefined): string {
  if (!cpu || cpu.seconds === 0 || !(perSecond && perSecond > 0)) return '—';
  return DELIVERY_GROUPS.map((g) => `${g} ${micros(((cpu.byGroup[g] ?? 0) / 100 / perSecond) * 1e6)}`).join(
    ', ',
  );
}

/** Throughput, acknowledged → first attempt, and isolation. */
export function deliveryRows(r: Results, rows: SummaryRow[]): void {
  const d = r.delivery;
  const best = d?.throughput.best;
  const top = d?.throughput.steps.reduce<number | undefined>(
    (m, s) => Math.max(m ?? 0, s.deliveredPerSecond),
    undefined,
  );
  const empty = { baseline: '—', ratio: '—', ratioTarget: '—', ratioOk: undefined };
  rows.push({
    label: 'Deliveries/s to a receiver answering in 5 ms, the suite running',
    measured: best
      ? `${num(best.deliveredPerSecond)} deliveries/s (simulators at ${num(best.achievedEvents)} events/s)`
      : top !== undefined
        ? `no step kept up; ${num(top)} deliveries/s at most`
        : '—',
    target: `≥ ${num(TARGETS.deliveriesPerSecond)}/s`,
    ok: d ? (best?.deliveredPerSecond ?? 0) >= TARGETS.deliveriesPerSecond : undefined,
    ...empty,
    limit: d
      ? `${cpuEvidence((best ?? d.throughput.steps.at(-1))?.cpu, 'During the best step')} CPU per delivery: ${perDelivery(best?.cpu, best?.deliveredPerSecond)}.`
      : undefined,
  });
  const l = d?.latency;
  rows.push({
    label: 'Acknowledged → first delivery attempt, p99 at 1,000 events/s',
    measured: l ? `${ms(l.ms.p99)} (p50 ${ms(l.ms.p50)}) at ${num(l.rate)} events/s` : '—',
    target: `≤ ${TARGETS.deliveryP99Ms} ms`,
    ok: l
      ? l.ms.p99 <= TARGETS.deliveryP99Ms && l.rate >= TARGETS.deliveryRate && l.ms.unseen === 0
      : undefined,
    ...empty,
    limit: l ? cpuEvidence(l.cpu, `At ${num(l.rate)} events/s`) : undefined,
  });
  const iso = d?.isolation;
  const tput = iso ? iso.withFaults.deliveredPerSecond / iso.allHealthy.deliveredPerSecond : undefined;
  rows.push({
    label: 'Healthy destination beside a dead and a slow one: throughput',
    measured: iso
      ? `${num(iso.withFaults.deliveredPerSecond)} deliveries/s at ${num(iso.rate)} events/s`
      : '—',
    target: '—',
    ok: undefined,
    baseline: iso ? `all three healthy: ${num(iso.allHealthy.deliveredPerSecond)} deliveries/s` : '—',
    ratio: tput !== undefined && Number.isFinite(tput) ? pct(tput * 100) : '—',
    ratioTarget: `≥ ${pct(TARGETS.isolationThroughputShare * 100)}`,
    ratioOk:
      tput !== undefined && Number.isFinite(tput) ? tput >= TARGETS.isolationThroughputShare : undefined,
    limit: iso ? cpuEvidence(iso.withFaults.cpu, 'With the dead and the slow destination') : undefined,
  });
  const p99 = iso ? iso.withFaults.ms.p99 / iso.allHealthy.ms.p99 : undefined;
  rows.push({
    label: 'Healthy destination beside a dead and a slow one: p99',
    measured: iso ? `${ms(iso.withFaults.ms.p99)} acknowledged → delivered` : '—',
    target: '—',
    ok: undefined,
    baseline: iso ? `all three healthy: ${ms(iso.allHealthy.ms.p99)}` : '—',
    ratio: p99 !== undefined && Number.isFinite(p99) ? `${num(p99, 2)}×` : '—',
    ratioTarget: `≤ ${num(TARGETS.isolationP99Ratio, 2)}×`,
    ratioOk: p99 !== undefined && Number.isFinite(p99) ? p99 <= TARGETS.isolationP99Ratio : undefined,
    limit: iso ? cpuEvidence(iso.withFaults.cpu, 'With the dead and the slow destination') : undefined,
  });
}

/** Phase `delivery`. */
export function renderDelivery(r: Results, push: Push): void {
  push('## Delivery', '');
  const d = r.delivery;
  if (!d) {
    push('Not measured.', '');
    return;
  }
  push(
    '`bench/phases/delivery.ts`: the router and a sender (`tally router`, `tally sender`, a process each; ' +
      '`TALLY_DELIVERY_ALLOW_CIDRS=127.0.0.1/32`, `TALLY_DESTINATIONS_REFRESH_MS=500`) beside the rest of the suite (ingest, query, the gateway, ' +
      "the persister, the counter, the aggregator), delivering webhooks to local receivers in a process of the harness's own " +
      `(\`bench/lib/webhook-sink.ts\`, answering 200 after ${num(d.receiverLatencyMs)} ms, signatures not checked). Destinations are made over ` +
      '`POST /v1/destinations` (plain http allowed) just before their part, disabled after it (`PUT`, `enabled: false`) and deleted once the ' +
      'router and the sender are stopped; each is warmed up (events sent until its receiver got one) before anything is measured.',
    '',
    `**Throughput.** The simulators (clickstream 50 %, social 35 %, transactions 15 %) offer each rate for ${num(d.throughput.stepSeconds)} s; ` +
      `every event goes to one destination (no filter, default per-user order, concurrency ${num(d.concurrency)}). Deliveries/s are the receiver's ` +
      "requests from a second after the simulators' first batches to half a second before they stop; a step passes when they reach 95 % of the " +
      'acknowledged rate and the receiver has every acknowledged event within the drain wait.',
    '',
    table(
      [
        'offered events/s',
        'acknowledged events/s',
        'delivered/s',
        'drained in',
        ...cpuHeader([...DELIVERY_GROUPS, 'simulator']),
        'verdict',
      ],
      d.throughput.steps.map((s) => [
        num(s.rate),
        num(s.achievedEvents),
        num(s.deliveredPerSecond),
        s.drainSeconds === undefined ? 'not drained' : `${num(s.drainSeconds, 1)} s`,
        ...cpuCells(s.cpu, [...DELIVERY_GROUPS, 'simulator']),
        s.passed ? (s === d.throughput.best ? '**best**' : 'pass') : `fail: ${s.why}`,
      ]),
    ),
    '',
    d.throughput.best
      ? `CPU per delivery at ${num(d.throughput.best.deliveredPerSecond)} deliveries/s (each process's CPU over the delivery rate; the other roles' share is what the suite costs meanwhile): ${perDelivery(d.throughput.best.cpu, d.throughput.best.deliveredPerSecond)}.`
      : 'No step kept up.',
    '',
  );
  const l = d.latency;
  push(
    l
      ? `**Acknowledged → first attempt.** The harness publishes ${num(l.rate)} events/s of its own type for ${num(l.seconds)} s through ingest's \`PublishBatch\` ` +
          `(every 20 ms), recording each event's acknowledgement by id; a destination filtered to that type delivers them, and the receiver records each id's first ` +
          `arrival: p50 ${ms(l.ms.p50)}, p99 ${ms(l.ms.p99)}, max ${ms(l.ms.max)} (${num(l.ms.n)} of ${num(l.acknowledged)} arrived; ${num(l.ms.unseen)} not within the wait). ` +
          `CPU per delivery: ${perDelivery(l.cpu, l.rate)}. ${cpuEvidence(l.cpu, 'Meanwhile')}`
      : 'Acknowledged → first attempt: not measured.',
    '',
  );
  const iso = d.isolation;
  if (iso) {
    push(
      `**Isolation.** The harness's events at ${num(iso.rate)}/s for ${num(iso.seconds)} s to three destinations of their type: first all three healthy, ` +
        `then the healthy one beside one dead (nothing listening on its port: connection refused) and one slow (${num(d.slowLatencyMs)} ms a request, ` +
        "default concurrency). The healthy destination's deliveries/s count its arrivals while the events were sent; its latency is acknowledged → first arrival.",
      '',
      table(
        [
          'beside the healthy one',
          'acknowledged',
          'healthy delivered/s',
          'healthy p50 / p99 / max',
          'not arrived',
          'slow receiver requests',
          ...cpuHeader(['router', 'sender']),
        ],
        ([iso.allHealthy, iso.withFaults] as IsolationRun[]).map((run) => [
          run.others,
          num(run.acknowledged),
          num(run.deliveredPerSecond),
          `${ms(run.ms.p50)} / ${ms(run.ms.p99)} / ${ms(run.ms.max)}`,
          num(run.ms.unseen),
          num(run.slowRequests),
          ...cpuCells(run.cpu, ['router', 'sender']),
        ]),
      ),
      '',
    );
  } else push('Isolation: not measured.', '');
}
