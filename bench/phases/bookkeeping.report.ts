/** Phase `bookkeeping` in the report: its section and summary row. */
import { approx, bytes, num, type Push, smallPct, table } from '../lib/format.ts';
import type { BookkeepingResult, BookkeepingSnapshot, Results } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';

const DAY_SECONDS = 86_400;

/** One event count's Redis figures, as growth since the phase's start. */
export interface BookkeepingPoint {
  events: number;
  /** used_memory growth: the whole server's, so other clients' work shows in it. */
  usedGrowth: number;
  /** MEMORY USAGE of every key the counter wrote (counts, sums, marks, leaderboards). */
  keysBytes: number;
  marksBytes: number;
  markFields: number;
  /** The marked (target, partition) pairs, as a share of the mix's targets × partitions. */
  pairsShare: number;
}

/** The phase's figures, and a day at the target's rate extrapolated from them. */
export interface BookkeepingFigures {
  points: BookkeepingPoint[];
  /** Events of a day at TARGETS.dayEventsPerSecond. */
  dayEvents: number;
  /** The marks at full occupancy: every target of the mix with a mark in every partition. */
  marksFull: number;
  /**
   * What the counter holds in Redis after a day, for the mix's targets: what it held after the
   * larger count (used_memory's growth, or the MEMORY USAGE of its keys when that is larger: the
   * server is shared), with the marks of the pairs not yet marked added at full occupancy. The
   * counts, sums and leaderboards are bounded by targets × types, the marks by targets ×
   * partitions: nothing in it grows with the events.
   */
  nowDay: number;
  /** nowDay per target of the mix. */
  perTarget: number;
  /** The design before: used_memory per marker, and a day of them (the window's) with the same other keys. */
  markerPerEvent?: number;
  beforeDay?: number;
  /** The design before: summary_event_seen bytes per row, and a day of them. */
  seenPerEvent?: number;
  seenDay?: number;
}

const keysBytes = (s: BookkeepingSnapshot) => Object.values(s.redis.bytes).reduce((t, b) => t + b, 0);

export function bookkeepingFigures(bk: BookkeepingResult): BookkeepingFigures | undefined {
  const last = bk.snapshots.at(-1);
  if (!last) return undefined;
  const pairs = bk.targets * bk.partitions;
  const points = bk.snapshots.map((s) => ({
    events: s.events,
    usedGrowth: s.redis.usedMemory - bk.start.redis.usedMemory,
    keysBytes: keysBytes(s) - keysBytes(bk.start),
    marksBytes: s.redis.bytes.marks - bk.start.redis.bytes.marks,
    markFields: s.redis.markFields - bk.start.redis.markFields,
    pairsShare: (s.redis.markFields - bk.start.redis.markFields) / pairs,
  }));
  const end = points.at(-1)!;
  const dayEvents = TARGETS.dayEventsPerSecond * DAY_SECONDS;
  // Bytes per mark, the hash's own overhead spread over its fields: fuller hashes spread it
  // thinner, so the bound overstates rather than understates.
  const marksFull = Math.max(
    end.marksBytes,
    end.markFields > 0 ? (end.marksBytes / end.markFields) * pairs : 0,
  );
  const nowDay = Math.max(end.usedGrowth, end.keysBytes) + (marksFull - end.marksBytes);
  // The design before kept the same counts, sums and leaderboards, and a marker per event.
  const others = end.keysBytes - end.marksBytes;
  const markerPerEvent = bk.markers && bk.markers.usedMemory / bk.markers.events;
  const seenPerEvent = bk.seenRows && bk.seenRows.bytes / bk.seenRows.events;
  return {
    points,
    dayEvents,
    marksFull,
    nowDay,
    perTarget: nowDay / bk.targets,
    markerPerEvent,
    beforeDay: markerPerEvent === undefined ? undefined : others + markerPerEvent * dayEvents,
    seenPerEvent,
    seenDay: seenPerEvent === undefined ? undefined : seenPerEvent * dayEvents,
  };
}

/** The counter's Redis memory after a day at the target's rate, against the design before. */
export function bookkeepingRows(r: Results, rows: SummaryRow[]): void {
  const f = r.bookkeeping && bookkeepingFigures(r.bookkeeping);
  rows.push({
    label: "Counter's Redis memory, 24 h at 20,000 events/s",
    measured: f
      ? `${bytes(f.nowDay)} for ${num(r.bookkeeping!.targets)} targets (${num(f.perTarget)} bytes each), whatever their traffic`
      : '—',
    target: `≤ ${bytes(TARGETS.counterRedisBytesPerDay)}`,
    ok: f ? f.nowDay <= TARGETS.counterRedisBytesPerDay : undefined,
    baseline:
      f?.beforeDay !== undefined
        ? `a marker per event, as before: ${num(f.markerPerEvent, 1)} bytes each, ${bytes(f.beforeDay)}`
        : '—',
    ratio: f?.beforeDay ? smallPct(f.nowDay / f.beforeDay) : '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: f
      ? `The marks are bounded by targets × partitions and the counts by targets × types, not by events: ${num(f.perTarget)} bytes per target, so ${bytes(TARGETS.counterRedisBytesPerDay)} holds about ${approx(TARGETS.counterRedisBytesPerDay / f.perTarget)} targets.`
      : undefined,
  });
}

/** Phase `bookkeeping`: Redis and PostgreSQL at two event counts, the design before, and a day extrapolated. */
export function renderBookkeeping(r: Results, push: Push): void {
  push('## Bookkeeping per event', '');
  const bk = r.bookkeeping;
  const f = bk && bookkeepingFigures(bk);
  if (!bk || !f) {
    push('Not measured.', '');
    return;
  }
  const counts = f.points.map((p) => num(p.events)).join(' and ');
  push(
    'What the sinks keep besides the events, so that each event is applied once ([docs/guarantees.md](../docs/guarantees.md)): ' +
      "the persister judges duplicates by the `event` table's primary key and forwards what it accepts to the accepted topic with its offset in the events topic; " +
      'the counter keeps, per target, a hash of partition → last applied offset beside the counts (`<prefix>:{<tag>}:o`), and the aggregator a row per partition in `consumer_offset`. ' +
      `\`bench/phases/bookkeeping.ts\` sends ${counts} events in all of the load tests' mix (ids as ingest makes them, UUIDv7; Zipf-popular targets, ${num(bk.targets)} in all; ` +
      `${bk.partitions} partitions) through the persister, the counter and the aggregator, in consumer groups and a Redis prefix of their own; once every group has caught up, ` +
      "it reads Redis's `used_memory` (the whole server's: other clients' work shows in it) and the MEMORY USAGE of each key the counter wrote, by kind, and every table of the schema. " +
      'Every event sent is checked to be counted once.',
    '',
  );

  push('### Redis', '');
  const last = bk.snapshots.at(-1)!;
  const cell = (s: BookkeepingSnapshot, kind: keyof BookkeepingSnapshot['redis']['keys']) =>
    `${num(s.redis.keys[kind] - bk.start.redis.keys[kind])} keys, ${bytes(s.redis.bytes[kind] - bk.start.redis.bytes[kind])}`;
  const rows = bk.snapshots.map((s, i) => {
    const p = f.points[i]!;
    return [
      num(s.events),
      bytes(p.usedGrowth),
      num(p.usedGrowth / p.events, 1),
      cell(s, 'counts'),
      cell(s, 'sums'),
      `${cell(s, 'marks')}; ${num(p.markFields)} marks (${num(p.pairsShare * 100)} % of the pairs)`,
      cell(s, 'leaderboards'),
      bytes(p.keysBytes),
      num(p.keysBytes / p.events, 1),
      num(p.marksBytes / p.events, 2),
    ];
  });
  if (f.points.length > 1) {
    const a = f.points[0]!;
    const b = f.points.at(-1)!;
    const more = b.events - a.events;
    rows.push([
      `${num(a.events)} → ${num(b.events)}`,
      bytes(b.usedGrowth - a.usedGrowth),
      num((b.usedGrowth - a.usedGrowth) / more, 2),
      '',
      '',
      `${num(b.markFields - a.markFields)} more marks`,
      '',
      bytes(b.keysBytes - a.keysBytes),
      num((b.keysBytes - a.keysBytes) / more, 2),
      num((b.marksBytes - a.marksBytes) / more, 3),
    ]);
  }
  push(
    table(
      [
        'events',
        'used_memory growth',
        'bytes/event',
        'counts hashes',
        'sums hashes',
        'marks hashes (the bookkeeping)',
        'leaderboards',
        "the counter's keys",
        'bytes/event',
        'marks bytes/event',
      ],
      rows,
    ),
    '',
  );
  const pairs = bk.targets * bk.partitions;
  push(
    `The counter keeps nothing per event: its keys are ${num(last.redis.keys.counts + last.redis.keys.sums + last.redis.keys.marks + last.redis.keys.leaderboards)} after ${num(last.events)} events — ` +
      'a counts hash and a marks hash per target, a sums hash per target with valued events, a leaderboard per type and the set of types — ' +
      `and a mark per (target, partition) pair that has had an event, at most ${num(pairs)} here (${num(bk.targets)} targets × ${bk.partitions} partitions). ` +
      'The last row is what more traffic cost: the marks of pairs seen for the first time (their share grows towards all of them) and the types new to a target; bytes per event fall as the events grow.',
    '',
  );
  if (bk.markers)
    push(
      `**Before** (a marker per event for the 24 h dedup window, \`SET <prefix>:{<tag>}:e:<id> 1 NX PX ${num(bk.markers.ttlMs)}\`, set by the harness on the same server for the first ${num(bk.markers.events)} events, then deleted): ` +
        `used_memory grew by ${bytes(bk.markers.usedMemory)}, ${num(f.markerPerEvent, 1)} bytes per event (MEMORY USAGE ${num(bk.markers.bytes / bk.markers.events, 1)} bytes per key; the rest is the expiry and the keyspace's tables). ` +
        "The keys carry the run's prefix, as the counter's above do.",
      '',
    );

  push('### PostgreSQL', '');
  const tables = [...new Set([...bk.start.pg, ...last.pg].map((t) => t.table))].sort();
  const of = (s: BookkeepingSnapshot, table: string) => s.pg.find((t) => t.table === table);
  push(
    table(
      [
        'table',
        'rows before',
        ...bk.snapshots.map((s) => `rows added, ${num(s.events)} events`),
        'size before',
        ...bk.snapshots.map((s) => `growth, ${num(s.events)} events`),
        'bytes/event',
      ],
      tables.map((t) => {
        const start = of(bk.start, t);
        const end = of(last, t);
        return [
          `\`${t}\``,
          num(start?.rows ?? 0),
          ...bk.snapshots.map((s) => num((of(s, t)?.rows ?? 0) - (start?.rows ?? 0))),
          bytes(start?.bytes ?? 0),
          ...bk.snapshots.map((s) => bytes((of(s, t)?.bytes ?? 0) - (start?.bytes ?? 0))),
          num(((end?.bytes ?? 0) - (start?.bytes ?? 0)) / last.events, 1),
        ];
      }),
    ),
    '',
  );
  // A table other than `event` that gains rows in proportion to the events keeps something per event.
  const perEvent = tables.filter(
    (t) => t !== 'event' && (of(last, t)?.rows ?? 0) - (of(bk.start, t)?.rows ?? 0) >= 0.5 * last.events,
  );
  const offsetCounts = [...new Set(bk.snapshots.map((s) => s.offsetRows))];
  const offsetRows =
    offsetCounts.length === 1
      ? `${num(offsetCounts[0])} rows of \`consumer_offset\` after each count`
      : `${bk.snapshots.map((s) => num(s.offsetRows)).join(', then ')} rows of \`consumer_offset\``;
  push(
    (perEvent.length === 0
      ? 'No table but `event` (the events themselves) gains a row per event. '
      : `**Tables other than \`event\` gaining rows with the events: ${perEvent.map((t) => `\`${t}\``).join(', ')}.** `) +
      `The aggregator's group held ${offsetRows} (one per partition it has read, whatever the events). \`event_summary\` gains rows with the (target, hour, type) triples, not with the events; ` +
      'its size grows faster than its rows because each upsert writes a new version of a row (its covering index holds the count) and the old ones wait for autovacuum, ' +
      'which makes their space reusable: that is the summaries churning, not something kept per event. ' +
      (bk.seenRows
        ? `**Before**, the aggregator also kept a \`summary_event_seen\` row per event for the window: the same ${num(bk.seenRows.events)} ids in a table of its definition (id primary key, seen_at indexed) took ${bytes(bk.seenRows.bytes)}, ${num(f.seenPerEvent, 1)} bytes per event.`
        : ''),
    '',
  );

  push(`### A day at ${num(TARGETS.dayEventsPerSecond)} events/s`, '');
  push(
    `${num(f.dayEvents)} events (${num(TARGETS.dayEventsPerSecond)} events/s for 24 h) on the mix's ${num(bk.targets)} targets: ` +
      `the counter would hold ${bytes(f.nowDay)} in Redis — what it held after ${num(last.events)} events (used_memory's growth, or its keys' MEMORY USAGE when larger), with every one of the ${num(pairs)} (target, partition) pairs marked (${bytes(f.marksFull)} of marks), ` +
      `whatever the number of events: ${num(f.perTarget)} bytes per target, so the target of ${bytes(TARGETS.counterRedisBytesPerDay)} holds about ${approx(TARGETS.counterRedisBytesPerDay / f.perTarget)} targets. ` +
      (f.beforeDay !== undefined
        ? `Before, the same keys and a marker for each event of the window: ${bytes(f.beforeDay)} (${num(f.markerPerEvent, 1)} bytes × ${num(f.dayEvents)} events). `
        : '') +
      (f.seenDay !== undefined
        ? `In PostgreSQL, the aggregator's ${bk.partitions} rows of \`consumer_offset\` against a day of \`summary_event_seen\` rows before: ${bytes(f.seenDay)}.`
        : ''),
    '',
  );
}
