/**
 * Injected spikes (`tally simulate --spike post/7:at=60s:x=20:for=30s`): from `at` for `for` of
 * the run's clock, a target gets `x` times its own rate. Each event the scenario makes for the
 * target in that time is followed by x − 1 more of the same type at the same moment, from users
 * drawn at random — so the target's rate is multiplied whatever it was, with no estimate of it.
 * A target the scenario sends nothing to gets no spike. The extra events are deterministic (the
 * run's seed) and have ids of their own (`<event id>-s<k>`).
 */
import { Prng } from './prng.ts';
import type { EventSource, SimEvent } from './sim-event.ts';

export interface Spike {
  target: string;
  /** When it starts, ms from the start of the run. */
  atMs: number;
  /** How many times the target's rate (≥ 2). */
  factor: number;
  /** How long it lasts, ms. */
  forMs: number;
}

/** Why a spike's text is not one, or the spike: `<target>:at=<duration>:x=<factor>:for=<duration>`. */
export function parseSpike(text: string, parseDuration: (text: string) => number): Spike | string {
  const parts = text.split(':');
  // The target may hold colons itself (an URL): the three settings are the last three parts.
  if (parts.length < 4)
    return 'must be <target>:at=<time>:x=<factor>:for=<duration>, e.g. post/7:at=60s:x=20:for=30s';
  const settings = new Map<string, string>();
  for (const part of parts.slice(-3)) {
    const eq = part.indexOf('=');
    if (eq < 0) return `${JSON.stringify(part)} is not <name>=<value> (at, x, for)`;
    const name = part.slice(0, eq);
    if (!['at', 'x', 'for'].includes(name))
      return `${JSON.stringify(name)} is not a spike setting (at, x, for)`;
    if (settings.has(name)) return `${name} is given twice`;
    settings.set(name, part.slice(eq + 1));
  }
  const target = parts.slice(0, -3).join(':');
  if (target === '') return 'names no target';
  for (const name of ['at', 'x', 'for']) if (!settings.has(name)) return `${name}= is missing`;
  const factor = Number(settings.get('x'));
  if (!Number.isInteger(factor) || factor < 2 || factor > 1_000)
    return 'x must be a whole factor from 2 to 1000';
  const at = settings.get('at')!;
  let atMs: number;
  try {
    atMs = /^0+(\.0+)?(ms|s|m|h)?$/.test(at) ? 0 : parseDuration(at);
  } catch (error) {
    return `at: ${(error as Error).message}`;
  }
  let forMs: number;
  try {
    forMs = parseDuration(settings.get('for')!);
  } catch (error) {
    return `for: ${(error as Error).message}`;
  }
  return { target, atMs, factor, forMs };
}

/** `source` with `spikes` injected; `users` is the scenario's user population. */
export function withSpikes(
  source: EventSource,
  spikes: readonly Spike[],
  seed: number,
  users: number,
): EventSource {
  if (spikes.length === 0) return source;
  const prng = new Prng(seed, 9);
  const queued: SimEvent[] = [];
  return {
    next(): SimEvent {
      const waiting = queued.shift();
      if (waiting) return waiting;
      const event = source.next();
      const spike = spikes.find(
        (s) =>
          s.target === event.target && event.modelTimeMs >= s.atMs && event.modelTimeMs < s.atMs + s.forMs,
      );
      if (spike)
        for (let k = 1; k < spike.factor; k++)
          queued.push({ ...event, id: `${event.id}-s${k}`, userId: `user-${1 + prng.int(users)}` });
      return event;
    },
  };
}
