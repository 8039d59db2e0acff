/**
 * CPU accounting from /proc: per-process CPU time, process trees, the process listening on a
 * port, and the machine's busy time. Sampled once a second by `CpuSampler`, so that a step's
 * CPU use per process is the difference between two samples inside the step.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`, 100 on Linux). */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface Stat {
  ppid: number;
  /** user + system CPU, in clock ticks. */
  ticks: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
}

/** CPU seconds (user + system) `pid` used so far; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  const stat = readStat(pid);
  return stat && stat.ticks / clockTicks();
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/**
 * Seconds `pid`'s main thread has spent runnable but waiting for a core (the run queue), from
 * /proc/<pid>/task/<pid>/schedstat; undefined when unavailable. For a Node.js process this is the
 * JavaScript thread: time it wanted the CPU and did not get it.
 */
export function runQueueSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    const ns = Number(fields[1]);
    return Number.isFinite(ns) ? ns / 1e9 : undefined;
  } catch {
    return undefined;
  }
}

/** `pid` and every process below it (PostgreSQL's backends are children of the postmaster). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of allPids()) {
    const stat = readStat(p);
    if (!stat) continue;
    const list = children.get(stat.ppid);
    if (list) list.push(p);
    else children.set(stat.ppid, [p]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    out.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return out;
}

/** The process listening on TCP `port` (any local address), found through its socket's inode. */
export function pidListeningOn(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      if (!local || cols[3] !== '0A') continue; // 0A: LISTEN
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(cols[9]!);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const pid of allPids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        const m = /^socket:\[(\d+)\]$/.exec(link);
        if (m && inodes.has(m[1]!)) return pid;
      } catch {}
    }
  }
  return undefined;
}

/** The machine's CPU time so far, in seconds summed over cores: busy (not idle or iowait) and total. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: (total - idle) / clockTicks(), total: total / clockTicks() };
}

/** A process (or a tree of them) whose CPU is reported under `name`. */
/** Groups whose main thread is not where their work runs (the JVM, Go, PostgreSQL's many backends). */
export const MULTI_THREADED = new Set(['kafka', 'k6', 'postgres']);

export interface CpuGroup {
  name: string;
  /** The pids to account now (called at every sample; may change as processes come and go). */
  pids(): number[];
}

interface Sample {
  atMs: number;
  machineBusy: number;
  machineTotal: number;
  /** CPU seconds per pid, per group. */
  groups: Map<string, Map<number, number>>;
  /** Run-queue seconds of each pid's main thread, per group. */
  waits: Map<string, Map<number, number>>;
}

/** CPU use over a window: percent of one core per group (100 = one core busy), and the machine's. */
export interface CpuUse {
  /** Percent of one core, per group, over the window. */
  byGroup: Record<string, number>;
  /** Busy percent of the whole machine (100 = every core busy). */
  machineBusyPct: number;
  /** Cores of the machine. */
  cores: number;
  /** Percent of one core used by processes in no group (other work on the machine). */
  otherPct: number;
  /**
   * Percent of the window each group's main threads spent waiting for a core (summed over the
   * group's processes): CPU contention, as the processes felt it.
   */
  waitByGroup: Record<string, number>;
  seconds: number;
}

/**
 * Samples every group's CPU time once a second (and on demand); `use(from, to)` gives each
 * group's share between the first sample at or after `from` and the last at or before `to`.
 */
export class CpuSampler {
  readonly #groups = new Map<string, CpuGroup>();
  readonly #samples: Sample[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #cores: number;

  constructor(cores: number) {
    this.#cores = cores;
  }

  add(group: CpuGroup): void {
    this.#groups.set(group.name, group);
  }

  remove(name: string): void {
    this.#groups.delete(name);
  }

  start(intervalMs = 1000): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Takes a sample now; returns its time. */
  sample(): number {
    const machine = machineCpu();
    const groups = new Map<string, Map<number, number>>();
    const waits = new Map<string, Map<number, number>>();
    for (const group of this.#groups.values()) {
      const perPid = new Map<number, number>();
      const waitPerPid = new Map<number, number>();
      let pids: number[] = [];
      try {
        pids = group.pids();
      } catch {}
      for (const pid of pids) {
        const s = cpuSeconds(pid);
        if (s !== undefined) perPid.set(pid, s);
        const w = runQueueSeconds(pid);
        if (w !== undefined) waitPerPid.set(pid, w);
      }
      groups.set(group.name, perPid);
      waits.set(group.name, waitPerPid);
    }
    const atMs = Date.now();
    this.#samples.push({ atMs, machineBusy: machine.busy, machineTotal: machine.total, groups, waits });
    // A run takes well under an hour: keep the last hour of samples (at two a second).
    if (this.#samples.length > 7200) this.#samples.shift();
    return atMs;
  }

  /** CPU use between `fromMs` and `toMs` (take a `sample()` at both ends for exact windows). */
  use(fromMs: number, toMs: number): CpuUse {
    const inside = this.#samples.filter((s) => s.atMs >= fromMs && s.atMs <= toMs);
    const first = inside[0];
    const last = inside[inside.length - 1];
    const empty = {
      byGroup: {},
      machineBusyPct: 0,
      cores: this.#cores,
      otherPct: 0,
      waitByGroup: {},
      seconds: 0,
    };
    if (!first || !last || last === first) return empty;
    const seconds = (last.atMs - first.atMs) / 1000;
    const byGroup: Record<string, number> = {};
    const waitByGroup: Record<string, number> = {};
    let ours = 0;
    for (const name of last.groups.keys()) {
      const used = grown(inside, (s) => s.groups.get(name));
      byGroup[name] = (used / seconds) * 100;
      waitByGroup[name] = (grown(inside, (s) => s.waits.get(name)) / seconds) * 100;
      ours += used;
    }
    const busy = last.machineBusy - first.machineBusy;
    const total = last.machineTotal - first.machineTotal;
    return {
      byGroup,
      machineBusyPct: total > 0 ? (busy / total) * 100 : 0,
      cores: this.#cores,
      otherPct: Math.max(0, ((busy - ours) / seconds) * 100),
      waitByGroup,
      seconds,
    };
  }
}

/**
 * How much a per-pid counter grew over the samples, summed over pids: a pid counts from its
 * first sample in the window to its last (processes come and go inside a window).
 */
function grown(samples: Sample[], of: (s: Sample) => Map<number, number> | undefined): number {
  const firstSeen = new Map<number, number>();
  const lastSeen = new Map<number, number>();
  for (const s of samples)
    for (const [pid, value] of of(s) ?? []) {
      if (!firstSeen.has(pid)) firstSeen.set(pid, value);
      lastSeen.set(pid, value);
    }
  let total = 0;
  for (const [pid, value] of lastSeen) total += value - firstSeen.get(pid)!;
  return total;
}
