import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  crossedMilestones,
  evaluateSpikes,
  evaluateWindow,
  ewmaAlpha,
  INITIAL_SPIKE_STATE,
  INITIAL_WINDOW_STATE,
  judgeOpenSpike,
  judgeOpenWindow,
  lastClosedMinute,
  MAX_CATCH_UP_MINUTES,
  MINUTE_MS,
  minuteOf,
  type SpikeAlert,
  type SpikeRule,
  type SpikeState,
  spikeScore,
  type WindowFiring,
  type WindowRule,
  type WindowState,
  windowTotal,
} from './alert-detectors.ts';

/** A seeded generator of uniform numbers in [0, 1) (mulberry32): the same script every run. */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A Poisson-distributed count of mean `mean` (Knuth's method; fine for the means used here). */
function poisson(random: () => number, mean: number): number {
  const limit = Math.exp(-mean);
  let k = 0;
  let p = 1;
  do {
    k++;
    p *= random();
  } while (p > limit);
  return k - 1;
}

/** Per-minute counts from minute 0: `rate(minute)` events a minute on average. */
function script(minutes: number, rate: (minute: number) => number, seed = 7): Map<number, number> {
  const random = uniform(seed);
  const counts = new Map<number, number>();
  for (let m = 0; m < minutes; m++) {
    const n = poisson(random, rate(m));
    if (n > 0) counts.set(m, n);
  }
  return counts;
}

const SPIKES: SpikeRule = {
  halfLifeMinutes: 30,
  zThreshold: 6,
  zClear: 2,
  minCount: 20,
  minRatio: 3,
  warmupMinutes: 30,
};

/** Evaluates minute by minute, as a role would with events arriving in order. */
function spikesMinuteByMinute(rule: SpikeRule, counts: Map<number, number>, minutes: number): SpikeAlert[] {
  let state: SpikeState = INITIAL_SPIKE_STATE;
  const alerts: SpikeAlert[] = [];
  for (let m = 0; m < minutes; m++) {
    const step = evaluateSpikes(rule, state, counts, m);
    state = step.state;
    alerts.push(...step.alerts);
  }
  return alerts;
}

describe('minutes', () => {
  test('a minute is closed once the latest event less the lateness bound has left it', () => {
    const at = Date.UTC(2026, 11, 6, 10, 5, 30);
    assert.equal(minuteOf(at), Math.floor(at / MINUTE_MS));
    // 10:05:30 with 30 s of lateness: 10:05:00 is still open, 10:04 is the last closed minute.
    assert.equal(lastClosedMinute(at, 30_000), minuteOf(Date.UTC(2026, 11, 6, 10, 4)));
    // With 2 minutes of lateness, 10:02 is the last closed.
    assert.equal(lastClosedMinute(at, 120_000), minuteOf(Date.UTC(2026, 11, 6, 10, 2)));
  });

  test('a window sums the minutes ending with its last, sparse or dense', () => {
    const totals = new Map([
      [10, 1],
      [12, 2],
      [15, 4],
      [20, 8],
    ]);
    assert.equal(windowTotal(totals, 15, 6), 7); // 10..15
    assert.equal(windowTotal(totals, 15, 5), 6); // 11..15
    assert.equal(windowTotal(totals, 20, 1), 8);
    assert.equal(windowTotal(totals, 9, 100), 0);
    assert.equal(windowTotal(totals, 20, 3), 8);
  });
});

describe('milestones', () => {
  test('each threshold reached above the last notified, lowest first, also several at once', () => {
    const thresholds = [100, 1_000, 10_000];
    assert.deepEqual(crossedMilestones(thresholds, 0, 99), []);
    assert.deepEqual(crossedMilestones(thresholds, 0, 100), [100]);
    assert.deepEqual(crossedMilestones(thresholds, 100, 100), [], 'notified already');
    assert.deepEqual(crossedMilestones(thresholds, 100, 12_000), [1_000, 10_000]);
    assert.deepEqual(crossedMilestones(thresholds, 10_000, 1e9), []);
  });
});

describe('threshold over a window', () => {
  const rule: WindowRule = { threshold: 100, windowMinutes: 10, rearmMinutes: 5 };
  /** 15 a minute for minutes 0–29, nothing for 30–49, 15 a minute again for 50–69. */
  const totals = new Map<number, number>();
  for (let m = 0; m < 70; m++) if (m < 30 || m >= 50) totals.set(m, 15);

  test('fires on the rising edge, once while above, and again after falling below and re-arming', () => {
    const { firings, state } = evaluateWindow(rule, INITIAL_WINDOW_STATE, totals, 69);
    // 7 minutes of 15 reach 105 at minute 6; at minute 56 again (50..56).
    assert.deepEqual(firings, [
      { minute: 6, value: 105 },
      { minute: 56, value: 105 },
    ]);
    assert.equal(state.armed, false);
    assert.equal(state.firedMinute, 56);
    assert.equal(state.lastMinute, 69);
  });

  test('the same minutes evaluated again fire nothing; minute by minute fires as all at once', () => {
    const once = evaluateWindow(rule, INITIAL_WINDOW_STATE, totals, 69);
    assert.deepEqual(evaluateWindow(rule, once.state, totals, 69).firings, []);
    assert.deepEqual(evaluateWindow(rule, once.state, totals, 60).firings, []);
    let state: WindowState = INITIAL_WINDOW_STATE;
    const firings: WindowFiring[] = [];
    for (let m = 0; m <= 69; m++) {
      const step = evaluateWindow(rule, state, totals, m);
      state = step.state;
      firings.push(...step.firings);
    }
    assert.deepEqual(firings, once.firings);
    assert.deepEqual(state, once.state);
  });

  test('a dip below the threshold re-arms only after the re-arm time', () => {
    // 15 a minute for minutes 0–39 but none in 20–23: the windows ending 23–29 hold 6 minutes
    // (90, below 100), those ending 30 and later 7 again (105).
    const dipping = new Map<number, number>();
    for (let m = 0; m < 40; m++) if (m < 20 || m > 23) dipping.set(m, 15);
    const fired = (rearmMinutes: number) =>
      evaluateWindow({ ...rule, rearmMinutes }, INITIAL_WINDOW_STATE, dipping, 39).firings.map(
        (f) => f.minute,
      );
    assert.deepEqual(fired(30), [6], 'below from minute 23, only 17 minutes after firing: not re-armed');
    assert.deepEqual(fired(5), [6, 30], 're-armed at minute 23, fires again when back above');
  });

  test('events out of order and late within the bound count in their minute before it closes', () => {
    const lateness = 90_000;
    const base = Date.UTC(2026, 11, 6, 12, 0);
    // 110 events over minutes 0–9 (11 a minute), delivered newest first in pairs of minutes.
    const occurred: number[] = [];
    for (let m = 9; m >= 0; m--) for (let i = 0; i < 11; i++) occurred.push(base + m * MINUTE_MS + i * 1_000);
    const ordered = [...occurred].sort((a, b) => a - b);
    const run = (events: number[]) => {
      const live = new Map<number, number>();
      let state: WindowState = INITIAL_WINDOW_STATE;
      let latest = Number.NEGATIVE_INFINITY;
      const firings: WindowFiring[] = [];
      for (const at of events) {
        const minute = minuteOf(at);
        live.set(minute, (live.get(minute) ?? 0) + 1);
        latest = Math.max(latest, at);
        const step = evaluateWindow(rule, state, live, lastClosedMinute(latest, lateness));
        state = step.state;
        firings.push(...step.firings);
      }
      // The stream ends: later events close every minute.
      const step = evaluateWindow(rule, state, live, lastClosedMinute(latest + 10 * MINUTE_MS, lateness));
      return [...firings, ...step.firings];
    };
    assert.deepEqual(run(ordered), [{ minute: minuteOf(base) + 9, value: 110 }]);
    // Newest first: every minute but the latest is "late", and beyond a 90 s bound for most of
    // them — they land in minutes already closed, so the window misses them and never fires;
    // in order, the same events fire once. Within the bound (shuffled by under 90 s), the
    // answer is the ordered one.
    const withinBound: number[] = [];
    for (let i = 0; i < ordered.length; i += 2) withinBound.push(ordered[i + 1] ?? ordered[i]!, ordered[i]!);
    assert.deepEqual(run(withinBound.filter((x, i, a) => a.indexOf(x) === i)), run(ordered));
  });
});

describe('spikes', () => {
  test('a steady run raises nothing; a 10× spike raises one alert at its first minute', () => {
    const steady = script(180, () => 20);
    assert.deepEqual(evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, steady, 179).alerts, []);
    const spiking = script(180, (m) => (m >= 120 && m < 123 ? 200 : 20));
    const { alerts } = evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, spiking, 179);
    assert.equal(alerts.length, 1, JSON.stringify(alerts));
    assert.equal(alerts[0]!.minute, 120);
    assert.ok(alerts[0]!.baseline > 15 && alerts[0]!.baseline < 25, `baseline ${alerts[0]!.baseline}`);
    assert.deepEqual(spikesMinuteByMinute(SPIKES, spiking, 180), alerts, 'minute by minute, the same');
  });

  test('hysteresis: a ten-minute spike raises once; two spikes apart raise twice', () => {
    const long = script(200, (m) => (m >= 100 && m < 110 ? 200 : 20));
    assert.equal(evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, long, 199).alerts.length, 1);
    // A spike that keeps growing (each minute doubling) scores high every minute: still one alert.
    const growing = script(140, (m) => (m >= 100 && m < 106 ? 200 * 2 ** (m - 100) : 20));
    assert.deepEqual(
      evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, growing, 139).alerts.map((a) => a.minute),
      [100],
    );
    const twice = script(220, (m) => ((m >= 100 && m < 103) || (m >= 160 && m < 163) ? 200 : 20));
    assert.deepEqual(
      evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, twice, 219).alerts.map((a) => a.minute),
      [100, 160],
    );
  });

  test('ten-fold spikes are caught across seeds and rates; steady runs raise nothing', () => {
    let caught = 0;
    let falseAlarms = 0;
    const runs = 40;
    for (let seed = 1; seed <= runs; seed++) {
      const rate = 10 + seed; // 11 … 50 a minute
      const counts = script(150, (m) => (m >= 120 && m < 122 ? 10 * rate : rate), seed);
      const alerts = evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, counts, 149).alerts;
      if (alerts.some((a) => a.minute >= 120 && a.minute < 122)) caught++;
      falseAlarms += alerts.filter((a) => a.minute < 120).length;
      const steady = script(150, () => rate, seed + 1000);
      falseAlarms += evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, steady, 149).alerts.length;
    }
    assert.equal(caught, runs);
    assert.equal(falseAlarms, 0);
  });

  test('small counts, a cold baseline and a small ratio raise nothing', () => {
    // 0.2 a minute, then a minute of 8: a high score, but under the minimum count.
    const sparse = script(120, (m) => (m === 100 ? 8 : 0.2));
    assert.deepEqual(evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, sparse, 119).alerts, []);
    // A spike in the warm-up minutes.
    const early = script(60, (m) => (m === 10 ? 500 : 20));
    assert.deepEqual(evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, early, 59).alerts, []);
    // A rise of 2.5× on a large, steady baseline scores high but is under the ratio of 3.
    const ratio = new Map<number, number>();
    for (let m = 0; m < 100; m++) ratio.set(m, m === 90 ? 2_500 : 1_000);
    assert.ok(
      spikeScore({ mean: 1_000, variance: 0, minutes: 90 }, 2_500, ewmaAlpha(SPIKES.halfLifeMinutes)) >
        SPIKES.zThreshold,
    );
    assert.deepEqual(evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, ratio, 99).alerts, []);
    assert.equal(evaluateSpikes({ ...SPIKES, minRatio: 2 }, INITIAL_SPIKE_STATE, ratio, 99).alerts.length, 1);
  });

  test('a baseline of one quiet minute does not make an ordinary minute a spike; a real one still raises', () => {
    // The demo's rule: warm after one full minute (the first, partial, is skipped).
    const demo: SpikeRule = {
      halfLifeMinutes: 10,
      warmupMinutes: 1,
      zThreshold: 6,
      zClear: 3,
      minCount: 20,
      minRatio: 3,
    };
    // A post averaging ~12 likes a minute whose first full minute had 6: 23 is ordinary for it,
    // though 6 deviations of a Poisson count of 6 above 6.
    const likes = [3, 6, 23, 12, 16, 11, 14, 13, 12, 14, 8, 4, 10, 15];
    const ordinary = new Map(likes.map((c, m) => [m, c]));
    assert.deepEqual(evaluateSpikes(demo, INITIAL_SPIKE_STATE, ordinary, likes.length - 1).alerts, []);
    assert.ok(spikeScore({ mean: 6, variance: 0, minutes: 1 }, 23, ewmaAlpha(10)) < 6);
    // Ten times a steady 60 a minute, right after the warm-up minute, raises at once.
    const real = new Map([
      [0, 30],
      [1, 60],
      [2, 600],
      [3, 60],
    ]);
    assert.deepEqual(
      evaluateSpikes(demo, INITIAL_SPIKE_STATE, real, 3).alerts.map((a) => a.minute),
      [2],
    );
  });

  test('the same minutes evaluated again raise nothing; a series silent for days starts afresh', () => {
    const counts = script(180, (m) => (m >= 120 && m < 123 ? 200 : 20));
    const once = evaluateSpikes(SPIKES, INITIAL_SPIKE_STATE, counts, 179);
    assert.deepEqual(evaluateSpikes(SPIKES, once.state, counts, 179).alerts, []);
    assert.deepEqual(evaluateSpikes(SPIKES, once.state, counts, 150).alerts, []);
    const later = 179 + MAX_CATCH_UP_MINUTES + 10;
    const fresh = evaluateSpikes(SPIKES, once.state, counts, later);
    assert.equal(fresh.state.lastMinute, later);
    assert.equal(
      fresh.state.minutes,
      Math.max(SPIKES.warmupMinutes, Math.ceil(1 / ewmaAlpha(SPIKES.halfLifeMinutes))),
      'warm again from the silent minutes',
    );
    assert.ok(fresh.state.mean < 0.01, `mean ${fresh.state.mean}`);
  });
});

describe('open minutes judged before they close', () => {
  test('a window that reaches its threshold in an open minute fires then, once, and its closing fires nothing more', () => {
    const rule: WindowRule = { threshold: 100, windowMinutes: 10, rearmMinutes: 5 };
    const totals = new Map<number, number>();
    for (let m = 0; m <= 8; m++) totals.set(m, 15);
    // Minutes up to 5 closed (90 in the window of minute 5); minutes 6-8 still open.
    const closed = evaluateWindow(rule, INITIAL_WINDOW_STATE, totals, 5);
    assert.deepEqual(closed.firings, []);
    const open = judgeOpenWindow(rule, closed.state, totals, 5, 8);
    assert.deepEqual(open.firing, { minute: 6, value: 105 }, 'the first open minute to reach it');
    assert.equal(open.state.armed, false);
    assert.deepEqual(judgeOpenWindow(rule, open.state, totals, 5, 8).firing, undefined, 'disarmed');
    // Late events raise minute 4 to 40 before it closes... it is closed already: nothing. The
    // open minutes then close: no second firing, and no re-arm before the minute it fired in.
    const later = evaluateWindow(rule, open.state, totals, 8);
    assert.deepEqual(later.firings, []);
    assert.equal(later.state.armed, false);
    assert.deepEqual(
      judgeOpenWindow(rule, INITIAL_WINDOW_STATE, totals, 8, 8).firing,
      undefined,
      'no open minute',
    );
  });

  test('a spike whose minute is still open is raised at once; its closing raises no second alert, and earlier minutes none', () => {
    const rule: SpikeRule = { ...SPIKES, zThreshold: 4, warmupMinutes: 10 };
    const counts = new Map<number, number>();
    for (let m = 0; m < 30; m++) counts.set(m, 10);
    counts.set(30, 25); // high, but not a spike (z ≈ 4.7 ≥ 4, ratio 2.5 < 3)
    for (const m of [31, 32, 33]) counts.set(m, 90);
    const base = evaluateSpikes(rule, INITIAL_SPIKE_STATE, counts, 29);
    assert.deepEqual(base.alerts, []);
    const early = judgeOpenSpike(rule, base.state, counts, 29, 31);
    assert.equal(early.alert?.minute, 31);
    assert.equal(early.alert?.count, 90);
    assert.equal(early.state.earlyMinute, 31);
    assert.equal(judgeOpenSpike(rule, early.state, counts, 29, 31).alert, undefined, 'judged once');
    // Minute 30 grows to a spike by late events before closing: an alert is out already for 31.
    counts.set(30, 60);
    const closed = evaluateSpikes(rule, early.state, counts, 33);
    assert.deepEqual(closed.alerts, []);
    assert.equal(closed.state.earlyMinute, undefined);
    assert.equal(closed.state.raised, true, 'minute 31 is the raised spike, lasting to 33');
    // Without the early judgment the closing would have raised minute 30.
    assert.deepEqual(
      evaluateSpikes(rule, base.state, counts, 33).alerts.map((a) => a.minute),
      [30],
    );
  });

  test('an open minute is not judged before the warm-up, nor while a spike is raised', () => {
    const rule: SpikeRule = { ...SPIKES, zThreshold: 4, warmupMinutes: 50 };
    const counts = new Map<number, number>();
    for (let m = 0; m < 30; m++) counts.set(m, 10);
    counts.set(30, 200);
    const base = evaluateSpikes(rule, INITIAL_SPIKE_STATE, counts, 29);
    assert.equal(judgeOpenSpike(rule, base.state, counts, 29, 30).alert, undefined, 'still warming up');
    const raised = { ...base.state, raised: true, minutes: 50 };
    assert.equal(judgeOpenSpike(rule, raised, counts, 29, 30).alert, undefined);
  });
});

test("a series' first minute, begun part-way through, is not its baseline", () => {
  const rule: SpikeRule = { ...SPIKES, zThreshold: 4, minRatio: 3, minCount: 20, warmupMinutes: 1 };
  // The series began 5 s before the end of minute 0: 3 events, then 36 a minute.
  const counts = new Map([
    [0, 3],
    [1, 36],
    [2, 36],
  ]);
  const step = evaluateSpikes(rule, INITIAL_SPIKE_STATE, counts, 2);
  assert.deepEqual(
    step.alerts,
    [],
    'minute 1 is judged against nothing (warm-up), minute 2 against minute 1',
  );
  assert.equal(step.state.mean, 36);
  assert.equal(step.state.lastMinute, 2);
  assert.equal(evaluateSpikes(rule, INITIAL_SPIKE_STATE, counts, 0).state.lastMinute, 0, 'skipped, and done');
});
