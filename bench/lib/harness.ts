/**
 * What every phase of the benchmark harness (bench/bench.ts) works with: the run (`Bench`: its
 * plan, deployment, CPU sampler and results), its progress lines, the processes it starts besides
 * the roles (by CPU group), CPU windows, and restarting the ingest path with other settings.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Plan } from '../plan.ts';
import { COMPILE_CACHE, type Deployment, type Namespace, type Role } from './deployment.ts';
import { type CpuSampler, type CpuUse, MULTI_THREADED } from './proc.ts';
import type { Results } from './results.ts';
import type { SeedResult } from './seed-report.ts';

export const repo = join(import.meta.dirname, '..', '..');

/** One run of the harness, handed to each phase. */
export interface Bench {
  readonly plan: Plan;
  /** Where k6 summaries and outputs go. */
  readonly rawDir: string;
  /** The k6 binary. */
  readonly k6: string;
  readonly ns: Namespace;
  readonly deployment: Deployment;
  readonly sampler: CpuSampler;
  /** Filled in by the phases; rendered as bench/RESULTS.md. */
  readonly results: Results;
  /** Writes a progress line to stderr, stamped with the run's elapsed time. */
  progress(line: string): void;
  /** The plan's time budget is spent: searches stop stepping. */
  outOfTime(): boolean;
  /** The summaries GetReport reads, once the seed phase ran. */
  seed?: SeedResult;
}

export const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The processes the harness starts besides the roles, by CPU group.

export const children = new Map<string, Set<number>>();
export function track(group: string, child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  const set = children.get(group) ?? new Set<number>();
  children.set(group, set);
  set.add(pid);
  child.once('exit', () => set.delete(pid));
}

/**
 * Runs a Node script of the harness as a process of its own; resolves with its first stdout
 * line, and `next()` waits for each later one.
 */
export async function spawnNode(
  group: string,
  script: string,
  scriptArgs: string[],
): Promise<{ child: ChildProcess; first: string; next: () => Promise<string>; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, [join(repo, script), ...scriptArgs], {
    cwd: repo,
    env: { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(group, child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = once(child, 'exit');
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await lines.next();
    if (line.done) {
      const [code] = (await exited) as [number | null];
      throw new Error(`${script} exited with ${code}: ${stderr.slice(-2000)}`);
    }
    return line.value;
  };
  return { child, first: await next(), next, exited };
}

// ---------------------------------------------------------------------------------------------

/** CPU over a window inside a load: from `delayMs` after now for `lengthMs`. */
export function cpuWindow(b: Bench, delayMs: number, lengthMs: number): () => Promise<CpuUse> {
  const { sampler } = b;
  let from = 0;
  let to = 0;
  const done = (async () => {
    await sleep(delayMs);
    from = sampler.sample();
    await sleep(Math.max(200, lengthMs));
    to = sampler.sample();
  })();
  return async (): Promise<CpuUse> => {
    await done;
    return sampler.use(from, to);
  };
}

/** Each group's share of a core, and the ones that waited for a core. */
export function describeCpu(cpu: CpuUse, groups: string[]): string {
  const waits = groups
    .filter((g) => !MULTI_THREADED.has(g) && (cpu.waitByGroup[g] ?? 0) >= 1)
    .map((g) => `${g} ${fmt(cpu.waitByGroup[g]!)}%`);
  return (
    `${groups.map((g) => `${g} ${fmt(cpu.byGroup[g] ?? 0)}%`).join(', ')}, other ${fmt(cpu.otherPct)}%, machine ${fmt(cpu.machineBusyPct)}% busy` +
    (waits.length > 0 ? `; waiting for a core: ${waits.join(', ')}` : '')
  );
}

/**
 * Restarts ingest and the gateway with `env` over the deployment's variables, side by side
 * (the gateway reaches ingest lazily, at its port that a restart keeps).
 */
export async function restartIngestPath({ deployment }: Bench, env: Record<string, string>): Promise<void> {
  await Promise.all([deployment.stop('gateway'), deployment.stop('ingest')]);
  await Promise.all([deployment.start('ingest', env), deployment.start('gateway', env)]);
}

/** Fails unless the role's start-up log has a line with every one of `parts` (say, its Kafka adapter). */
export function expectLogged({ deployment }: Bench, role: Role, parts: string[], what: string): void {
  const lines = deployment.roles.get(role)?.proc.lines ?? [];
  if (!lines.some((line) => parts.every((part) => line.includes(part))))
    throw new Error(`${role} did not log ${what}:\n${lines.slice(-10).join('\n')}`);
}
