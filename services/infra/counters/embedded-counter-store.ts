/**
 * Counters in the process, for the embedded mode: in memory, made durable by
 * an append-only journal of the increments each `apply` applied (one write and
 * one fdatasync per call), compacted into a snapshot as it grows. Each target keeps the
 * offset of the last event applied per partition, as the Redis adapter does.
 *
 * Files under `dataDir`: `snapshot.json` (state as of journal generation G) and
 * `journal.<n>` for n > G, replayed in order on open. A torn last line (a crash
 * mid-write) is ignored: its `apply` had not returned, so its batch will be
 * redelivered and applied again.
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
import type { CounterIncrement, CounterStore, TypeCounter, TypeLeaders } from './counter-store.ts';

export interface EmbeddedCounterStoreOptions {
  dataDir: string;
  /** Journal size that triggers a snapshot (default 64 MiB). */
  compactAfterBytes?: number;
}

interface Snapshot {
  generation: number;
  /** target → type → [count, sum] */
  counts: Record<string, Record<string, [number, number]>>;
  /** target → partition → offset of the last event applied (absent in a snapshot of an older version) */
  marks?: Record<string, Record<string, number>>;
}

/** One journal line: the increments of partition `p` one apply applied. */
interface JournalEntry {
  p: number;
  inc: [target: string, type: string, offset: number, value: number | null][];
}

export function createEmbeddedCounterStore(options: EmbeddedCounterStoreOptions): CounterStore {
  const compactAfter = options.compactAfterBytes ?? 64 * 1024 * 1024;
  mkdirSync(options.dataDir, { recursive: true });
  const counts = new Map<string, Map<string, { count: number; sum: number }>>();
  /** target → partition → offset of the last event applied */
  const marks = new Map<string, Map<number, number>>();

  const add = (target: string, type: string, value: number | null) => {
    let types = counts.get(target);
    if (!types) {
      types = new Map();
      counts.set(target, types);
    }
    const c = types.get(type) ?? { count: 0, sum: 0 };
    c.count += 1;
    c.sum += value ?? 0;
    types.set(type, c);
  };
  const markOf = (target: string, partition: number) => marks.get(target)?.get(partition) ?? -1;
  const setMark = (target: string, partition: number, offset: number) => {
    let byPartition = marks.get(target);
    if (!byPartition) {
      byPartition = new Map();
      marks.set(target, byPartition);
    }
    byPartition.set(partition, offset);
  };

  // Recover: snapshot, then newer journals in order.
  let generation = 0;
  const snapshotPath = join(options.dataDir, 'snapshot.json');
  try {
    const snap = JSON.parse(readFileSync(snapshotPath, 'utf8')) as Snapshot;
    generation = snap.generation;
    for (const [target, types] of Object.entries(snap.counts)) {
      counts.set(
        target,
        new Map(Object.entries(types).map(([type, [count, sum]]) => [type, { count, sum }])),
      );
    }
    for (const [target, byPartition] of Object.entries(snap.marks ?? {}))
      for (const [partition, offset] of Object.entries(byPartition))
        setMark(target, Number(partition), offset);
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
    for (const line of readFileSync(join(options.dataDir, `journal.${n}`), 'utf8').split('\n')) {
      if (line === '') continue;
      let entry: JournalEntry;
      try {
        entry = JSON.parse(line) as JournalEntry;
      } catch {
        break; // torn tail
      }
      for (const [target, type, offset, value] of entry.inc) {
        add(target, type, value);
        // A line of an older version names event ids instead of offsets: its counts, no mark.
        if (typeof entry.p === 'number' && typeof offset === 'number') setMark(target, entry.p, offset);
      }
    }
  }

  // Start a fresh journal generation after whatever exists.
  let journalGen = Math.max(generation, ...journals) + 1;
  let journalFd = openSync(join(options.dataDir, `journal.${journalGen}`), 'a');
  let journalBytes = 0;

  const compact = () => {
    const snap: Snapshot = { generation: journalGen, counts: {}, marks: {} };
    for (const [target, types] of counts) {
      snap.counts[target] = Object.fromEntries([...types].map(([type, c]) => [type, [c.count, c.sum]]));
    }
    for (const [target, byPartition] of marks) snap.marks![target] = Object.fromEntries(byPartition);
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

    async apply(increments: readonly CounterIncrement[]): Promise<number> {
      if (closed) throw new Error('counter store is closed');
      /** One journal entry per partition, in the order the partitions first appear. */
      const entries = new Map<number, JournalEntry>();
      /** Marks as this call moves them (`target|partition`), before they are made visible. */
      const moved = new Map<string, { target: string; partition: number; offset: number }>();
      let applied = 0;
      for (const inc of increments) {
        const offset = Number(inc.position);
        const key = `${inc.target}|${inc.partition}`;
        const mark = moved.get(key)?.offset ?? markOf(inc.target, inc.partition);
        if (offset <= mark) continue;
        moved.set(key, { target: inc.target, partition: inc.partition, offset });
        let entry = entries.get(inc.partition);
        if (!entry) {
          entry = { p: inc.partition, inc: [] };
          entries.set(inc.partition, entry);
        }
        entry.inc.push([inc.target, inc.type, offset, inc.value ?? null]);
        applied++;
      }
      if (applied === 0) return 0;
      // Durable first, then visible: a crash in between loses nothing the caller was told. A write
      // torn by a crash keeps some whole lines: their marks skip them when the batch comes again.
      let lines = '';
      for (const entry of entries.values()) lines += `${JSON.stringify(entry)}\n`;
      writeSync(journalFd, lines);
      fdatasyncSync(journalFd);
      journalBytes += lines.length;
      for (const entry of entries.values())
        for (const [target, type, , value] of entry.inc) add(target, type, value);
      for (const { target, partition, offset } of moved.values()) setMark(target, partition, offset);
      if (journalBytes > compactAfter) compact();
      return applied;
    },

    async ping(): Promise<void> {},

    async read(target: string): Promise<TypeCounter[]> {
      const types = counts.get(target);
      if (!types) return [];
      return [...types.keys()].sort().map((type) => ({ type, ...types.get(type)! }));
    },

    async top(types: readonly string[], limit: number): Promise<TypeLeaders[]> {
      const boards = new Map<string, { target: string; count: number }[]>();
      for (const type of types) boards.set(type, []);
      for (const [target, byType] of counts) {
        for (const [type, c] of byType) {
          if (types.length > 0 && !boards.has(type)) continue;
          let board = boards.get(type);
          if (!board) {
            board = [];
            boards.set(type, board);
          }
          board.push({ target, count: c.count });
        }
      }
      return [...boards.keys()].sort().map((type) => ({
        type,
        targets: boards
          .get(type)!
          .sort((a, b) => b.count - a.count || (a.target < b.target ? 1 : -1))
          .slice(0, limit),
      }));
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      closeSync(journalFd);
    },
  };
}
