/**
 * What limits a figure, from the CPU of the step that shows it; and whether a search found its
 * maximum (a step above the best one failed) or only a lower bound.
 */
import { micros, num, pct } from './format.ts';
import { type CpuUse, MULTI_THREADED } from './proc.ts';

/** The groups that are Node.js processes: their JavaScript runs on one thread. */
const NODE_GROUPS = new Set([
  'gateway',
  'ingest',
  'query',
  'persister',
  'counter',
  'aggregator',
  'alerter',
  'projector',
  'router',
  'sender',
  'receiver',
  'simulator',
  'bare-http',
  'raw-producer',
  'harness',
]);

/** A sentence on where the CPU went during `cpu`, naming saturated processes. */
export function cpuEvidence(cpu: CpuUse | undefined, where: string): string {
  if (!cpu || cpu.seconds === 0) return `${where}: no CPU sample.`;
  const top = Object.entries(cpu.byGroup)
    .filter(([, v]) => v >= 3)
    .sort((a, b) => b[1] - a[1]);
  const parts = top.map(([g, v]) => `${g} ${pct(v)}`);
  if (cpu.otherPct >= 3) parts.push(`other work on the machine ${pct(cpu.otherPct)}`);
  const saturated = top.filter(([g, v]) => NODE_GROUPS.has(g) && v >= 85).map(([g, v]) => `${g} (${pct(v)})`);
  const machineFull = cpu.machineBusyPct >= 90;
  const sentences = [
    `${where}, the machine was ${pct(cpu.machineBusyPct)} busy (${cpu.cores} cores; CPU in % of one core: ${parts.join(', ') || 'nothing above 3 %'}).`,
  ];
  if (saturated.length > 0)
    sentences.push(
      `${saturated.join(' and ')} ran at about a full core: a Node.js process does its JavaScript on one thread, so ${saturated.length > 1 ? 'these processes were' : 'this process was'} saturated.`,
    );
  if (machineFull)
    sentences.push(
      'Both cores were busy: the processes of the path, the load generator and any other work competed for CPU, so the figure is bounded by the machine rather than by one component.',
    );
  const k6 = cpu.byGroup.k6 ?? 0;
  const sim = cpu.byGroup.simulator ?? 0;
  if (k6 >= 50 || sim >= 50)
    sentences.push(
      `The load generator itself took ${pct(Math.max(k6, sim))} of a core on the same machine: on separate load machines the service would get that CPU too.`,
    );
  const waited = Object.entries(cpu.waitByGroup ?? {})
    .filter(([g, v]) => v >= 5 && !MULTI_THREADED.has(g) && (cpu.byGroup[g] ?? 0) >= 10)
    .sort((a, b) => b[1] - a[1]);
  if (waited.length > 0)
    sentences.push(
      `Main threads runnable but waiting for a core (the run queue, % of the step): ${waited.map(([g, v]) => `${g} ${pct(v)}`).join(', ')}: time lost to CPU contention, which shows as latency before any process saturates.`,
    );
  if (!machineFull && saturated.length === 0 && waited.length === 0)
    sentences.push(
      'Neither a process nor the machine was saturated on average over the step: the limit lies in waits (on the servers, the batching linger) and in stalls shorter than the CPU samples.',
    );
  else if (!machineFull && saturated.length === 0)
    sentences.push(
      `No process was saturated on average, but with ${pct(cpu.machineBusyPct)} of two cores busy the processes of the path queue for a core, and latency grows before throughput tops out.`,
    );
  return sentences.join(' ');
}

/**
 * CPU per event of each process at a steady step, and the rate a full core of this machine
 * would give that process alone (a Node.js process runs its JavaScript on one thread).
 */
export function costEvidence(
  cpu: CpuUse | undefined,
  perSecond: number | undefined,
  groups: string[],
  unit = 'event',
): string {
  if (!cpu || !(perSecond && perSecond > 0)) return '';
  const parts = groups
    .filter((g) => (cpu.byGroup[g] ?? 0) > 0.5)
    .map((g) => {
      const us = (cpu.byGroup[g]! / 100 / perSecond) * 1e6;
      return `${g} ${micros(us)} (a full core: about ${num(1e6 / us)}/s)`;
    });
  return parts.length === 0 ? '' : `CPU per ${unit} at ${num(perSecond)}/s: ${parts.join(', ')}.`;
}

/** The step above the best one (where the series broke), else the best, else the last. */
export function breakingStep<S extends { passed: boolean; rate: number }>(
  steps: S[],
  best: S | undefined,
): S | undefined {
  if (best) return steps.find((s) => !s.passed && s.rate > best.rate) ?? best;
  return steps.at(-1);
}

/** Did some step above the best one fail, i.e. was the maximum found rather than only bounded below? */
export function saturated<S extends { passed: boolean; rate: number }>(
  steps: S[],
  best: S | undefined,
): boolean {
  return best !== undefined && steps.some((s) => !s.passed && s.rate > best.rate);
}

/** Where a series' figure comes from: the step that broke it, or the highest one when none did. */
export function stepEvidence<S extends { passed: boolean; rate: number; why: string; cpu: CpuUse }>(
  steps: S[],
  best: S | undefined,
  offered: (s: S) => string,
): string | undefined {
  const step = breakingStep(steps, best);
  if (!step) return undefined;
  if (best && !saturated(steps, best))
    return `No step failed: the steps stopped at ${offered(step)} (their number or the run's time budget), so the figure is a lower bound, not the maximum. ${cpuEvidence(step.cpu, `At ${offered(step)}`)}`;
  return cpuEvidence(
    step.cpu,
    `At ${offered(step)} (${step.passed ? 'the highest step' : `the step that broke: ${step.why}`})`,
  );
}

/** " (lower bound: no step failed)" when the series never broke. */
export function boundNote<S extends { passed: boolean; rate: number }>(
  steps: S[],
  best: S | undefined,
): string {
  return best && !saturated(steps, best) ? ' (lower bound: no step failed)' : '';
}

/** A search's maximum, and whether it is only a lower bound. */
export function maximum<S extends { passed: boolean; rate: number; achievedEvents: number }>(
  series: { steps: S[]; best?: S } | undefined,
): { value: number | undefined; bound: boolean } {
  const best = series?.best;
  return { value: best?.achievedEvents, bound: best !== undefined && !saturated(series!.steps, best) };
}
