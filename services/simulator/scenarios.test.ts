import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defaultEventLimits, validateEvent } from '../domain/event-rules.ts';
import { CLICKSTREAM } from './clickstream.ts';
import { CITIES, cityOfStore, ORDER_LOCATION, ORDER_STAGES, ORDERS } from './orders.ts';
import {
  createScenario,
  SCENARIO_DEFAULTS,
  SCENARIOS,
  type ScenarioName,
  type ScenarioOptions,
  type SimEvent,
} from './scenarios.ts';
import { SOCIAL } from './social.ts';
import { TRANSACTIONS } from './transactions.ts';
import { ZipfSampler } from './zipf.ts';

const N = 50_000;
const RATE = 200;
const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);

function generate(name: ScenarioName, n = N, options: Partial<ScenarioOptions> = {}): SimEvent[] {
  const source = createScenario(name, {
    seed: 20261122,
    ratePerSecond: RATE,
    idPrefix: 'run1',
    ...SCENARIO_DEFAULTS[name],
    ...options,
  });
  return Array.from({ length: n }, () => source.next());
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

/** Number after the last `/` of a target. */
function targetNumber(target: string): number {
  return Number(target.slice(target.lastIndexOf('/') + 1));
}

/** Events per rank (index 0 = rank 1) for targets numbered 1..n. */
function rankCounts(events: readonly SimEvent[], n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const e of events) {
    const k = targetNumber(e.target);
    if (k >= 1 && k <= n) counts[k - 1]!++;
  }
  return counts;
}

/** Asserts popularity falls with rank: each block of ranks [2^i, 2^(i+1)) averages less than the previous one. */
function assertMonotoneByRank(counts: readonly number[], what: string): void {
  let previous = Number.POSITIVE_INFINITY;
  for (let lo = 1; lo <= counts.length; lo *= 2) {
    const block = counts.slice(lo - 1, Math.min(counts.length, 2 * lo - 1));
    const mean = block.reduce((a, b) => a + b, 0) / block.length;
    assert.ok(mean < previous, `${what}: ranks ${lo}..${2 * lo - 1} average ${mean}, not below ${previous}`);
    previous = mean;
  }
}

function shareOfTop(counts: readonly number[], fraction: number): number {
  const sorted = [...counts].sort((a, b) => b - a);
  const top = sorted.slice(0, Math.ceil(counts.length * fraction)).reduce((a, b) => a + b, 0);
  return top / counts.reduce((a, b) => a + b, 0);
}

function isCents(value: number | undefined): boolean {
  return value !== undefined && value > 0 && /^\d+(\.\d{1,2})?$/.test(String(value));
}

describe('every scenario', () => {
  for (const name of SCENARIOS) {
    test(`${name}: ${N.toLocaleString('en-US')} events pass Tally's validation, with unique ids`, () => {
      const events = generate(name);
      const ids = new Set<string>();
      for (const [i, e] of events.entries()) {
        const violation = validateEvent(
          { ...e, occurredAtMs: NOW },
          defaultEventLimits,
          NOW,
          `events[${i}].`,
        );
        assert.equal(violation, undefined, `${JSON.stringify(e)}: ${JSON.stringify(violation)}`);
        assert.match(e.id, /^run1-\d+$/);
        assert.ok(e.id.length <= 64);
        assert.ok(e.userId !== '', 'user_id is set');
        ids.add(e.id);
      }
      assert.equal(ids.size, events.length);
    });

    test(`${name}: deterministic for a seed, different for another`, () => {
      const strip = (events: SimEvent[]) => JSON.stringify(events);
      assert.equal(strip(generate(name, 2000)), strip(generate(name, 2000)));
      assert.notEqual(strip(generate(name, 2000)), strip(generate(name, 2000, { seed: 1 })));
    });

    test(`${name}: the model's clock advances at the send rate`, () => {
      const events = generate(name);
      const expectedMs = (N / RATE) * 1000;
      const lastMs = events.at(-1)!.modelTimeMs;
      // Orders start with no order in progress, so their clock runs ahead by part of a lifecycle.
      const tolerance = name === 'orders' ? 0.15 : 0.05;
      assert.ok(
        Math.abs(lastMs / expectedMs - 1) < tolerance,
        `event ${N} at ${lastMs.toFixed(0)} ms of model time, expected about ${expectedMs} ms`,
      );
      for (let i = 1; i < events.length; i++)
        assert.ok(
          events[i]!.modelTimeMs >= events[i - 1]!.modelTimeMs,
          'events come out in model-time order',
        );
    });
  }
});

describe('clickstream', () => {
  const events = generate('clickstream');
  const pages = SCENARIO_DEFAULTS.clickstream.targets;

  test('page popularity is Zipf (s = 1.1): the top 10% of pages get most views, falling with rank', () => {
    for (const e of events) assert.match(e.target, /^https:\/\/shop\.example\/p\/\d+$/);
    const views = rankCounts(
      events.filter((e) => e.type === 'VIEW'),
      pages,
    );
    const top = shareOfTop(views, 0.1);
    assert.ok(top > 0.5, `top 10% of pages got ${(100 * top).toFixed(1)}% of views`);
    assertMonotoneByRank(views, 'views');
    // The head matches the exact law within a few percent.
    const zipf = new ZipfSampler(pages, CLICKSTREAM.pageZipfExponent);
    const totalViews = views.reduce((a, b) => a + b, 0);
    for (const rank of [1, 2, 3, 5, 10]) {
      const expected = zipf.probability(rank) * totalViews;
      assert.ok(
        Math.abs(views[rank - 1]! - expected) < 4 * Math.sqrt(expected),
        `rank ${rank}: ${views[rank - 1]} views, expected ${expected.toFixed(0)}`,
      );
    }
  });

  test('types are VIEW and CLICK, about one click per four views', () => {
    const types = countBy(events, (e) => e.type);
    assert.deepEqual([...types.keys()].sort(), ['CLICK', 'VIEW']);
    const ratio = types.get('CLICK')! / types.get('VIEW')!;
    assert.ok(Math.abs(ratio - CLICKSTREAM.clickProbability) < 0.015, `clicks per view ${ratio}`);
    for (const e of events) {
      assert.match(e.userId, /^user-\d+$/);
      assert.match(e.ip, /^10\.\d+\.\d+\.\d+$/);
      assert.ok(e.attributes.session);
    }
  });

  test('sessions: a user views pages with think time, and clicks only on the page just viewed', () => {
    // Without warm-up every session is seen from its start; 4·N events so that sessions opened
    // in the first quarter have all ended (a session rarely lasts more than a few minutes).
    const cold = generate('clickstream', 4 * N, { warmUp: false });
    const last = new Map<string, SimEvent>();
    const viewsPerSession = new Map<string, number>();
    const thinkTimesMs: number[] = [];
    for (const e of cold) {
      const session = e.attributes.session!;
      const previous = last.get(session);
      if (previous) {
        assert.equal(e.userId, previous.userId, 'a session belongs to one user');
        const gap = e.modelTimeMs - previous.modelTimeMs;
        assert.ok(gap > 0);
        if (e.type === 'VIEW') thinkTimesMs.push(gap);
      } else assert.equal(e.type, 'VIEW', 'a session starts with a VIEW');
      if (e.type === 'CLICK') {
        assert.equal(previous?.type, 'VIEW', 'a CLICK follows a VIEW');
        assert.equal(e.target, previous?.target, 'on the page viewed');
      } else viewsPerSession.set(session, (viewsPerSession.get(session) ?? 0) + 1);
      last.set(session, e);
    }
    // Sessions opened in the first quarter are complete: 1 / (1 - 0.8) = 5 views each on average.
    const early = new Set(cold.slice(0, N).map((e) => e.attributes.session!));
    const lengths = [...early].map((s) => viewsPerSession.get(s)!);
    const meanViews = lengths.reduce((a, b) => a + b, 0) / lengths.length;
    const expectedViews = 1 / (1 - CLICKSTREAM.continueProbability);
    assert.ok(Math.abs(meanViews - expectedViews) < 0.25, `${meanViews.toFixed(2)} views per session`);
    assert.ok(
      lengths.some((l) => l >= 15),
      'some sessions are long (geometric tail)',
    );
    thinkTimesMs.sort((a, b) => a - b);
    const median = thinkTimesMs[thinkTimesMs.length >> 1]!;
    assert.ok(median > 5_000 && median < 20_000, `median gap before a VIEW ${median} ms`);
  });

  test('with warm-up, the run starts with sessions in progress', () => {
    const started = events.slice(0, 500);
    assert.ok(
      started.some((e) => e.type === 'CLICK'),
      'clicks from the very start',
    );
    const firstSession = Number(started[0]!.attributes.session!.slice('run1-s'.length));
    assert.ok(firstSession > 1, 'sessions were opened before the first event');
  });
});

describe('social', () => {
  const events = generate('social');
  const catalogue = SCENARIO_DEFAULTS.social.targets;

  test('the type mix is 70% like, 15% comment, 7% share, 8% post', () => {
    const types = countBy(events, (e) => e.type);
    assert.deepEqual([...types.keys()].sort(), ['comment', 'like', 'post', 'share']);
    for (const [type, share] of SOCIAL.typeMix) {
      const actual = types.get(type)! / N;
      assert.ok(Math.abs(actual - share) < 0.01, `${type}: ${(100 * actual).toFixed(1)}%`);
    }
  });

  test('a post creates a new post owned by its author; reactions carry the owner', () => {
    const owners = new Map<string, string>();
    let recent = 0;
    let reactions = 0;
    for (const e of events) {
      assert.match(e.target, /^post\/\d+$/);
      assert.match(e.attributes.owner ?? '', /^user-\d+$/);
      if (e.type === 'post') {
        assert.ok(targetNumber(e.target) > catalogue, 'a new post');
        assert.ok(!owners.has(e.target), 'created once');
        assert.equal(e.attributes.owner, e.userId);
        owners.set(e.target, e.userId);
      } else {
        reactions++;
        const owner = owners.get(e.target);
        if (targetNumber(e.target) > catalogue) {
          recent++;
          assert.equal(e.attributes.owner, owner, 'a new post keeps its author');
        }
      }
    }
    const recentShare = recent / reactions;
    assert.ok(Math.abs(recentShare - SOCIAL.recentShare) < 0.02, `${recentShare} of reactions to new posts`);
  });

  test('catalogue posts are Zipf-popular and always have the same owner', () => {
    const reactions = events.filter((e) => e.type !== 'post');
    const counts = rankCounts(reactions, catalogue);
    assert.ok(shareOfTop(counts, 0.1) > 0.5);
    assertMonotoneByRank(counts, 'reactions');
    const ownerOf = new Map<string, string>();
    for (const e of reactions) {
      const known = ownerOf.get(e.target);
      if (known) assert.equal(e.attributes.owner, known);
      else ownerOf.set(e.target, e.attributes.owner!);
    }
  });
});

describe('transactions', () => {
  const users = 100;
  const events = generate('transactions', N, { users });

  test('amounts are positive, in cents, log-normal around tens of units', () => {
    const amounts = events.map((e) => e.value);
    for (const a of amounts) assert.ok(isCents(a), `amount ${a}`);
    const logs = amounts.map((a) => Math.log(a!)).sort((a, b) => a - b);
    const median = Math.exp(logs[logs.length >> 1]!);
    assert.ok(median > 10 && median < 100, `median amount ${median}`);
    // Log-normal: the logs are symmetric (mean ≈ median) and the amounts are right-skewed.
    const meanLog = logs.reduce((a, b) => a + b, 0) / logs.length;
    assert.ok(Math.abs(meanLog - logs[logs.length >> 1]!) < 0.1);
    const meanAmount = amounts.reduce((a, b) => a! + b!, 0)! / amounts.length;
    assert.ok(meanAmount > median * 1.2, 'mean above median');
  });

  test("each card holder's payments have exponential gaps (coefficient of variation ≈ 1)", () => {
    const byUser = new Map<string, number[]>();
    for (const e of events) {
      let times = byUser.get(e.userId);
      if (!times) {
        times = [];
        byUser.set(e.userId, times);
      }
      times.push(e.modelTimeMs);
    }
    assert.equal(byUser.size, users);
    const cvs: number[] = [];
    const normalisedGaps: number[] = [];
    for (const times of byUser.values()) {
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
      const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / (gaps.length - 1));
      cvs.push(sd / mean);
      for (const g of gaps) normalisedGaps.push(g / mean);
    }
    const meanCv = cvs.reduce((a, b) => a + b, 0) / cvs.length;
    assert.ok(Math.abs(meanCv - 1) < 0.05, `mean CV ${meanCv.toFixed(3)}`);
    // Memoryless: P(gap > mean) = e^-1, P(gap > 2·mean) = e^-2.
    const beyond = (x: number) => normalisedGaps.filter((g) => g > x).length / normalisedGaps.length;
    assert.ok(Math.abs(beyond(1) - Math.exp(-1)) < 0.01, `P(gap > mean) = ${beyond(1)}`);
    assert.ok(Math.abs(beyond(2) - Math.exp(-2)) < 0.01, `P(gap > 2 mean) = ${beyond(2)}`);
    // Each holder pays at rate / users.
    const meanGapMs = normalisedGaps.length > 0 ? (events.at(-1)!.modelTimeMs * users) / N : 0;
    assert.ok(Math.abs(meanGapMs / ((1000 * users) / RATE) - 1) < 0.05);
  });

  test('merchants are Zipf-popular; currency per merchant and card per holder are stable and masked', () => {
    const merchants = SCENARIO_DEFAULTS.transactions.targets;
    const counts = rankCounts(events, merchants);
    assert.ok(shareOfTop(counts, 0.1) > 0.5);
    assertMonotoneByRank(counts, 'payments');
    const currencies = new Set<string>(TRANSACTIONS.currencies.map(([c]) => c));
    const currencyOf = new Map<string, string>();
    const cardOf = new Map<string, string>();
    for (const e of events) {
      assert.equal(e.type, 'transaction');
      assert.match(e.target, /^merchant\/\d+$/);
      const { currency, card, channel } = e.attributes;
      assert.ok(currency && currencies.has(currency));
      assert.match(card ?? '', /^[45]\d{5}\*{6}\d{4}$/);
      assert.ok(channel === 'online' || channel === 'in_store');
      assert.equal(currencyOf.get(e.target) ?? currency, currency);
      currencyOf.set(e.target, currency);
      assert.equal(cardOf.get(e.userId) ?? card, card);
      cardOf.set(e.userId, card!);
    }
  });
});

describe('orders', () => {
  const events = generate('orders');

  test('every order goes through the lifecycle in order, skipping nothing', () => {
    const orders = new Map<string, SimEvent[]>();
    for (const e of events) {
      const id = e.attributes.order_id!;
      assert.match(id, /^run1-o\d+$/);
      let list = orders.get(id);
      if (!list) {
        list = [];
        orders.set(id, list);
      }
      list.push(e);
    }
    let completed = 0;
    let earlyOrders = 0;
    let earlyCompleted = 0;
    const halfMs = events[N / 2]!.modelTimeMs;
    for (const [id, list] of orders) {
      // The stages seen are a prefix of the lifecycle: in order, nothing skipped; the courier's
      // location updates (two) only between picked_up and delivered.
      const stages = list.filter((e) => e.type !== ORDER_LOCATION);
      assert.deepEqual(
        stages.map((e) => e.type),
        ORDER_STAGES.slice(0, stages.length),
        `order ${id}`,
      );
      const types = list.map((e) => e.type);
      const located = types.filter((t) => t === ORDER_LOCATION).length;
      if (types.includes('order.delivered')) assert.equal(located, 2, `order ${id}: ${types.join(',')}`);
      if (located > 0)
        assert.deepEqual(
          types.slice(types.indexOf('order.picked_up') + 1, types.indexOf('order.picked_up') + 1 + located),
          Array(located).fill(ORDER_LOCATION),
          `order ${id}: the updates follow picked_up`,
        );
      for (let i = 1; i < list.length; i++) {
        assert.ok(list[i]!.modelTimeMs > list[i - 1]!.modelTimeMs, 'each stage later than the one before');
        assert.equal(list[i]!.userId, list[0]!.userId, 'one customer: the partition key keeps the order');
        assert.equal(list[i]!.target, list[0]!.target, 'one store');
      }
      if (stages.length === ORDER_STAGES.length) completed++;
      if (list[0]!.modelTimeMs < halfMs) {
        earlyOrders++;
        if (stages.length === ORDER_STAGES.length) earlyCompleted++;
      }
    }
    assert.ok(completed > 0.8 * orders.size, `${completed} of ${orders.size} orders delivered`);
    assert.ok(earlyCompleted > 0.99 * earlyOrders, 'orders from the first half were all delivered');
  });

  test('the lifecycle takes about half an hour of order time (one second per minute)', () => {
    const createdAt = new Map<string, number>();
    const durations: number[] = [];
    for (const e of events) {
      const id = e.attributes.order_id!;
      if (e.type === 'order.created') createdAt.set(id, e.modelTimeMs);
      if (e.type === 'order.delivered')
        durations.push((e.modelTimeMs - createdAt.get(id)!) / ORDERS.minuteMs);
    }
    durations.sort((a, b) => a - b);
    const median = durations[durations.length >> 1]!;
    assert.ok(median > 15 && median < 50, `median delivery ${median.toFixed(1)} minutes`);
  });

  test("the created event carries the total; picked_up, the updates and delivered a location near the store's city", () => {
    const pickups = new Map<string, string>();
    for (const e of events) {
      assert.match(e.target, /^store\/\d+$/);
      assert.match(e.userId, /^customer-\d+$/);
      if (e.type === 'order.created') assert.ok(isCents(e.value), `total ${e.value}`);
      else assert.equal(e.value, undefined);
      if (e.type === 'order.created') assert.equal(e.attributes.courier, undefined);
      else assert.match(e.attributes.courier ?? '', /^courier-\d+$/);
      assert.equal(
        e.attributes.city,
        cityOfStore(Number(e.target.slice('store/'.length))).name,
        "the store's city",
      );
      const located =
        e.type === 'order.picked_up' || e.type === ORDER_LOCATION || e.type === 'order.delivered';
      assert.equal('lat' in e.attributes && 'lon' in e.attributes, located, e.type);
      if (!located) continue;
      const lat = Number(e.attributes.lat);
      const lon = Number(e.attributes.lon);
      assert.match(e.attributes.lat!, /^-?\d+\.\d{5}$/);
      const centre = CITIES.find((c) => c.name === e.attributes.city)!;
      const km = Math.hypot(
        (lat - centre.lat) * 111.32,
        (lon - centre.lon) * 111.32 * Math.cos((centre.lat * Math.PI) / 180),
      );
      assert.ok(km < 30, `${km.toFixed(1)} km from the centre of ${centre.name}`);
      const where = `${e.attributes.lat},${e.attributes.lon}`;
      if (e.type === 'order.picked_up') pickups.set(e.attributes.order_id!, where);
      else if (e.type === 'order.delivered' && pickups.has(e.attributes.order_id!))
        assert.notEqual(where, pickups.get(e.attributes.order_id!), 'the courier moved');
    }
  });

  test('every city has orders; each store is in one city', () => {
    const cities = new Map<string, Set<string>>();
    for (const e of events) {
      const stores = cities.get(e.attributes.city!) ?? new Set();
      stores.add(e.target);
      cities.set(e.attributes.city!, stores);
    }
    assert.deepEqual([...cities.keys()].sort(), CITIES.map((c) => c.name).sort());
    const all = [...cities.values()].flatMap((s) => [...s]);
    assert.equal(new Set(all).size, all.length, 'no store in two cities');
  });

  test('stores are Zipf-popular', () => {
    const created = events.filter((e) => e.type === 'order.created');
    const counts = rankCounts(created, SCENARIO_DEFAULTS.orders.targets);
    assert.ok(shareOfTop(counts, 0.1) > 0.4);
    assertMonotoneByRank(counts, 'orders');
  });
});
