/**
 * Milestone counts in the process, for the embedded mode: the same rules as the Redis adapter
 * (marks per partition, thresholds claimed once, pending until confirmed), in memory, made
 * durable by writing the whole state to `milestones.json` (a temporary file, fdatasync, rename)
 * after each change. Sized for the embedded mode: a state of thousands of series, not millions.
 */
import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  bySeries,
  type MilestoneCrossing,
  type MilestoneIncrement,
  type MilestoneStore,
} from './milestone-store.ts';

interface SeriesState {
  count: number;
  notifiedUpTo: number;
  /** partition → offset of the last event applied (decimal) */
  marks: Record<string, string>;
  /** threshold → the count when it was crossed */
  pending: Record<string, number>;
}

export interface EmbeddedMilestoneStoreOptions {
  dataDir: string;
}

export function createEmbeddedMilestoneStore(options: EmbeddedMilestoneStoreOptions): MilestoneStore {
  mkdirSync(options.dataDir, { recursive: true });
  const path = join(options.dataDir, 'milestones.json');
  let state: Record<string, SeriesState> = {};
  try {
    state = JSON.parse(readFileSync(path, 'utf8')) as Record<string, SeriesState>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const save = () => {
    const temporary = `${path}.tmp`;
    const fd = openSync(temporary, 'w');
    try {
      writeSync(fd, JSON.stringify(state));
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  };
  const pendingOf = (series: string, s: SeriesState): MilestoneCrossing[] =>
    Object.entries(s.pending)
      .map(([threshold, count]) => ({ series, threshold: Number(threshold), count }))
      .sort((a, b) => a.threshold - b.threshold);

  return {
    description: `embedded (${path})`,
    async apply(increments: readonly MilestoneIncrement[]): Promise<MilestoneCrossing[]> {
      const out: MilestoneCrossing[] = [];
      let changed = false;
      for (const [series, group] of bySeries(increments)) {
        let s = state[series];
        if (s === undefined) {
          s = { count: 0, notifiedUpTo: 0, marks: {}, pending: {} };
          state[series] = s;
        }
        for (const increment of group) {
          const mark = s.marks[increment.partition];
          if (mark !== undefined && increment.offset <= BigInt(mark)) continue;
          s.count += increment.amount;
          s.marks[increment.partition] = increment.offset.toString();
          changed = true;
        }
        for (const t of group[0]!.thresholds)
          if (t > s.notifiedUpTo && t <= s.count) {
            s.pending[t] = s.count;
            s.notifiedUpTo = t;
            changed = true;
          }
        out.push(...pendingOf(series, s));
      }
      if (changed) save();
      return out;
    },

    async confirm(crossings: readonly MilestoneCrossing[]): Promise<void> {
      let changed = false;
      for (const c of crossings) {
        const s = state[c.series];
        if (s && c.threshold in s.pending) {
          delete s.pending[c.threshold];
          changed = true;
        }
      }
      if (changed) save();
    },

    async inspect(series: string) {
      const s = state[series];
      if (!s) return { count: 0, notifiedUpTo: 0, pending: [] };
      return {
        count: s.count,
        notifiedUpTo: s.notifiedUpTo,
        pending: pendingOf(series, s).map((c) => c.threshold),
      };
    },

    async ping(): Promise<void> {},
    async close(): Promise<void> {},
  };
}
