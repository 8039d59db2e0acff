/**
 * Reads the V8 CPU profiles a role writes when started with `--cpu-prof` (a `.cpuprofile` file
 * at exit, named after its pid) and attributes their samples: which share of a process's busy
 * samples, inside a window of time, ran in given code (prom-client and services/infra/metrics.ts
 * for the cost of metrics).
 *
 * A profile's times are microseconds of the monotonic clock, the one `process.hrtime` reads on
 * Linux: `monotonicMicros` turns the harness's wall-clock windows into it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The parts of a `.cpuprofile` (the DevTools protocol's Profiler.Profile) used here. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  /** µs, monotonic clock. */
  startTime: number;
  endTime: number;
  /** The node running at each sample, and the µs since the previous sample. */
  samples: number[];
  timeDeltas: number[];
}

/** Which code counts: a test of a frame's script URL, by name. */
export type FrameMatchers = Record<string, (url: string) => boolean>;

export interface Attribution {
  /** Samples inside the window. */
  samples: number;
  /** Of those, the ones not idle (`(idle)`: waiting for I/O; GC and `(program)` count as busy). */
  busy: number;
  /** Per matcher, the busy samples whose running frame (self time) it matched. */
  self: Record<string, number>;
  /** Busy samples with a frame of any matcher anywhere on the stack. */
  inclusive: number;
}

/** The monotonic-clock µs of a wall-clock time (epoch ms) of this process's recent past or near future. */
export function monotonicMicros(epochMs: number): number {
  const nowMono = Number(process.hrtime.bigint() / 1000n);
  return nowMono - (Date.now() - epochMs) * 1000;
}

/**
 * Attributes the samples of `profile` taken between `fromUs` and `toUs` (monotonic µs; the whole
 * profile when left out) to `matchers`.
 */
export function attribute(
  profile: CpuProfile,
  matchers: FrameMatchers,
  fromUs = Number.NEGATIVE_INFINITY,
  toUs = Number.POSITIVE_INFINITY,
): Attribution {
  const names = Object.keys(matchers);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  /** Per node: the matcher of its own frame, if any. */
  const own = new Map<number, string | undefined>();
  for (const n of profile.nodes)
    own.set(
      n.id,
      names.find((name) => matchers[name]!(n.callFrame.url)),
    );
  /** Per node: whether a frame of a matcher is on its stack (memoised up the tree). */
  const onStack = new Map<number, boolean>();
  const stackMatches = (id: number): boolean => {
    const known = onStack.get(id);
    if (known !== undefined) return known;
    const up = parent.get(id);
    const result = own.get(id) !== undefined || (up !== undefined && stackMatches(up));
    onStack.set(id, result);
    return result;
  };
  const out: Attribution = {
    samples: 0,
    busy: 0,
    self: Object.fromEntries(names.map((n) => [n, 0])),
    inclusive: 0,
  };
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (at < fromUs || at > toUs) continue;
    const id = profile.samples[i]!;
    out.samples++;
    if (byId.get(id)?.callFrame.functionName === '(idle)') continue;
    out.busy++;
    const name = own.get(id);
    if (name !== undefined) out.self[name]!++;
    if (stackMatches(id)) out.inclusive++;
  }
  return out;
}

/** The profile process `pid` wrote into `dir` (`CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`). */
export function readProfileOf(dir: string, pid: number): CpuProfile | undefined {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const name = names.find((n) => n.endsWith('.cpuprofile') && n.split('.')[3] === String(pid));
  return name ? (JSON.parse(readFileSync(join(dir, name), 'utf8')) as CpuProfile) : undefined;
}

/** The code of metrics: prom-client, and the project's module of instruments. */
export const METRICS_CODE: FrameMatchers = {
  promClient: (url) => url.includes('/node_modules/prom-client/'),
  metricsModule: (url) => url.endsWith('/services/infra/metrics.ts'),
};
