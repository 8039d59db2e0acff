/**
 * What the alert rules detect, as pure steps over explicit state (docs/alerts.md): milestones
 * crossed by a count, a windowed count or sum crossing a threshold on its rising edge, and a
 * per-minute rate spiking above its own baseline. The state is plain data (numbers and
 * booleans), so that whoever evaluates a series can keep it anywhere — in Redis for a role whose
 * replicas take over each other's series — and a step applied twice to the same state gives the
 * same answer.
 *
 * Time is in whole minutes since the epoch, by the events' occurred time. A minute is evaluated
 * once it is closed: when the series' watermark (the latest occurred time seen, less the
 * lateness bound) has passed its end, so that late events within the bound still count in it.
 */

/** Milliseconds in a minute. */
export const MINUTE_MS = 60_000;

/** The minute (since the epoch) holding `ms`. */
export function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS);
}

/**
 * The last minute that is closed for a series whose latest event occurred at `latestMs`, with
 * events up to `latenessMs` late still accepted: minutes up to it will not change any more.
 */
export function lastClosedMinute(latestMs: number, latenessMs: number): number {
  return minuteOf(latestMs - latenessMs) - 1;
}

// ---------------------------------------------------------------------------------------------
// Milestones

/**
 * The thresholds (ascending) a count has reached beyond the highest one already notified:
 * those `t` with `notifiedUpTo < t ≤ count`, lowest first. A count that jumps past several
 * thresholds at once reaches each of them.
 */
export function crossedMilestones(
  thresholds: readonly number[],
  notifiedUpTo: number,
  count: number,
): number[] {
  const crossed: number[] = [];
  for (const t of thresholds) if (t > notifiedUpTo && t <= count) crossed.push(t);
  return crossed;
}

// ---------------------------------------------------------------------------------------------
// Per-minute buckets of a series

/** A series' totals per minute (count, or sum of values), minutes not yet evaluated. */
export type MinuteTotals = ReadonlyMap<number, number>;

/** Sum of `totals` over the `windowMinutes` minutes ending with `endMinute` (inclusive). */
export function windowTotal(totals: MinuteTotals, endMinute: number, windowMinutes: number): number {
  let total = 0;
  if (totals.size <= windowMinutes) {
    for (const [minute, value] of totals)
      if (minute <= endMinute && minute > endMinute - windowMinutes) total += value;
    return total;
  }
  for (let m = endMinute - windowMinutes + 1; m <= endMinute; m++) total += totals.get(m) ?? 0;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Threshold over a window

export interface WindowRule {
  /** The windowed total that fires the rule when reached. */
  threshold: number;
  /** The window's length in minutes. */
  windowMinutes: number;
  /**
   * Minutes after firing before the rule may fire again for the series; it also re-arms only
   * once the windowed total has fallen below the threshold (a rising edge, not a level).
   */
  rearmMinutes: number;
}

export interface WindowState {
  /** Whether the rule may fire: it has not fired, or has re-armed since. */
  armed: boolean;
  /** The minute it last fired in; undefined when it never fired. */
  firedMinute?: number;
  /** The last minute evaluated; undefined before the first. */
  lastMinute?: number;
}

export const INITIAL_WINDOW_STATE: WindowState = Object.freeze({ armed: true });

export interface WindowFiring {
  /** The closed minute whose window reached the threshold. */
  minute: number;
  /** The windowed total then. */
  value: number;
}

/**
 * Evaluates the closed minutes after `state.lastMinute` up to `closedMinute` in order: the rule
 * fires on the first minute whose windowed total reaches the threshold while armed, and re-arms
 * once the total is back below it and `rearmMinutes` have passed since it fired. Minutes already
 * evaluated are not evaluated again, so applying the same step twice fires once.
 */
export function evaluateWindow(
  rule: WindowRule,
  state: WindowState,
  totals: MinuteTotals,
  closedMinute: number,
): { state: WindowState; firings: WindowFiring[] } {
  const firings: WindowFiring[] = [];
  let { armed, firedMinute, lastMinute } = state;
  const first = firstMinute(lastMinute, totals, closedMinute);
  for (let minute = first; minute <= closedMinute; minute++) {
    const value = windowTotal(totals, minute, rule.windowMinutes);
    if (armed && value >= rule.threshold) {
      firings.push({ minute, value });
      armed = false;
      firedMinute = minute;
    } else if (
      !armed &&
      value < rule.threshold &&
      (firedMinute === undefined || minute - firedMinute >= rule.rearmMinutes)
    )
      armed = true;
    lastMinute = minute;
  }
  return {
    state: {
      armed,
      ...(firedMinute === undefined ? {} : { firedMinute }),
      ...(lastMinute === undefined ? {} : { lastMinute }),
    },
    firings,
  };
}

/**
 * Judges the minutes after `closedMinute` up to `currentMinute` — still open: late events may yet
 * add to them — so that a window that has reached its threshold fires now rather than once its
 * minute closes. Fires at most once, on the first such minute whose windowed total reaches the
 * threshold while armed; the rule is then disarmed as by {@link evaluateWindow}, whose later pass
 * over these minutes cannot fire again (disarmed) nor re-arm before the minute it fired in.
 */
export function judgeOpenWindow(
  rule: WindowRule,
  state: WindowState,
  totals: MinuteTotals,
  closedMinute: number,
  currentMinute: number,
): { state: WindowState; firing?: WindowFiring } {
  if (!state.armed) return { state };
  for (let minute = closedMinute + 1; minute <= currentMinute; minute++) {
    const value = windowTotal(totals, minute, rule.windowMinutes);
    if (value >= rule.threshold)
      return { state: { ...state, armed: false, firedMinute: minute }, firing: { minute, value } };
  }
  return { state };
}

/**
 * Where an evaluation starts: after the last minute evaluated, or — the first time — at the
 * earliest minute with data (an earlier window is empty: nothing fires); never more than
 * {@link MAX_CATCH_UP_MINUTES} before `closedMinute`. Past `closedMinute` when there is nothing
 * to do.
 */
function firstMinute(lastMinute: number | undefined, totals: MinuteTotals, closedMinute: number): number {
  let first: number;
  if (lastMinute !== undefined) first = lastMinute + 1;
  else {
    first = Number.POSITIVE_INFINITY;
    for (const m of totals.keys()) if (m < first) first = m;
    if (first === Number.POSITIVE_INFINITY) return closedMinute + 1;
  }
  return Math.max(first, closedMinute - MAX_CATCH_UP_MINUTES + 1);
}

/** Most minutes one evaluation walks; a series silent longer starts afresh at its latest minutes. */
export const MAX_CATCH_UP_MINUTES = 2 * 24 * 60;

// ---------------------------------------------------------------------------------------------
// Spikes

export interface SpikeRule {
  /** How fast the baseline forgets: a minute's weight halves after this many minutes. */
  halfLifeMinutes: number;
  /** The score (standard deviations above the baseline) that raises an alert. */
  zThreshold: number;
  /** The score below which a raised spike clears (hysteresis: below zThreshold). */
  zClear: number;
  /** The fewest events in the minute for it to count as a spike. */
  minCount: number;
  /** The least ratio of the minute's count to the baseline's mean. */
  minRatio: number;
  /** Minutes of history before the baseline is trusted. */
  warmupMinutes: number;
}

export interface SpikeState {
  /** Exponentially weighted mean of the per-minute count. */
  mean: number;
  /** Exponentially weighted variance of the per-minute count. */
  variance: number;
  /**
   * Minutes folded into the baseline, counted up to the warm-up or the running mean's length
   * (1/α), whichever is longer; past that they stop mattering.
   */
  minutes: number;
  /** Whether a spike is raised and not yet cleared. */
  raised: boolean;
  /** The last minute evaluated; undefined before the first. */
  lastMinute?: number;
  /**
   * A minute not yet closed whose alert is already out ({@link judgeOpenSpike}): when the closed
   * minutes reach it, it is the raised spike (no second alert), and minutes before it raise none.
   */
  earlyMinute?: number;
}

export const INITIAL_SPIKE_STATE: SpikeState = Object.freeze({
  mean: 0,
  variance: 0,
  minutes: 0,
  raised: false,
});

export interface SpikeAlert {
  minute: number;
  count: number;
  /** The baseline's mean before the minute. */
  baseline: number;
  /** The minute's score against the baseline. */
  z: number;
}

/** The weight of a new minute in the baseline for a half-life in minutes. */
export function ewmaAlpha(halfLifeMinutes: number): number {
  return 1 - 2 ** (-1 / halfLifeMinutes);
}

/**
 * The score of `count` against a baseline: how many standard deviations above its mean a new
 * minute is. The spread of a minute is the baseline's variance, floored at the mean (what a
 * Poisson count of that mean varies by) and at 1, so that a flat history does not make any small
 * rise infinite. The mean is itself an estimate, so a new minute differs from it by that spread
 * plus the mean's own error: a share of 1/n of it after n minutes of the running mean, and
 * α/(2 − α) once the mean is exponentially weighted. Without that share a baseline of one quiet
 * minute (say 6 likes on a post that averages 12) makes an ordinary minute look like a spike.
 */
export function spikeScore(
  state: Pick<SpikeState, 'mean' | 'variance' | 'minutes'>,
  count: number,
  alpha: number,
): number {
  const spread = Math.max(state.variance, state.mean, 1);
  const meanShare = Math.max(alpha / (2 - alpha), 1 / Math.max(1, state.minutes));
  return (count - state.mean) / Math.sqrt(spread * (1 + meanShare));
}

/**
 * How many minutes a series' baseline counts: the warm-up, and as many as the running mean
 * weighs before the exponential weight takes over (1/α), since the score's share of the mean's
 * error depends on them.
 */
function minutesCounted(rule: SpikeRule, alpha: number): number {
  return Math.max(rule.warmupMinutes, Math.ceil(1 / alpha));
}

/**
 * Folds the closed minutes after `state.lastMinute` up to `closedMinute` (minutes without events
 * count 0; a series' first minute, partial, is skipped) into the baseline in order, raising at most one alert per spike: a minute raises when
 * the baseline is warm, no spike is raised, and the count is at least `minCount`, at least
 * `minRatio` × the mean and scores at least `zThreshold`; the spike clears once a minute scores
 * below `zClear`. Minutes of a raised spike do not feed the baseline, so a long spike does not
 * become the normal. Minutes already evaluated are skipped: a repeated step raises nothing new.
 */
export function evaluateSpikes(
  rule: SpikeRule,
  state: SpikeState,
  counts: MinuteTotals,
  closedMinute: number,
): { state: SpikeState; alerts: SpikeAlert[] } {
  const alpha = ewmaAlpha(rule.halfLifeMinutes);
  const counted = minutesCounted(rule, alpha);
  const alerts: SpikeAlert[] = [];
  let { mean, variance, minutes, raised } = state;
  let earlyMinute = state.earlyMinute;
  const first = firstMinute(state.lastMinute, counts, closedMinute);
  let lastMinute = state.lastMinute;
  if (state.lastMinute !== undefined && closedMinute - state.lastMinute > MAX_CATCH_UP_MINUTES)
    // Silent for days: what the baseline knew has decayed to nothing anyway.
    ({ mean, variance, minutes, raised } = INITIAL_SPIKE_STATE);
  // A series' first minute began when its first event came, part-way through: a partial count
  // would start the baseline low and make the first full minute look like a rise. It is skipped.
  const skipFirst = state.lastMinute === undefined;
  for (let minute = skipFirst ? first + 1 : first; minute <= closedMinute; minute++) {
    const count = counts.get(minute) ?? 0;
    const z = spikeScore({ mean, variance, minutes }, count, alpha);
    if (earlyMinute !== undefined && minute >= earlyMinute) {
      // The spike judged while its minute was open: raised, its alert already out.
      raised = true;
      earlyMinute = undefined;
    } else if (raised) {
      if (z < rule.zClear) raised = false;
    } else if (
      earlyMinute === undefined &&
      minutes >= rule.warmupMinutes &&
      count >= rule.minCount &&
      count >= rule.minRatio * mean &&
      z >= rule.zThreshold
    ) {
      raised = true;
      alerts.push({ minute, count, baseline: mean, z });
    }
    if (!raised) {
      // The first minutes weigh as a plain running mean (1/n), so that the baseline does not
      // start from 0 and take a half-life to reach the series' level.
      const weight = Math.max(alpha, 1 / (minutes + 1));
      const delta = count - mean;
      mean += weight * delta;
      variance = (1 - weight) * (variance + weight * delta * delta);
      if (minutes < counted) minutes++;
    }
  }
  if (first <= closedMinute) lastMinute = closedMinute;
  return {
    state: {
      mean,
      variance,
      minutes,
      raised,
      ...(lastMinute === undefined ? {} : { lastMinute }),
      ...(earlyMinute === undefined ? {} : { earlyMinute }),
    },
    alerts,
  };
}

/**
 * Judges the minutes after `closedMinute` up to `currentMinute`, still open, against the baseline
 * of the closed ones: a minute whose count so far already meets every condition of a spike raises
 * it now — its count can only grow until it closes, and the score with it — rather than a
 * lateness bound after its end. At most one alert, none while a spike is raised or already judged;
 * {@link evaluateSpikes} takes the judged minute as the raised spike when it closes.
 */
export function judgeOpenSpike(
  rule: SpikeRule,
  state: SpikeState,
  counts: MinuteTotals,
  closedMinute: number,
  currentMinute: number,
): { state: SpikeState; alert?: SpikeAlert } {
  if (state.raised || state.earlyMinute !== undefined || state.minutes < rule.warmupMinutes) return { state };
  const alpha = ewmaAlpha(rule.halfLifeMinutes);
  for (let minute = closedMinute + 1; minute <= currentMinute; minute++) {
    const count = counts.get(minute) ?? 0;
    const z = spikeScore(state, count, alpha);
    if (count >= rule.minCount && count >= rule.minRatio * state.mean && z >= rule.zThreshold)
      return {
        state: { ...state, earlyMinute: minute },
        alert: { minute, count, baseline: state.mean, z },
      };
  }
  return { state };
}
