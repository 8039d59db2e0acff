/**
 * Counters in the process, for the embedded mode: in memory, made durable by
 * an append-only journal of the increments each `apply` made new (one write and
 * one fdatasync per call), compacted into a snapshot as it grows.
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
  dedupWindowMs: number;
  /** Journal size that triggers a snapshot (default 64 MiB). */
  compactAfterBytes?: number;
  /** Epoch ms; injectable for tests. */
  now?: () => number;
}

interface Snapshot {
  generation: number;
  /** target → type → [count, sum] */
  counts: Record<string, Record<string, [number, number]>>;
  /** `${target}\0${id}` → expiry epoch ms */
  markers: Record<string, number>;
}

/** One journal line: the new increments of one apply. */
interface JournalEntry {
  at: number;
  inc: [target: string, type: string, id: string, value: number | null][];
}

export function createEmbeddedCounterStore(options: EmbeddedCounterStoreOptions): CounterStore {
  const now = options.now ?? Date.now;
  const compactAfter = options.compactAfterBytes ?? 64 * 1024 * 1024;
  mkdirSync(options.dataDir, { recursive: true });
  const counts = new Map<string, Map<string, { count: number; sum: number }>>();
  const markers = new Map<string, number>();

  const markerKey = (target: string, id: string) => `${target}\u0000${id}`;
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
    for (const [key, expiry] of Object.entries(snap.markers)) markers.set(key, expiry);
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
      for (const [target, type, id, value] of entry.inc) {
        add(target, type, value);
        markers.set(markerKey(target, id), entry.at + options.dedupWindowMs);
      }
    }
  }
  const expire = () => {
    const t = now();
    for (const [key, expiry] of markers) if (expiry <= t) markers.delete(key);
  };
  expire();

  // Start a fresh journal generation after whatever exists.
  let journalGen = Math.max(generation, ...journals) + 1;
  let journalFd = openSync(join(options.dataDir, `journal.${journalGen}`), 'a');
  let journalBytes = 0;
  let lastExpiry = now();

  const compact = () => {
    expire();
    const snap: Snapshot = { generation: journalGen, counts: {}, markers: Object.fromEntries(markers) };
    for (const [target, types] of counts) {
      snap.counts[target] = Object.fromEntries([...types].map(([type, c]) => [type, [c.count, c.sum]]));
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

    async apply(increments: readonly CounterIncrement[]): Promise<number> {
      if (closed) throw new Error('counter store is closed');
      const at = now();
      if (at - lastExpiry > 60_000) {
        expire();
        lastExpiry = at;
      }
      const entry: JournalEntry = { at, inc: [] };
      const seen = new Set<string>();
      for (const inc of increments) {
        const key = markerKey(inc.target, inc.eventId);
        const expiry = markers.get(key);
        if ((expiry !== undefined && expiry > at) || seen.has(key)) continue;
        seen.add(key);
        entry.inc.push([inc.target, inc.type, inc.eventId, inc.value ?? null]);
      }
      if (entry.inc.length === 0) return 0;
      // Durable first, then visible: a crash in between loses nothing the caller was told.
      const line = `${JSON.stringify(entry)}\n`;
      writeSync(journalFd, line);
      fdatasyncSync(journalFd);
      journalBytes += line.length;
      for (const [target, type, id, value] of entry.inc) {
        add(target, type, value);
        markers.set(markerKey(target, id), at + options.dedupWindowMs);
      }
      if (journalBytes > compactAfter) compact();
      return entry.inc.length;
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
