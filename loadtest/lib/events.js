/**
 * Realistic events for the load tests: three families of targets (shop pages, social posts,
 * merchants) with Zipf popularity, users with a flatter Zipf, event times a little in the past,
 * and an id unique to each event of the run so the sinks' deduplication never merges two.
 */
import exec from 'k6/execution';

/**
 * Zipf-distributed ranks in constant time and memory: P(k) ∝ k^-s for k in 1..n, sampled by
 * rejection-inversion (Hörmann & Derflinger 1996), as the simulator's ZipfSampler does.
 */
export class Zipf {
  constructor(n, exponent) {
    this.n = n;
    this.exponent = exponent;
    this.hIntegralX1 = this.hIntegral(1.5) - 1;
    this.hIntegralN = this.hIntegral(n + 0.5);
    this.s = 2 - this.hIntegralInverse(this.hIntegral(2.5) - this.h(2));
  }

  /** A rank in 1..n; rank 1 is the most likely. */
  sample() {
    for (;;) {
      const u = this.hIntegralN + Math.random() * (this.hIntegralX1 - this.hIntegralN);
      const x = this.hIntegralInverse(u);
      const k = Math.min(this.n, Math.max(1, Math.floor(x + 0.5)));
      if (k - x <= this.s || u >= this.hIntegral(k + 0.5) - this.h(k)) return k;
    }
  }

  h(x) {
    return Math.exp(-this.exponent * Math.log(x));
  }

  hIntegral(x) {
    const logX = Math.log(x);
    return expm1OverX((1 - this.exponent) * logX) * logX;
  }

  hIntegralInverse(x) {
    const t = Math.max(-1, x * (1 - this.exponent));
    return Math.exp(log1pOverX(t) * x);
  }
}

function log1pOverX(x) {
  return Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1 / 3 - 0.25 * x));
}

function expm1OverX(x) {
  return Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + x * (1 / 3) * (1 + 0.25 * x));
}

/** Picks one of `[value, weight]` pairs in proportion to the weights. */
function weighted(pairs) {
  let total = 0;
  for (const [, w] of pairs) total += w;
  let r = Math.random() * total;
  for (const [value, w] of pairs) {
    r -= w;
    if (r < 0) return value;
  }
  return pairs[pairs.length - 1][0];
}

const CLICK_ELEMENTS = [
  ['add_to_cart', 4],
  ['image', 3],
  ['related_product', 2],
  ['reviews', 1],
  ['buy_now', 1],
];
const REFERRERS = [
  ['search', 5],
  ['direct', 3],
  ['social', 2],
];

const CITIES = ['Berlin', 'Paris', 'Madrid', 'Rome', 'Lisbon', 'Vienna', 'Warsaw', 'Dublin'];

/**
 * The families of the mix: share of events, target of rank k, types with their weights, and
 * what else an event of the family carries.
 */
const FAMILIES = [
  {
    share: 50,
    target: (k) => `https://shop.example/p/${k}`,
    types: [
      ['VIEW', 80],
      ['CLICK', 20],
    ],
    extra: (type) =>
      type === 'CLICK'
        ? { attributes: { element: weighted(CLICK_ELEMENTS) } }
        : { attributes: { referrer: weighted(REFERRERS) } },
  },
  {
    share: 35,
    target: (k) => `post/${k}`,
    types: [
      ['like', 75],
      ['comment', 17],
      ['share', 8],
    ],
    extra: () => ({}),
  },
  {
    share: 15,
    target: (k) => `merchant/${k}`,
    types: [['transaction', 1]],
    // Card payments: log-normal amounts, median 25.
    extra: () => ({
      value: Math.round(25 * Math.exp(0.9 * gaussian()) * 100) / 100,
      attributes: { currency: 'EUR', city: CITIES[Math.floor(Math.random() * CITIES.length)] },
    }),
  },
];

const FAMILY_WEIGHTS = FAMILIES.map((f) => [f, f.share]);

/** Every event type the mix produces. */
export const EVENT_TYPES = FAMILIES.flatMap((f) => f.types.map(([type]) => type));

function gaussian() {
  const u = 1 - Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}

/** A run id: a prefix of every event id of one run, from setup() so every VU shares it. */
export function newRunId() {
  const random = Math.floor(Math.random() * 36 ** 4)
    .toString(36)
    .padStart(4, '0');
  return `lt${Date.now().toString(36)}${random}`;
}

/**
 * Builds events for one script. `tag` names the script in the ids
 * (`<runId>-<tag>-<iteration in the scenario>[-<index>]`, at most 64 characters).
 */
export class EventFactory {
  constructor(config, tag) {
    this.tag = tag;
    this.targets = new Zipf(config.targets, config.zipfExponent);
    this.users = new Zipf(config.users, 0.7);
    this.targetCount = config.targets;
  }

  /** The `count` most popular targets of each family (what a dashboard would watch). */
  popularTargets(count) {
    const top = Math.min(count, this.targetCount);
    return FAMILIES.flatMap((f) => Array.from({ length: top }, (_, i) => f.target(i + 1)));
  }

  /** The id of event `index` of this iteration (unique across the run's VUs and iterations). */
  id(runId, index) {
    const base = `${runId}-${this.tag}-${exec.scenario.iterationInTest}`;
    return index === undefined ? base : `${base}-${index}`;
  }

  /**
   * One event in the protobuf JSON mapping (REST body and gRPC message alike). Its event time is
   * up to `lagMs` before now, as a client that buffers briefly would send it.
   */
  event(id, lagMs = 2000) {
    const family = weighted(FAMILY_WEIGHTS);
    const type = weighted(family.types);
    const user = this.users.sample();
    const h = Math.imul(user, 0x9e3779b1) >>> 0;
    return {
      id,
      type,
      target: family.target(this.targets.sample()),
      userId: `user-${user}`,
      // The benchmarking range (RFC 2544): plausible addresses, owned by no one.
      ip: `198.${18 + (h & 1)}.${(h >>> 8) & 255}.${(h >>> 16) & 255}`,
      occurredAt: new Date(Date.now() - Math.floor(Math.random() * lagMs)).toISOString(),
      ...family.extra(type),
    };
  }
}
