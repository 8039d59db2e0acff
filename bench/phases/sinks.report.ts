/** Phase `sinks` in the report: its section and summary rows. */
import { cpuCells, cpuHeader, micros, ms, num, type Push, pct, ratio, table } from '../lib/format.ts';
import type { Results } from '../lib/results.ts';
import type { SummaryRow } from '../lib/summary.ts';

/** Each sink alone against its server's baseline. */
export function sinkRows(r: Results, rows: SummaryRow[]): void {
  const catchUp = (role: string) => r.catchUp.find((c) => c.role === role);
  const persister = catchUp('persister');
  const copyRatio = ratio(persister?.eventsPerSecond, r.pgCopy?.rowsPerSecond);
  rows.push({
    label: 'Persister alone (event rows)',
    measured: persister ? `${num(persister.eventsPerSecond)} events/s` : '—',
    target: '—',
    ok: undefined,
    baseline: r.pgCopy ? `COPY of the same rows: ${num(r.pgCopy.rowsPerSecond)} rows/s` : '—',
    ratio: copyRatio === undefined ? '—' : pct(copyRatio * 100),
    ratioTarget: '—',
    ratioOk: undefined,
  });
  const counter = catchUp('counter');
  const apply = r.redisBench?.rows.find((x) => x.name === 'EVALSHA apply ×1');
  const applyRatio = ratio(counter?.eventsPerSecond, apply?.eventsPerSecond);
  rows.push({
    label: 'Counter alone (Redis)',
    measured: counter ? `${num(counter.eventsPerSecond)} events/s` : '—',
    target: '—',
    ok: undefined,
    baseline: apply
      ? `redis-benchmark apply script, one event per call: ${num(apply.eventsPerSecond)} events/s`
      : '—',
    ratio: applyRatio === undefined ? '—' : pct(applyRatio * 100),
    ratioTarget: '—',
    ratioOk: undefined,
  });
  const aggregator = catchUp('aggregator');
  rows.push({
    label: 'Aggregator alone (summaries)',
    measured: aggregator ? `${num(aggregator.eventsPerSecond)} events/s` : '—',
    target: '—',
    ok: undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
  });
  const alerter = catchUp('alerter');
  rows.push({
    label: 'Alerter alone (milestone, spike and window rules)',
    measured: alerter ? `${num(alerter.eventsPerSecond)} events/s` : '—',
    target: '≥ 30,000 events/s',
    ok: alerter ? alerter.eventsPerSecond >= 30_000 : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
  });
  const projector = catchUp('projector');
  rows.push({
    label: 'Projector alone (order entities)',
    measured: projector ? `${num(projector.eventsPerSecond)} events/s` : '—',
    target: '≥ 20,000 events/s',
    ok: projector ? projector.eventsPerSecond >= 20_000 : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
  });
}

/** Phase `sinks`: each consumer catching up alone, PostgreSQL COPY and redis-benchmark. */
export function renderSinks(r: Results, push: Push): void {
  push('## Sinks', '');
  push(
    'Each consumer role alone (the others stopped) on its backlog, its rate counted from its first commit: the persister first, on ' +
      'the events the ingest phases left in the events topic, forwarding those it accepts to the accepted topic; ' +
      'then the counter, the aggregator and the alerter on what it forwarded — the alerter with three rules a social app ' +
      "would keep (like milestones on every post, comment spikes on every post, merchants' takings over ten minutes: " +
      'bench/lib/alert-rules.ts), and a lateness bound of a day, as for any replay. Last the projector, on a backlog of its own: ' +
      "the orders scenario's lifecycles (created → delivered, with courier positions) written to the events topic and taken in by the persister " +
      "while the projector's group skipped what came before. Then the servers' own baselines on the same kind of work.",
    '',
  );
  push(
    r.catchUp.length === 0
      ? 'Not measured.'
      : table(
          [
            'role',
            'reads',
            'backlog (records)',
            'events handled',
            'seconds',
            'events/s',
            'its CPU per event',
            ...cpuHeader([
              'persister',
              'counter',
              'aggregator',
              'alerter',
              'projector',
              'kafka',
              'redis',
              'postgres',
            ]),
          ],
          r.catchUp.map((c) => [
            c.role,
            `${c.topic ?? 'events'} topic`,
            num(c.backlog),
            num(c.events),
            num(c.seconds, 1),
            num(c.eventsPerSecond),
            c.eventsPerSecond > 0
              ? micros(((c.cpu.byGroup[c.role] ?? 0) / 100 / c.eventsPerSecond) * 1e6)
              : '—',
            ...cpuCells(c.cpu, [
              'persister',
              'counter',
              'aggregator',
              'alerter',
              'projector',
              'kafka',
              'redis',
              'postgres',
            ]),
          ]),
        ),
    '',
  );
  push('### PostgreSQL COPY', '');
  push(
    r.pgCopy
      ? `\`bench/baselines/pg-copy.ts\`: ${num(r.pgCopy.rows)} rows the persister wrote to \`event\` (${num(r.pgCopy.bytes / 2 ** 20, 1)} MiB as COPY text), copied back with psql's \`\\copy\` into a table of the same definition (\`LIKE event INCLUDING ALL\`: primary key and index): ${num(r.pgCopy.rowsPerSecond)} rows/s (${num(r.pgCopy.seconds, 2)} s).`
      : 'Not measured.',
    '',
  );
  push('### redis-benchmark', '');
  if (r.redisBench)
    push(
      `\`bench/baselines/redis-bench.ts\`: ${r.redisBench.version}, ${num(r.redisBench.requests)} requests per command, ` +
        `${r.redisBench.clients} clients, pipeline ${r.redisBench.pipeline} (the server's ceiling; the last row: its latency unloaded), on the counter store's own apply script (EVALSHA) and the other commands of the counter sink and GetCounters. ` +
        "The apply rows use the sink's keys per target (counts, sums, and marks with a field per partition; nothing per event), and offsets relative to the partition's mark, " +
        `so that every event applies, as in a catch-up (redis-benchmark sends only random numbers, which a mark would soon reject)${r.redisBench.appliedEvents !== undefined ? `: the counts hold the ${num(r.redisBench.appliedEvents)} events sent` : ''}.`,
      '',
      table(
        ['command', 'what it stands for', 'requests/s', 'events/s', 'p50', 'p99'],
        r.redisBench.rows.map((x) => [
          x.name,
          x.what,
          num(x.requestsPerSecond),
          x.eventsPerRequest ? num(x.eventsPerSecond) : '—',
          ms(x.p50Ms),
          ms(x.p99Ms),
        ]),
      ),
      '',
    );
  else push('Not measured.', '');
}
