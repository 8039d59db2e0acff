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
 *
 * Hour windows of the leaderboards (type → UTC hour → target → count) and unique users
 * (target → type → a HyperLogLog of all time and one per UTC day, hyperloglog.ts) follow the
 * same applies, journal and snapshot. A window keeps `windowMaxMembers` members, trimmed after
 * each partition's increments as the Redis adapter trims after each script; windows are dropped
 * 50 h after their hour and days' unique users 35 days after the day (on the next apply that
 * touches them, or the next snapshot; reads ignore them from that moment).
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
  type CounterIncrement,
  type CounterStore,
  DEFAULT_WINDOW_MAX_MEMBERS,
  type TypeCounter,
  type TypeLeaders,
  type TypeUniques,
  UNIQUES_RETENTION_MS,
  WINDOW_RETENTION_MS,
} from './counter-store.ts';
import { createHyperLogLog, type HyperLogLog, type RawHyperLogLog } from './hyperloglog.ts';

export interface EmbeddedCounterStoreOptions {
  dataDir: string;
  /** Journal size that triggers a snapshot (default 64 MiB). */
  compactAfterBytes?: number;
  /** Members each hour's leaderboard window keeps (default 1000). */
  windowMaxMembers?: number;
  /** The clock that decides which windows and days are still kept (default Date.now). */
  now?: () => number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** Descending count, ties by target descending: the order Redis's ZREVRANGE gives. */
const byRank = (a: { target: string; count: number }, b: { target: string; count: number }) =>
  b.count - a.count || (a.target < b.target ? 1 : a.target > b.target ? -1 : 0);

interface Snapshot {
  generation: number;
  /** target → type → [count, sum] */
  counts: Record<string, Record<string, [number, number]>>;
  /** target → partition → offset of the last event applied (absent in a snapshot of an older version) */
  marks?: Record<string, Record<string, number>>;
  /** type → hour start (epoch ms) → target → count */
  windows?: Record<string, Record<string, Record<string, number>>>;
  /** target → type → [all time, { day start (epoch ms) → users of the day }] */
  uniques?: Record<string, Record<string, [RawHyperLogLog, Record<string, RawHyperLogLog>]>>;
}

/** One journal line: the increments of partition `p` one apply applied. */
interface JournalEntry {
  p: number;
  /** Time and user are absent in a line of an older version. */
  inc: [
    target: string,
    type: string,
    offset: number,
    value: number | null,
    timeMs?: number | null,
    userId?: string | null,
  ][];
}

export function createEmbeddedCounterStore(options: EmbeddedCounterStoreOptions): CounterStore {
  const compactAfter = options.compactAfterBytes ?? 64 * 1024 * 1024;
  const windowMaxMembers = options.windowMaxMembers ?? DEFAULT_WINDOW_MAX_MEMBERS;
  const now = options.now ?? Date.now;
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
  /** type → hour start → target → count */
  const windows = new Map<string, Map<number, Map<string, number>>>();
  /** target → type → users */
  const uniques = new Map<string, Map<string, { all: HyperLogLog; days: Map<number, HyperLogLog> }>>();
  const windowKept = (hourMs: number, nowMs: number) => hourMs + HOUR_MS + WINDOW_RETENTION_MS > nowMs;
  const dayKept = (dayMs: number, nowMs: number) => dayMs + DAY_MS + UNIQUES_RETENTION_MS > nowMs;

  /** Adds one event to its hour's window; returns the window when it changed. */
  const addToWindow = (type: string, target: string, timeMs: number | null | undefined, nowMs: number) => {
    if (timeMs === null || timeMs === undefined || !Number.isFinite(timeMs)) return undefined;
    const hour = Math.floor(timeMs / HOUR_MS) * HOUR_MS;
    if (!windowKept(hour, nowMs)) return undefined;
    let hours = windows.get(type);
    if (!hours) {
      hours = new Map();
      windows.set(type, hours);
    }
    let window = hours.get(hour);
    if (!window) {
      window = new Map();
      hours.set(hour, window);
    }
    window.set(target, (window.get(target) ?? 0) + 1);
    return window;
  };
  /** Keeps the `windowMaxMembers` highest of `window`: the lowest ranks out, as ZREMRANGEBYRANK does. */
  const trim = (window: Map<string, number>) => {
    if (window.size <= windowMaxMembers) return;
    const ranked = [...window].map(([target, count]) => ({ target, count })).sort(byRank);
    for (const { target } of ranked.slice(windowMaxMembers)) window.delete(target);
  };
  const usersOf = (target: string, type: string) => {
    let types = uniques.get(target);
    if (!types) {
      types = new Map();
      uniques.set(target, types);
    }
    let users = types.get(type);
    if (!users) {
      users = { all: createHyperLogLog(), days: new Map() };
      types.set(type, users);
    }
    return users;
  };
  const addUser = (
    target: string,
    type: string,
    userId: string | null | undefined,
    timeMs: number | null | undefined,
    nowMs: number,
  ) => {
    if (!userId) return;
    const users = usersOf(target, type);
    users.all.add(userId);
    for (const day of users.days.keys()) if (!dayKept(day, nowMs)) users.days.delete(day);
    if (timeMs === null || timeMs === undefined || !Number.isFinite(timeMs)) return;
    const day = Math.floor(timeMs / DAY_MS) * DAY_MS;
    if (!dayKept(day, nowMs)) return;
    let hll = users.days.get(day);
    if (!hll) {
      hll = createHyperLogLog();
      users.days.set(day, hll);
    }
    hll.add(userId);
  };
  /** Applies one journal entry's increments to the windows and unique users. */
  const addWindowsAndUsers = (entry: JournalEntry, nowMs: number) => {
    const touched = new Set<Map<string, number>>();
    for (const [target, type, , , timeMs, userId] of entry.inc) {
      const window = addToWindow(type, target, timeMs, nowMs);
      if (window) touched.add(window);
      addUser(target, type, userId, timeMs, nowMs);
    }
    for (const window of touched) trim(window);
  };
  const dropExpiredWindows = (nowMs: number) => {
    for (const hours of windows.values())
      for (const hour of hours.keys()) if (!windowKept(hour, nowMs)) hours.delete(hour);
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
    for (const [type, hours] of Object.entries(snap.windows ?? {}))
      windows.set(
        type,
        new Map(
          Object.entries(hours).map(([hour, members]) => [Number(hour), new Map(Object.entries(members))]),
        ),
      );
    for (const [target, types] of Object.entries(snap.uniques ?? {}))
      for (const [type, [all, days]] of Object.entries(types)) {
        const users = usersOf(target, type);
        users.all = createHyperLogLog(all);
        for (const [day, raw] of Object.entries(days)) users.days.set(Number(day), createHyperLogLog(raw));
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
      addWindowsAndUsers(entry, now());
    }
  }
  dropExpiredWindows(now());

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
    const nowMs = now();
    dropExpiredWindows(nowMs);
    snap.windows = {};
    for (const [type, hours] of windows)
      snap.windows[type] = Object.fromEntries(
        [...hours].map(([hour, members]) => [hour, Object.fromEntries(members)]),
      );
    snap.uniques = {};
    for (const [target, types] of uniques) {
      const byType: NonNullable<Snapshot['uniques']>[string] = {};
      for (const [type, { all, days }] of types)
        byType[type] = [
          all.toJSON(),
          Object.fromEntries(
            [...days].filter(([day]) => dayKept(day, nowMs)).map(([day, hll]) => [day, hll.toJSON()]),
          ),
        ];
      snap.uniques[target] = byType;
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
        entry.inc.push([
          inc.target,
          inc.type,
          offset,
          inc.value ?? null,
          inc.timeMs ?? null,
          inc.userId || null,
        ]);
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
      const nowMs = now();
      for (const entry of entries.values()) {
        for (const [target, type, , value] of entry.inc) add(target, type, value);
        addWindowsAndUsers(entry, nowMs);
      }
      for (const { target, partition, offset } of moved.values()) setMark(target, partition, offset);
      dropExpiredWindows(nowMs);
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

    async topWindow(
      types: readonly string[],
      hours: readonly number[],
      limit: number,
    ): Promise<TypeLeaders[]> {
      const nowMs = now();
      const wanted =
        types.length > 0 ? new Set(types) : new Set([...counts.values()].flatMap((t) => [...t.keys()]));
      return [...wanted].sort().map((type) => {
        const union = new Map<string, number>();
        for (const hour of new Set(hours)) {
          if (!windowKept(hour, nowMs)) continue;
          for (const [target, count] of windows.get(type)?.get(hour) ?? [])
            union.set(target, (union.get(target) ?? 0) + count);
        }
        return {
          type,
          targets: [...union]
            .map(([target, count]) => ({ target, count }))
            .sort(byRank)
            .slice(0, limit),
        };
      });
    },

    async uniques(target: string, types: readonly string[], dayStartMs: number): Promise<TypeUniques[]> {
      const wanted = types.length > 0 ? new Set(types) : new Set(counts.get(target)?.keys() ?? []);
      const kept = dayKept(dayStartMs, now());
      return [...wanted].sort().map((type) => {
        const users = uniques.get(target)?.get(type);
        const day = kept ? users?.days.get(dayStartMs) : undefined;
        return { type, day: day?.count() ?? 0, allTime: users?.all.count() ?? 0 };
      });
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      closeSync(journalFd);
    },
  };
}
