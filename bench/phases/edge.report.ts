/** Phases `in-process` and `startup` in the report: their sections. */
import { cpuPerEvent, micros, ms, num, type Push, pct, ratio, table } from '../lib/format.ts';
import type { Results } from '../lib/results.ts';

/** The edge split and in one process (bench/phases/edge.ts): CPU per event and latency, side by side. */
export function renderInProcess(r: Results, push: Push): void {
  push('## The edge in one process: in-process calls against gRPC', '');
  if (!r.inProcess || r.inProcess.length === 0) {
    push('Not measured in this run.', '');
    return;
  }
  push(
    'The same REST load at a fixed rate, first through the gateway and ingest in processes of their own ' +
      '(the gateway calls ingest over gRPC), then through one process running both (`tally gateway ingest`: ' +
      'the gateway calls ingest in-process, as `tally all` does). CPU per event is the edge processes’ ' +
      '(gateway + ingest; the one process in the second case), Kafka excluded.',
    '',
  );
  const rows = r.inProcess.flatMap(({ load, split, combined }) => {
    const a = cpuPerEvent(split, ['gateway', 'ingest']);
    const b = cpuPerEvent(combined, ['gateway']);
    return [
      [
        load,
        'split (gRPC)',
        num(split.achievedEvents),
        micros(a),
        ms(split.latency.p50),
        ms(split.latency.p99),
        '—',
      ],
      [
        load,
        'one process',
        num(combined.achievedEvents),
        micros(b),
        ms(combined.latency.p50),
        ms(combined.latency.p99),
        ratio(b, a) === undefined ? '—' : pct(ratio(b, a)! * 100),
      ],
    ];
  });
  push(table(['load', 'edge', 'events/s', 'edge CPU per event', 'p50', 'p99', 'CPU vs split'], rows), '');
}

/** `tally all` on embedded backends started fresh and restarted (bench/phases/edge.ts). */
export function renderStartup(r: Results, push: Push): void {
  push('## Start-up of `tally all` (embedded, as `npm start`)', '');
  if (!r.startup || r.startup.length === 0) {
    push('Not measured in this run.', '');
    return;
  }
  push(
    'Milliseconds from the spawn of `bin/tally all` with an empty data directory (`fresh`), and again on ' +
      'the directory it left (`restart`), to `/healthz` answering, to the first event acknowledged over REST ' +
      '(ingest and the event log up), and to `/readyz` 200 (every backend answering, the embedded ' +
      'PostgreSQL migrated). The median of the runs, and the slowest.',
    '',
  );
  const rows = (['fresh', 'restart'] as const).map((kind) => {
    const runs = r.startup!.filter((x) => x.kind === kind);
    const cell = (pick: (x: (typeof runs)[number]) => number) => {
      const values = runs.map(pick).sort((x, y) => x - y);
      return values.length === 0
        ? '—'
        : `${num(values[Math.floor((values.length - 1) / 2)])} (max ${num(values[values.length - 1])})`;
    };
    return [
      kind,
      String(runs.length),
      cell((x) => x.healthzMs),
      cell((x) => x.firstEventMs),
      cell((x) => x.readyMs),
    ];
  });
  push(table(['data directory', 'runs', '/healthz, ms', 'first event, ms', '/readyz, ms'], rows), '');
}
