/**
 * Alert rules: what each kind means, its limits and defaults, and the validation every way in
 * (gRPC, REST, `tally alerts`) shares. Pure: no I/O, no clock, no randomness of its own.
 *
 * A rule watches one event type and is one of three kinds (docs/alerts.md):
 * - `milestone`: the count on a target, or on each target under a prefix, reaches each threshold;
 * - `threshold`: the count or sum over the last W minutes, for a target, a prefix or a user, reaches X
 *   (rising edge), and re-arms once it is below X again and `rearm_minutes` have passed;
 * - `spike`: a series' rate per minute stands out from its own exponentially weighted baseline.
 *
 * Field paths in violations are the proto's (`milestone.thresholds[2]`), relative to the rule: the
 * caller puts the request's path in front (`rule.`). A threshold or spike condition carries the
 * parameters of domain/alert-detectors.ts's `WindowRule` and `SpikeRule` under their names.
 */
import { base62 } from './api-keys.ts';
import { defaultEventLimits, type FieldViolation, textProblem } from './event-rules.ts';

export type { FieldViolation };

export const ALERT_RULE_KINDS = Object.freeze(['milestone', 'threshold', 'spike'] as const);
export type AlertRuleKind = (typeof ALERT_RULE_KINDS)[number];

/**
 * What a rule watches, named as the proto's `AlertSubject` oneof: one target, every target whose
 * name starts with a prefix (each its own series), or one user's events (threshold rules only).
 */
export interface AlertSubject {
  kind: 'target' | 'target_prefix' | 'user_id';
  value: string;
}

/** Who is told: users by id, groups by name, the owner of the target (events' `owner` attribute), the dashboard. */
export interface AlertRecipients {
  userIds: string[];
  groups: string[];
  targetOwner: boolean;
  dashboard: boolean;
}

export interface MilestoneCondition {
  kind: 'milestone';
  /** A target or a target prefix. */
  subject: AlertSubject;
  /** Ascending, distinct, whole numbers from 1. */
  thresholds: number[];
}

export type AlertMeasure = 'count' | 'sum';
export const ALERT_MEASURES: readonly AlertMeasure[] = Object.freeze(['count', 'sum'] as const);

export interface ThresholdCondition {
  kind: 'threshold';
  subject: AlertSubject;
  /** Events counted, or their values summed. */
  measure: AlertMeasure;
  /** The sliding window, 1 to 1440 minutes. */
  windowMinutes: number;
  /** Alert when the measure goes from below to at or above this (a whole number for `count`). */
  threshold: number;
  /**
   * Minutes after an alert before the rule may alert again for the series; it re-arms only once
   * the measure is also back below the threshold. Default: the window's length.
   */
  rearmMinutes: number;
}

export interface SpikeCondition {
  kind: 'spike';
  /** A target or a target prefix (each matching target its own series). */
  subject: AlertSubject;
  /** Half-life of the baseline's exponentially weighted mean and variance, in minutes. */
  halfLifeMinutes: number;
  /** A minute is a spike at or above this robust z-score... */
  zThreshold: number;
  /** ...and the spike clears once the z-score falls below this (hysteresis). */
  zClear: number;
  /** ...and when the minute holds at least this many events... */
  minCount: number;
  /** ...and at least this many times the baseline mean... */
  minRatio: number;
  /** ...once the baseline has this many minutes of history. */
  warmupMinutes: number;
}

export type AlertCondition = MilestoneCondition | ThresholdCondition | SpikeCondition;

/** A rule as stored and answered: every default filled. */
export interface AlertRuleSpec {
  name: string;
  enabled: boolean;
  eventType: string;
  recipients: AlertRecipients;
  condition: AlertCondition;
}

/** A rule as a request gives it: kind-specific numbers may be absent (defaults apply). */
export interface AlertRuleInput {
  name: string;
  /** Absent: enabled. */
  enabled?: boolean;
  eventType: string;
  recipients?: Partial<AlertRecipients>;
  /** Absent: no kind chosen (refused). */
  condition?:
    | { kind: 'milestone'; subject?: AlertSubject; thresholds: readonly number[] }
    | {
        kind: 'threshold';
        subject?: AlertSubject;
        /** `count` (or empty) or `sum`. */
        measure: string;
        windowMinutes: number;
        threshold: number;
        rearmMinutes?: number;
      }
    | {
        kind: 'spike';
        subject?: AlertSubject;
        halfLifeMinutes?: number;
        zThreshold?: number;
        zClear?: number;
        minCount?: number;
        minRatio?: number;
        warmupMinutes?: number;
      };
}

export const ALERT_RULE_LIMITS = Object.freeze({
  maxNameChars: 200,
  maxThresholds: 32,
  minWindowMinutes: 1,
  maxWindowMinutes: 1440,
  maxUserIds: 100,
  maxGroups: 20,
  maxRearmMinutes: 10_080,
  maxHalfLifeMinutes: 10_080,
  maxWarmupMinutes: 10_080,
  maxZ: 100,
  maxMinCount: 1_000_000_000,
  maxMinRatio: 1_000,
});

/**
 * Defaults of a spike rule's parameters, filled by {@link validateAlertRule} (a threshold rule's
 * re-arm defaults to its window's length).
 */
export const SPIKE_DEFAULTS = Object.freeze({
  halfLifeMinutes: 60,
  zThreshold: 4,
  /** Default clear level: this times the z threshold (2 with the default threshold). */
  zClearRatio: 0.5,
  minCount: 5,
  minRatio: 2,
  // The warm-up defaults to one half-life: the time the baseline takes to reflect the series.
});

const TYPE_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]*$/; // as domain/event-rules.ts accepts
const GROUP_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** Characters after the `ar_` prefix of a rule id. */
export const ALERT_RULE_ID_CHARS = 10;
/** Random bytes a rule id is made from. */
export const ALERT_RULE_ID_RANDOM_BYTES = 8;
const ID_PATTERN = /^ar_[0-9A-Za-z]{10}$/;

/** A rule id (`ar_` and 10 base62 characters, about 59 random bits) from 8 random bytes. */
export function formatAlertRuleId(random: Uint8Array): string {
  if (random.length !== ALERT_RULE_ID_RANDOM_BYTES)
    throw new RangeError(`a rule id takes ${ALERT_RULE_ID_RANDOM_BYTES} random bytes, got ${random.length}`);
  let value = 0n;
  for (const byte of random) value = (value << 8n) | BigInt(byte);
  return `ar_${base62(value % 62n ** BigInt(ALERT_RULE_ID_CHARS), ALERT_RULE_ID_CHARS)}`;
}

export function isAlertRuleId(text: string): boolean {
  return ID_PATTERN.test(text);
}

export type AlertRuleValidation =
  | { ok: true; spec: AlertRuleSpec }
  | { ok: false; violations: FieldViolation[] };

/**
 * Checks a rule and fills its defaults: the rule as it is stored, or every field at fault (paths
 * relative to the rule, as the proto names them: `threshold.window_minutes`, `recipients.groups[1]`).
 */
export function validateAlertRule(input: AlertRuleInput): AlertRuleValidation {
  const violations: FieldViolation[] = [];
  const bad = (field: string, description: string) => {
    violations.push({ field, description });
  };
  const L = ALERT_RULE_LIMITS;

  const name = input.name.trim();
  if (name === '') bad('name', 'is required');
  else {
    const problem = textProblem(name, L.maxNameChars);
    if (problem) bad('name', problem);
  }

  if (input.eventType === '') bad('event_type', 'is required');
  else if (input.eventType.length > defaultEventLimits.maxTypeChars)
    bad('event_type', `must be at most ${defaultEventLimits.maxTypeChars} characters`);
  else if (!TYPE_PATTERN.test(input.eventType))
    bad('event_type', 'must start with a letter and contain only letters, digits and _ . : -');

  const recipients: AlertRecipients = {
    userIds: [...(input.recipients?.userIds ?? [])],
    groups: [...(input.recipients?.groups ?? [])],
    targetOwner: input.recipients?.targetOwner ?? false,
    dashboard: input.recipients?.dashboard ?? false,
  };
  checkList('recipients.user_ids', recipients.userIds, L.maxUserIds, bad, (id) =>
    id === '' ? 'must not be empty' : textProblem(id, defaultEventLimits.maxUserIdChars),
  );
  checkList('recipients.groups', recipients.groups, L.maxGroups, bad, (group) =>
    GROUP_PATTERN.test(group)
      ? undefined
      : 'must be 1 to 64 letters, digits and _ . : -, starting with a letter or digit',
  );
  if (
    recipients.userIds.length === 0 &&
    recipients.groups.length === 0 &&
    !recipients.targetOwner &&
    !recipients.dashboard
  )
    bad('recipients', 'must name at least one recipient: user_ids, groups, target_owner or dashboard');

  const condition = validateCondition(input.condition, bad);
  if (condition?.subject.kind === 'user_id' && recipients.targetOwner)
    bad('recipients.target_owner', 'a rule on a user has no target owner to tell');

  // No condition always comes with a violation saying why.
  if (violations.length > 0 || condition === undefined) return { ok: false, violations };
  return {
    ok: true,
    spec: { name, enabled: input.enabled ?? true, eventType: input.eventType, recipients, condition },
  };
}

type Bad = (field: string, description: string) => void;

function checkList(
  field: string,
  items: readonly string[],
  max: number,
  bad: Bad,
  problem: (item: string) => string | undefined,
): void {
  if (items.length > max) bad(field, `must have at most ${max} entries`);
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const why = problem(item);
    if (why) bad(`${field}[${i}]`, why);
    else if (seen.has(item)) bad(`${field}[${i}]`, `repeats ${JSON.stringify(item)}`);
    seen.add(item);
  });
}

function validateCondition(condition: AlertRuleInput['condition'], bad: Bad): AlertCondition | undefined {
  if (condition === undefined) {
    bad('condition', `must be one of ${ALERT_RULE_KINDS.join(', ')}`);
    return undefined;
  }
  const L = ALERT_RULE_LIMITS;
  const k = condition.kind;
  const subjectOk = (allowUser: boolean): AlertSubject | undefined => {
    const subject = condition.subject;
    if (subject === undefined) {
      bad(
        `${k}.subject`,
        `is required: a target${allowUser ? ', a target_prefix or a user_id' : ' or a target_prefix'}`,
      );
      return undefined;
    }
    const field = `${k}.subject.${subject.kind}`;
    if (subject.kind === 'user_id' && !allowUser) {
      bad(field, `a ${k} rule watches a target or a target_prefix, not a user`);
      return undefined;
    }
    const max =
      subject.kind === 'user_id' ? defaultEventLimits.maxUserIdChars : defaultEventLimits.maxTargetChars;
    const problem = subject.value === '' ? 'must not be empty' : textProblem(subject.value, max);
    if (problem) {
      bad(field, problem);
      return undefined;
    }
    return { kind: subject.kind, value: subject.value };
  };

  switch (condition.kind) {
    case 'milestone': {
      const subject = subjectOk(false);
      const thresholds = [...condition.thresholds];
      if (thresholds.length === 0) bad('milestone.thresholds', 'must hold at least one threshold');
      if (thresholds.length > L.maxThresholds)
        bad('milestone.thresholds', `must hold at most ${L.maxThresholds} thresholds`);
      thresholds.forEach((t, i) => {
        const field = `milestone.thresholds[${i}]`;
        if (!(Number.isSafeInteger(t) && t >= 1))
          bad(field, `must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}`);
        else if (i > 0 && !(t > thresholds[i - 1]!))
          bad(
            field,
            `must be above the one before it (${thresholds[i - 1]}): thresholds are ascending and distinct`,
          );
      });
      return subject && { kind: 'milestone', subject, thresholds };
    }
    case 'threshold': {
      const subject = subjectOk(true);
      const measure = condition.measure === '' ? 'count' : condition.measure;
      if (!(ALERT_MEASURES as readonly string[]).includes(measure))
        bad('threshold.measure', `must be ${ALERT_MEASURES.join(' or ')}`);
      const minutes = condition.windowMinutes;
      if (!(Number.isInteger(minutes) && minutes >= L.minWindowMinutes && minutes <= L.maxWindowMinutes))
        bad(
          'threshold.window_minutes',
          `must be a whole number from ${L.minWindowMinutes} to ${L.maxWindowMinutes}`,
        );
      const x = condition.threshold;
      if (measure === 'count' && !(Number.isSafeInteger(x) && x >= 1))
        bad('threshold.threshold', 'must be a whole number from 1 for a count');
      else if (!(Number.isFinite(x) && x > 0)) bad('threshold.threshold', 'must be a finite number above 0');
      const rearmMinutes = condition.rearmMinutes ?? minutes;
      if (!(Number.isInteger(rearmMinutes) && rearmMinutes >= 0 && rearmMinutes <= L.maxRearmMinutes))
        bad('threshold.rearm_minutes', `must be a whole number from 0 to ${L.maxRearmMinutes}`);
      return (
        subject && {
          kind: 'threshold',
          subject,
          measure: measure as AlertMeasure,
          windowMinutes: minutes,
          threshold: x,
          rearmMinutes,
        }
      );
    }
    case 'spike': {
      const subject = subjectOk(false);
      const D = SPIKE_DEFAULTS;
      const halfLifeMinutes = condition.halfLifeMinutes ?? D.halfLifeMinutes;
      const halfLifeOk =
        Number.isInteger(halfLifeMinutes) && halfLifeMinutes >= 1 && halfLifeMinutes <= L.maxHalfLifeMinutes;
      if (!halfLifeOk)
        bad('spike.half_life_minutes', `must be a whole number from 1 to ${L.maxHalfLifeMinutes}`);
      const zThreshold = condition.zThreshold ?? D.zThreshold;
      const zOk = Number.isFinite(zThreshold) && zThreshold > 0 && zThreshold <= L.maxZ;
      if (!zOk) bad('spike.z_threshold', `must be above 0 and at most ${L.maxZ}`);
      const zClear = condition.zClear ?? (zOk ? zThreshold : D.zThreshold) * D.zClearRatio;
      if (!(Number.isFinite(zClear) && zClear >= 0))
        bad('spike.z_clear', 'must be a finite number, 0 or more');
      else if (zOk && !(zClear < zThreshold))
        bad('spike.z_clear', `must be below z_threshold (${zThreshold}), or a spike never clears`);
      const minCount = condition.minCount ?? D.minCount;
      if (!(Number.isInteger(minCount) && minCount >= 1 && minCount <= L.maxMinCount))
        bad('spike.min_count', `must be a whole number from 1 to ${L.maxMinCount}`);
      const minRatio = condition.minRatio ?? D.minRatio;
      if (!(Number.isFinite(minRatio) && minRatio >= 1 && minRatio <= L.maxMinRatio))
        bad('spike.min_ratio', `must be from 1 to ${L.maxMinRatio}`);
      const warmupMinutes = condition.warmupMinutes ?? (halfLifeOk ? halfLifeMinutes : D.halfLifeMinutes);
      if (!(Number.isInteger(warmupMinutes) && warmupMinutes >= 0 && warmupMinutes <= L.maxWarmupMinutes))
        bad('spike.warmup_minutes', `must be a whole number from 0 to ${L.maxWarmupMinutes}`);
      return (
        subject && {
          kind: 'spike',
          subject,
          halfLifeMinutes,
          zThreshold,
          zClear,
          minCount,
          minRatio,
          warmupMinutes,
        }
      );
    }
    default:
      bad('condition', `must be one of ${ALERT_RULE_KINDS.join(', ')}`);
      return undefined;
  }
}
