/**
 * The aggregate store in the process, for the embedded mode: the same series as the Redis adapter
 * (marks per partition, raw events sorted by time, minute and hour tiles, the retention), in
 * memory, made durable by an append-only journal of the increments each `apply` applied (one line,
 * one write and one fdatasync per call), compacted into a snapshot as it grows, as the embedded
 * counter store is.
 *
 * Files under `dataDir`: `snapshot.json` (the state as of journal generation G) and `journal.<n>`
 * for n > G, replayed in order on open. A torn last line (a crash mid-write) is ignored: its
 * `apply` had not returned, so its batch is redelivered and applied then.
 */
import {
  closeSync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  type Aggregate,
  addAggregate,
  addEvent,
  emptyAggregate,
  hourOf,
  minuteOf,
  windowPieces,
} from '../../domain/window-aggregates.ts';
import {
  AGGREGATE_MARK_TTL_MS,
  AGGREGATE_RETENTION_MS,
  type AggregateIncrement,
  type AggregateStore,
  checkRanked,
  groupIncrements,
  measureOf,
  type RankedSeries,
  type RankedTypes,
  type SeriesKind,
  type SeriesName,
  seriesId,
  type TimeSpan,
} from './aggregate-store.ts';

export interface EmbeddedAggregateStoreOptions {
  dataDir: string;
  /** Journal size that triggers a snapshot (default 64 MiB). */
  compactAfterBytes?: number;
  /** The clock that decides which events are still kept (default Date.now). */
  now?: () => number;
  /** The types {@link AggregateStore.top} ranks (default all). */
  rankedTypes?: RankedTypes;
}

interface RawEvent {
  timeMs: number;
  value: number | undefined;
}

interface Series {
  name: SeriesName;
  /** partition → offset of the last event applied */
  marks: Map<number, number>;
  /** Ascending by time. */
  raw: RawEvent[];
  minutes: Map<number, Aggregate>;
  hours: Map<number, Aggregate>;
  /** When it last applied an event (ms): a series idle for AGGREGATE_MARK_TTL_MS is forgotten. */
  appliedAtMs: number;
  /** When its tiles were last swept of those past the retention (ms). */
  sweptMs: number;
}

/** One journal line: the increments one apply applied. */
type JournalLine = [
  kind: SeriesKind,
  subject: string,
  type: string,
  partition: number,
  offset: number,
  timeMs: number,
  value: number | null,
][];

type RawTile = [
  index: number,
  count: number,
  valued: number,
  sum: number,
  min: number | null,
  max: number | null,
];

interface Snapshot {
  generation: number;
  series: {
    name: SeriesName;
    marks: [number, number][];
    appliedAtMs: number;
    raw: [number, number | null][];
    minutes: RawTile[];
    hours: RawTile[];
  }[];
}

const tileOf = ([, count, valueCount, sum, min, max]: RawTile): Aggregate => ({
  count,
  valueCount,
  sum,
  min: min ?? undefined,
  max: max ?? undefined,
});
const rawTile = (index: number, t: Aggregate): RawTile => [
  index,
  t.count,
  t.valueCount,
  t.sum,
  t.min ?? null,
  t.max ?? null,
];

/** The first index of `raw` whose time is at or after `timeMs`. */
function lowerBound(raw: readonly RawEvent[], timeMs: number): number {
  let lo = 0;
  let hi = raw.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (raw[mid]!.timeMs < timeMs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A series' aggregate over [startMs, endMs). */
function spanOf(s: Series, { startMs, endMs }: TimeSpan): Aggregate {
  const total = emptyAggregate();
  const pieces = windowPieces(startMs, endMs);
  for (const { fromMs, toMs } of pieces.raw)
    for (let i = lowerBound(s.raw, fromMs); i < s.raw.length && s.raw[i]!.timeMs < toMs; i++)
      addEvent(total, s.raw[i]!.value);
  for (const m of pieces.minutes) {
    const tile = s.minutes.get(m);
    if (tile) addAggregate(total, tile);
  }
  for (const h of pieces.hours) {
    const tile = s.hours.get(h);
    if (tile) addAggregate(total, tile);
  }
  return total;
}

export function createEmbeddedAggregateStore(options: EmbeddedAggregateStoreOptions): AggregateStore {
  const compactAfter = options.compactAfterBytes ?? 64 * 1024 * 1024;
  const now = options.now ?? Date.now;
  mkdirSync(options.dataDir, { recursive: true });
  const all = new Map<string, Series>();

  const seriesOf = (name: SeriesName): Series => {
    const id = seriesId(name);
    let s = all.get(id);
    if (!s) {
      s = {
        name: { kind: name.kind, subject: name.subject, type: name.type },
        marks: new Map(),
        raw: [],
        minutes: new Map(),
        hours: new Map(),
        appliedAtMs: 0,
        sweptMs: 0,
      };
      all.set(id, s);
    }
    return s;
  };
  const addTo = (tiles: Map<number, Aggregate>, index: number, value: number | undefined) => {
    let tile = tiles.get(index);
    if (!tile) {
      tile = emptyAggregate();
      tiles.set(index, tile);
    }
    addEvent(tile, value);
  };
  /** Adds one event to its series (the mark is the caller's). */
  const addToSeries = (s: Series, timeMs: number, value: number | undefined, oldestMs: number) => {
    if (timeMs < oldestMs) return;
    const at = lowerBound(s.raw, timeMs + 1); // after events of the same time: arrival order
    s.raw.splice(at, 0, { timeMs, value });
    addTo(s.minutes, minuteOf(timeMs), value);
    addTo(s.hours, hourOf(timeMs), value);
  };
  /** Drops what is past the retention: raw events always, tiles at most once a minute. */
  const trim = (s: Series, oldestMs: number, nowMs: number) => {
    const cut = lowerBound(s.raw, oldestMs);
    if (cut > 0) s.raw.splice(0, cut);
    if (nowMs - s.sweptMs < 60_000) return;
    s.sweptMs = nowMs;
    // A tile goes once its whole span is past: the reads that could need it start later.
    for (const m of s.minutes.keys()) if ((m + 1) * 60_000 <= oldestMs) s.minutes.delete(m);
    for (const h of s.hours.keys()) if ((h + 1) * 3_600_000 <= oldestMs) s.hours.delete(h);
  };
  const applyLine = (line: JournalLine, nowMs: number) => {
    const oldestMs = nowMs - AGGREGATE_RETENTION_MS;
    const touched = new Set<Series>();
    for (const [kind, subject, type, partition, offset, timeMs, value] of line) {
      const s = seriesOf({ kind, subject, type });
      addToSeries(s, timeMs, value ?? undefined, oldestMs);
      s.marks.set(partition, offset);
      s.appliedAtMs = nowMs;
      touched.add(s);
    }
    for (const s of touched) trim(s, oldestMs, nowMs);
  };

  // Recover: snapshot, then newer journals in order.
  let generation = 0;
  const snapshotPath = join(options.dataDir, 'snapshot.json');
  try {
    const snap = JSON.parse(readFileSync(snapshotPath, 'utf8')) as Snapshot;
    generation = snap.generation;
    for (const stored of snap.series) {
      const s = seriesOf(stored.name);
      for (const [p, o] of stored.marks) s.marks.set(p, o);
      s.raw = stored.raw.map(([timeMs, value]) => ({ timeMs, value: value ?? undefined }));
      for (const t of stored.minutes) s.minutes.set(t[0], tileOf(t));
      for (const t of stored.hours) s.hours.set(t[0], tileOf(t));
      s.appliedAtMs = stored.appliedAtMs;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const journals = readdirSync(options.dataDir)
    .map((f) => /^journal\.(\d+)$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  for (const n of journals) {
    if (n <= generation) {
      rmSync(join(options.dataDir, `journal.${n}`), { force: true });
      continue;
    }
    for (const text of readFileSync(join(options.dataDir, `journal.${n}`), 'utf8').split('\n')) {
      if (text === '') continue;
      let line: JournalLine;
      try {
        line = JSON.parse(text) as JournalLine;
      } catch {
        break; // torn tail
      }
      applyLine(line, now());
    }
  }

  let journalGen = Math.max(generation, ...journals) + 1;
  let journalFd = openSync(join(options.dataDir, `journal.${journalGen}`), 'a');
  let journalBytes = 0;

  const compact = () => {
    const nowMs = now();
    const oldestMs = nowMs - AGGREGATE_RETENTION_MS;
    const snap: Snapshot = { generation: journalGen, series: [] };
    for (const [id, s] of all) {
      // Idle past the marks' use: forgotten, as Redis expires its keys.
      if (s.appliedAtMs <= nowMs - AGGREGATE_MARK_TTL_MS) {
        all.delete(id);
        continue;
      }
      s.sweptMs = 0;
      trim(s, oldestMs, nowMs);
      snap.series.push({
        name: s.name,
        marks: [...s.marks],
        appliedAtMs: s.appliedAtMs,
        raw: s.raw.map((e) => [e.timeMs, e.value ?? null]),
        minutes: [...s.minutes].map(([m, t]) => rawTile(m, t)),
        hours: [...s.hours].map(([h, t]) => rawTile(h, t)),
      });
    }
    const tmp = `${snapshotPath}.tmp`;
    const fd = openSync(tmp, 'w');
    writeSync(fd, JSON.stringify(snap));
    fdatasyncSync(fd);
    closeSync(fd);
    renameSync(tmp, snapshotPath);
    closeSync(journalFd);
    rmSync(join(options.dataDir, `journal.${journalGen}`), { force: true });
    journalGen += 1;
    journalFd = openSync(join(options.dataDir, `journal.${journalGen}`), 'a');
    journalBytes = 0;
  };

  let closed = false;
  return {
    description: `embedded (in memory, journal in ${options.dataDir})`,

    async apply(increments: readonly AggregateIncrement[]): Promise<number> {
      if (closed) throw new Error('aggregate store is closed');
      const line: JournalLine = [];
      for (const { series, partitions } of groupIncrements(increments).values()) {
        const s = all.get(seriesId(series));
        for (const [partition, incs] of partitions) {
          let mark = s?.marks.get(partition) ?? -1;
          for (const inc of incs) {
            const offset = Number(inc.position);
            if (offset <= mark) continue;
            mark = offset;
            line.push([inc.kind, inc.subject, inc.type, partition, offset, inc.timeMs, inc.value ?? null]);
          }
        }
      }
      if (line.length === 0) return 0;
      // Durable first, then visible: a crash in between loses nothing the caller was told.
      const text = `${JSON.stringify(line)}\n`;
      writeSync(journalFd, text);
      fdatasyncSync(journalFd);
      journalBytes += text.length;
      applyLine(line, now());
      if (journalBytes > compactAfter) compact();
      return line.length;
    },

    async read(series: SeriesName, spans) {
      const s = all.get(seriesId(series));
      return spans.map((span) => (s ? spanOf(s, span) : emptyAggregate()));
    },

    // Exact by reading every series of the kind and type: the embedded mode's populations are a
    // laptop's, and the Redis adapter's candidate rankings would only repeat what is here.
    async top(kind, type, span, by, limit) {
      checkRanked(options.rankedTypes ?? 'all', type);
      const ranked: RankedSeries[] = [];
      for (const s of all.values()) {
        if (s.name.kind !== kind || s.name.type !== type) continue;
        const aggregate = spanOf(s, span);
        if (aggregate.count > 0) ranked.push({ subject: s.name.subject, aggregate });
      }
      ranked.sort(
        (a, b) => measureOf(b.aggregate, by) - measureOf(a.aggregate, by) || (a.subject < b.subject ? -1 : 1),
      );
      return ranked.slice(0, limit);
    },

    async ping() {},

    async close() {
      if (closed) return;
      closed = true;
      closeSync(journalFd);
    },
  };
}
