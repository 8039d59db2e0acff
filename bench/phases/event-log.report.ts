/** Phase `event-log` in the report: its section and summary row. */
import { bytes, ms, num, type Push, table } from '../lib/format.ts';
import type { Results } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';

/** The slowest shape's p99: what a page of the event log costs at worst among the shapes. */
function worst(r: Results) {
  const shapes = r.eventLog?.shapes ?? [];
  return shapes.reduce<(typeof shapes)[number] | undefined>(
    (w, s) => (!w || s.p99Ms > w.p99Ms ? s : w),
    undefined,
  );
}

/** A 100-event page of the event log, p99. */
export function eventLogRows(r: Results, rows: SummaryRow[]): void {
  const el = r.eventLog;
  const w = worst(r);
  rows.push({
    label: 'Event log page p99 on ≥ 10 M events',
    measured:
      el && w ? `${ms(w.p99Ms)} (${w.shape}), ${num(el.events)} events over ${num(el.days)} days` : '—',
    target: `≤ ${TARGETS.eventLogPageP99Ms} ms`,
    ok: el && w ? w.p99Ms <= TARGETS.eventLogPageP99Ms && el.events >= TARGETS.eventLogEvents : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit:
      el && el.events < TARGETS.eventLogEvents
        ? `The table held only ${num(el.events)} events (a smoke run's tiny table).`
        : undefined,
  });
}

/** Phase `event-log`: the table loaded, then each shape of page. */
export function renderEventLog(r: Results, push: Push): void {
  push('## Event log pages', '');
  const el = r.eventLog;
  if (!el) {
    push('The event log pages: not measured.', '');
    return;
  }
  push(
    `\`event\` partitioned by day (migration 0015) in a schema of its own, loaded by COPY (psql \`\\copy … FROM STDIN\`) with ${num(el.events)} events over ${num(el.days)} days in ${num(el.loadSeconds, 1)} s, users and targets by Zipf rank among ${num(el.users)} and ${num(el.targets)}; the key and the event log's four indexes built after the load in ${num(el.indexSeconds, 1)} s (${bytes(el.tableBytes)} with them). Each shape read ${num(el.pages)} times, one page of 100 at a time, with the query role's statement (\`scanEvents\`), for subjects drawn by the same ranks; a day is a random one of the range.`,
    '',
    table(
      ['page', 'p50', 'p99', 'max', 'events per page'],
      el.shapes.map((s) => [s.shape, ms(s.p50Ms), ms(s.p99Ms), ms(s.maxMs), num(s.meanEvents, 1)]),
    ),
    '',
  );
}
