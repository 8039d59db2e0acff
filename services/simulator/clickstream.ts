/**
 * clickstream: shoppers browsing `https://shop.example/p/<n>`. Sessions start as a Poisson
 * process; in a session a user VIEWs a page (Zipf popularity, s = 1.1), sometimes CLICKs on
 * it a few seconds later, thinks (log-normal, median 10 s), and goes on to another page with
 * probability 0.8 (5 views per session on average). Several sessions may overlap.
 */
import { EntityHash, Prng } from './prng.ts';
import type { EventSource, ScenarioOptions, SimEvent } from './sim-event.ts';
import { TimeQueue } from './time-queue.ts';
import { ZipfSampler } from './zipf.ts';

export const CLICKSTREAM = Object.freeze({
  pageZipfExponent: 1.1,
  /** Probability of another page after each page (geometric session length, mean 1 / (1 - p)). */
  continueProbability: 0.8,
  /** Probability of a CLICK after a VIEW. */
  clickProbability: 0.25,
  thinkMedianMs: 10_000,
  thinkSigma: 1.0,
  clickDelayMedianMs: 3_000,
  clickDelaySigma: 0.7,
  /** Warm-up length in mean session durations, and its bound in model steps. */
  warmUpSessions: 3,
  warmUpMaxSteps: 250_000,
});

const ELEMENTS = [
  ['add_to_cart', 4],
  ['image', 3],
  ['related_product', 2],
  ['reviews', 1],
  ['buy_now', 1],
] as const;

interface Session {
  number: number;
  user: number;
  page: number;
}

interface Step {
  session: Session;
  type: 'VIEW' | 'CLICK';
}

const SALT_IP = 0x1b873593;

export function createClickstream(options: ScenarioOptions): EventSource {
  const c = CLICKSTREAM;
  const prng = new Prng(options.seed, 1);
  const hash = new EntityHash(options.seed);
  const pages = new ZipfSampler(options.targets, c.pageZipfExponent);
  const viewsPerSession = 1 / (1 - c.continueProbability);
  const eventsPerSession = viewsPerSession * (1 + c.clickProbability);
  // Sessions arrive at rate / (events per session), so events arrive at `rate` in steady state.
  const meanSessionGapMs = (1000 * eventsPerSession) / options.ratePerSecond;
  const meanThinkMs = c.thinkMedianMs * Math.exp(c.thinkSigma ** 2 / 2);
  const meanClickDelayMs = c.clickDelayMedianMs * Math.exp(c.clickDelaySigma ** 2 / 2);
  const meanSessionMs =
    (viewsPerSession - 1) * meanThinkMs + viewsPerSession * c.clickProbability * meanClickDelayMs;

  const queue = new TimeQueue<Step>();
  let sessions = 0;
  let sequence = 0;
  const warmUp = options.warmUp ?? true;
  let nextSessionAtMs = warmUp ? -c.warmUpSessions * meanSessionMs : 0;
  nextSessionAtMs += prng.exponential(meanSessionGapMs);

  /** Advances the model by one event: which session does what, when. */
  const step = (): { atMs: number; step: Step } => {
    let atMs: number;
    let current: Step;
    if (nextSessionAtMs <= queue.peekTime()) {
      atMs = nextSessionAtMs;
      nextSessionAtMs += prng.exponential(meanSessionGapMs);
      current = { session: { number: ++sessions, user: 1 + prng.int(options.users), page: 0 }, type: 'VIEW' };
    } else {
      const popped = queue.pop()!;
      atMs = popped.atMs;
      current = popped.item;
    }
    const { session } = current;
    if (current.type === 'VIEW') {
      session.page = pages.sample(prng);
      if (prng.chance(c.clickProbability))
        queue.push(atMs + prng.logNormal(c.clickDelayMedianMs, c.clickDelaySigma), {
          session,
          type: 'CLICK',
        });
      else if (prng.chance(c.continueProbability))
        queue.push(atMs + prng.logNormal(c.thinkMedianMs, c.thinkSigma), { session, type: 'VIEW' });
    } else if (prng.chance(c.continueProbability)) {
      queue.push(atMs + prng.logNormal(c.thinkMedianMs, c.thinkSigma), { session, type: 'VIEW' });
    }
    return { atMs, step: current };
  };

  // Discard the warm-up: the run begins with the sessions a live shop would have in progress.
  for (let i = 0; i < c.warmUpMaxSteps && Math.min(nextSessionAtMs, queue.peekTime()) < 0; i++) step();

  const ipOf = (user: number): string => {
    const h = hash.int(SALT_IP, user, 1 << 24);
    return `10.${h >>> 16}.${(h >>> 8) & 255}.${h & 255}`;
  };

  return {
    next(): SimEvent {
      const { atMs, step: s } = step();
      const attributes: Record<string, string> = { session: `${options.idPrefix}-s${s.session.number}` };
      if (s.type === 'CLICK') attributes.element = prng.weighted(ELEMENTS);
      return {
        id: `${options.idPrefix}-${++sequence}`,
        type: s.type,
        target: `https://shop.example/p/${s.session.page}`,
        userId: `user-${s.session.user}`,
        ip: ipOf(s.session.user),
        value: undefined,
        attributes,
        modelTimeMs: Math.max(0, atMs),
      };
    },
  };
}
