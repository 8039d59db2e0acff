/** Phase `windows` in the report: its section and summary rows. */
import { costEvidence, cpuEvidence } from '../lib/evidence.ts';
import { bytes, micros, ms, num, type Push, pct, table } from '../lib/format.ts';
import type { QueryRun, Results } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';

/** CPU per call of `groups` together, µs. */
function perCall(run: QueryRun, groups: string[]): number | undefined {
  if (!(run.achieved > 0) || run.cpu.seconds === 0) return undefined;
  return (groups.reduce((t, g) => t + (run.cpu.byGroup[g] ?? 0), 0) / 100 / run.achieved) * 1e6;
}

/** GetWindows at its fixed rate, and how soon an event counts in it. */
export function windowsRows(r: Results, rows: SummaryRow[]): void {
  const w = r.windows;
  const q = w?.query;
  const base = w?.baseline;
  const ratio = q && base && base.latency.p99 > 0 ? q.latency.p99 / base.latency.p99 : undefined;
  rows.push({
    label: 'GetWindows (3 windows) p99 at 1,000 calls/s, 100,000 active users',
    measured: q
      ? `${ms(q.latency.p99)} at ${num(q.rate)} calls/s over ${num(w.load.users)} users (${micros(perCall(q, ['query', 'redis']))} CPU per call, query and Redis)`
      : '—',
    target: `≤ ${TARGETS.windowsP99Ms} ms`,
    ok: q
      ? q.latency.p99 <= TARGETS.windowsP99Ms &&
        q.rate >= TARGETS.windowsRate &&
        w.load.users >= TARGETS.windowsUsers
      : undefined,
    baseline: base
      ? `GetCounters at ${num(base.rate)} calls/s, same transport: p99 ${ms(base.latency.p99)}`
      : '—',
    ratio: ratio !== undefined ? `${num(ratio, 2)}×` : '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: q
      ? `${cpuEvidence(q.cpu, `At ${num(q.rate)} calls/s`)}${w.load.users < TARGETS.windowsUsers ? ` Only ${num(w.load.users)} users were loaded (a smoke run).` : ''}`
      : undefined,
  });
  const f = w?.freshness;
  rows.push({
    label: 'Acknowledged → counted by GetWindows, p99 at 5,000 events/s',
    measured: f
      ? `${ms(f.ms.p99)} (p50 ${ms(f.ms.p50)}) with the simulators at ${num(f.achievedRate)} events/s`
      : '—',
    target: `≤ ${TARGETS.windowsFreshP99Ms} ms`,
    ok: f
      ? f.ms.p99 <= TARGETS.windowsFreshP99Ms && f.achievedRate >= 0.95 * TARGETS.windowsFreshRate
      : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: f ? cpuEvidence(f.cpu, `With the simulators at ${num(f.achievedRate)} events/s`) : undefined,
  });
}

/** Phase `windows`. */
export function renderWindows(r: Results, push: Push): void {
  push('## Sliding-window aggregates', '');
  const w = r.windows;
  if (!w) {
    push('Not measured.', '');
    return;
  }
  const l = w.load;
  push(
    `\`bench/phases/windows.ts\`. **Load:** ${num(l.users)} users' aggregates of type \`${w.type}\`, ${num(l.eventsPerUser)} events each at random times over the last 24 hours ` +
      `(values 0–200), each event also on one of ${num(l.targets)} targets, written through the aggregate store's own apply path ` +
      `(\`createRedisAggregateStore(…).apply\`: the script the counter runs for each batch, on the namespace's prefix; not through ingest and Kafka, ` +
      `which would take far longer to reach that many distinct users): ${num(l.increments)} series increments in ${num(l.seconds, 1)} s, ` +
      `Redis \`used_memory\` ${l.redisBytes === undefined ? '—' : `+${bytes(l.redisBytes)}`}` +
      `${l.redisBytes !== undefined && l.users > 0 ? ` (about ${bytes(l.redisBytes / l.users)} per user with its share of the targets' series)` : ''}.`,
    '',
    `**Queries:** \`bench/grpc-query.js\` (k6, QUERY=windows) calling \`QueryService/GetWindows\` on the query role for a uniformly random user of them, ` +
      `windows ${w.windows.join(', ')} in one call; the baseline is GetCounters on the same transport at the same rate ` +
      `(${w.baseline.measuredIn === 'queries' ? 'the queries phase’s run' : 'measured in this phase'}).`,
    '',
    table(
      [
        'call',
        'calls/s',
        'p50',
        'p90',
        'p99',
        'max',
        'dropped',
        'failed',
        'CPU per call query',
        'CPU per call Redis',
        'CPU k6',
      ],
      (
        [
          ['GetWindows', w.query],
          ['GetCounters (baseline)', w.baseline],
        ] as const
      ).map(([name, run]) => [
        name,
        num(run.achieved),
        ms(run.latency.p50),
        ms(run.latency.p90),
        ms(run.latency.p99),
        ms(run.latency.max),
        num(run.dropped),
        pct(run.failedRate * 100, 2),
        micros(perCall(run, ['query'])),
        micros(perCall(run, ['redis'])),
        pct(run.cpu.byGroup.k6 ?? 0),
      ]),
    ),
    '',
    `${cpuEvidence(w.query.cpu, 'During the GetWindows run')} ${costEvidence(w.query.cpu, w.query.achieved, ['query', 'redis'], 'call')}`,
    '',
  );
  const f = w.freshness;
  push(
    f
      ? `**Freshness:** every consumer role running, the counter with \`TALLY_AGGREGATE_TYPES\` empty (every type kept), the simulators offering ` +
          `${num(f.rate)} events/s for ${num(f.seconds)} s (${num(f.achievedRate)} acknowledged a second). Meanwhile ${num(f.probesPerSecond)} probes a second — ` +
          `a \`${w.type}\` event of a user of its own — go through ingest's \`Publish\`; from each acknowledgement the harness reads GetWindows (1h) for its user every ` +
          `${num(f.pollMs)} ms until it counts the event: p50 ${ms(f.ms.p50)}, p99 ${ms(f.ms.p99)}, max ${ms(f.ms.max)} (${num(f.ms.n)} of ${num(f.ms.sent)} probes; ` +
          `${num(f.ms.unseen)} not counted within the wait, ${num(f.ms.failed)} refused). ${cpuEvidence(f.cpu, 'Meanwhile')}`
      : 'Freshness: not measured.',
    '',
  );
}
