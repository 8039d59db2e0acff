/**
 * Series of threshold and spike rules in the process, for the embedded mode: the same rules as
 * the Redis adapter (marks per partition, closed minutes take nothing, versioned commits,
 * notifications pending until confirmed, idle series forgotten), in memory, made durable by
 * writing the whole state to `series.json` (a temporary file, fdatasync, rename) after each
 * change. Sized for the embedded mode: thousands of series, not millions.
 */
import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  groupBySeries,
  type SeriesCommit,
  type SeriesIncrement,
  type SeriesSnapshot,
  type SeriesStore,
} from './series-store.ts';

interface StoredSeries {
  version: number;
  latestMs: number;
  closedMinute?: number;
  state?: string;
  /** partition → offset of the last event applied (decimal) */
  marks: Record<string, string>;
  /** minute → total */
  totals: Record<string, number>;
  /** id → notification */
  pending: Record<string, string>;
  /** When it is forgotten unless changed again (ms since the epoch). */
  expiresAtMs: number;
}

export interface EmbeddedSeriesStoreOptions {
  dataDir: string;
  /** The clock expiries are measured by (tests move it). */
  now?: () => number;
}

export function createEmbeddedSeriesStore(options: EmbeddedSeriesStoreOptions): SeriesStore {
  const now = options.now ?? Date.now;
  mkdirSync(options.dataDir, { recursive: true });
  const path = join(options.dataDir, 'series.json');
  let stored: Record<string, StoredSeries> = {};
  try {
    stored = JSON.parse(readFileSync(path, 'utf8')) as Record<string, StoredSeries>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const save = () => {
    const at = now();
    for (const [name, s] of Object.entries(stored)) if (s.expiresAtMs <= at) delete stored[name];
    const temporary = `${path}.tmp`;
    const fd = openSync(temporary, 'w');
    try {
      writeSync(fd, JSON.stringify(stored));
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  };
  const live = (series: string): StoredSeries | undefined => {
    const s = stored[series];
    if (s && s.expiresAtMs <= now()) {
      delete stored[series];
      return undefined;
    }
    return s;
  };
  const created = (series: string): StoredSeries => {
    const s: StoredSeries = { version: 0, latestMs: 0, marks: {}, totals: {}, pending: {}, expiresAtMs: 0 };
    stored[series] = s;
    return s;
  };
  const snapshotOf = (series: string, late: number): SeriesSnapshot => {
    const s = live(series);
    return {
      series,
      version: s?.version ?? 0,
      latestMs: s?.latestMs ?? 0,
      ...(s?.closedMinute === undefined ? {} : { closedMinute: s.closedMinute }),
      totals: new Map(Object.entries(s?.totals ?? {}).map(([m, v]) => [Number(m), v])),
      ...(s?.state === undefined ? {} : { state: s.state }),
      pending: new Map(Object.entries(s?.pending ?? {})),
      late,
    };
  };

  return {
    description: `embedded (${path})`,
    async apply(increments: readonly SeriesIncrement[]) {
      const out: SeriesSnapshot[] = [];
      let changed = false;
      for (const [series, group] of groupBySeries(increments)) {
        let s = live(series);
        let late = 0;
        let touched = false;
        for (const increment of group) {
          const mark = s?.marks[increment.partition];
          if (mark !== undefined && increment.offset <= BigInt(mark)) continue;
          s ??= created(series);
          if (s.closedMinute !== undefined && increment.minute <= s.closedMinute) late++;
          else {
            s.totals[increment.minute] = (s.totals[increment.minute] ?? 0) + increment.amount;
            s.latestMs = Math.max(s.latestMs, increment.occurredAtMs);
          }
          s.marks[increment.partition] = increment.offset.toString();
          touched = true;
        }
        if (s && touched) {
          s.version++;
          s.expiresAtMs = now() + group[0]!.ttlMs;
          changed = true;
        }
        out.push(snapshotOf(series, late));
      }
      if (changed) save();
      return out;
    },

    async read(series: readonly string[]) {
      return series.map((s) => snapshotOf(s, 0));
    },

    async commit(commit: SeriesCommit) {
      let s = live(commit.series);
      if ((s?.version ?? 0) !== commit.expectedVersion) return undefined;
      s ??= created(commit.series);
      s.state = commit.state;
      if (s.closedMinute === undefined || commit.closedMinute > s.closedMinute)
        s.closedMinute = commit.closedMinute;
      for (const minute of Object.keys(s.totals))
        if (Number(minute) < commit.keepFromMinute) delete s.totals[minute];
      for (const [id, notification] of commit.notifications) s.pending[id] ??= notification;
      s.version++;
      s.expiresAtMs = now() + commit.ttlMs;
      save();
      return new Map(Object.entries(s.pending));
    },

    async confirm(series: string, ids: readonly string[]) {
      const s = live(series);
      if (!s) return;
      let changed = false;
      for (const id of ids)
        if (id in s.pending) {
          delete s.pending[id];
          changed = true;
        }
      if (changed) save();
    },

    async ping() {},
    async close() {},
  };
}
