/**
 * The alert rules as the alerter evaluates them (docs/alerts.md): each kind reduced to what its
 * evaluation needs, and all of them indexed by event type, so that an event meets only the rules
 * of its own type however many rules there are.
 */
import type { SpikeRule, WindowRule } from '../domain/alert-detectors.ts';
import type { AlertMeasure } from '../domain/alert-rules.ts';

/** What every watched rule has: its id, its type, what it watches and who is told. */
interface WatchedRule {
  ruleId: string;
  /** The event type counted. */
  type: string;
  /** The one target watched, or every target starting with `targetPrefix`, or one user's events. */
  target?: string;
  targetPrefix?: string;
  userId?: string;
  /** `user:<id>`, `group:<name>`, `dashboard`. */
  recipients: readonly string[];
  /** Whether the target's owner (the event attribute {@link OWNER_ATTRIBUTE}) is told too. */
  notifyOwner: boolean;
}

/** A milestone rule: the count on a target reaches each threshold. */
export interface WatchedMilestone extends WatchedRule {
  /** Ascending. */
  thresholds: readonly number[];
}

/** A threshold rule: the count or sum over a sliding window reaches a threshold (rising edge). */
export interface WatchedWindow extends WatchedRule {
  measure: AlertMeasure;
  window: WindowRule;
}

/** A spike rule: a target's per-minute count stands out from its own baseline. */
export interface WatchedSpike extends WatchedRule {
  spike: SpikeRule;
}

/** The event attribute naming a target's owner, who a rule may notify. */
export const OWNER_ATTRIBUTE = 'owner';

/** The rules of one event type. */
export interface RulesOfType {
  milestones: readonly WatchedMilestone[];
  windows: readonly WatchedWindow[];
  spikes: readonly WatchedSpike[];
}

/** The rules in force, by event type. */
export interface RulesInForce {
  /** How many rules in all. */
  readonly size: number;
  /** The rules watching `type`; undefined when none does. */
  ofType(type: string): RulesOfType | undefined;
}

/** Indexes rules by their event type. */
export function rulesInForce(rules: Partial<RulesOfType>): RulesInForce {
  const byType = new Map<
    string,
    { milestones: WatchedMilestone[]; windows: WatchedWindow[]; spikes: WatchedSpike[] }
  >();
  const of = (type: string) => {
    let entry = byType.get(type);
    if (!entry) {
      entry = { milestones: [], windows: [], spikes: [] };
      byType.set(type, entry);
    }
    return entry;
  };
  for (const rule of rules.milestones ?? []) of(rule.type).milestones.push(rule);
  for (const rule of rules.windows ?? []) of(rule.type).windows.push(rule);
  for (const rule of rules.spikes ?? []) of(rule.type).spikes.push(rule);
  const size = (rules.milestones?.length ?? 0) + (rules.windows?.length ?? 0) + (rules.spikes?.length ?? 0);
  return { size, ofType: (type) => byType.get(type) };
}

export const NO_RULES: RulesInForce = rulesInForce({});

/**
 * Whether `rule` watches an event of `type` on `target` by `userId`; answers the series' subject —
 * the target, or the user for a rule on a user — or undefined when it does not.
 */
export function watchedSubject(
  rule: WatchedRule,
  type: string,
  target: string,
  userId = '',
): string | undefined {
  if (rule.type !== type) return undefined;
  if (rule.target !== undefined) return rule.target === target ? target : undefined;
  if (rule.targetPrefix !== undefined) return target.startsWith(rule.targetPrefix) ? target : undefined;
  if (rule.userId !== undefined) return rule.userId === userId ? userId : undefined;
  return undefined;
}

/** Whether `rule` counts an event of `type` on `target` (by `userId`). */
export function watches(rule: WatchedRule, type: string, target: string, userId = ''): boolean {
  return watchedSubject(rule, type, target, userId) !== undefined;
}

/** Separates a rule's id from its subject in a series' name (neither holds it). */
const SEPARATOR = '\u0000';

/** The store's series of a rule and a subject (a target, or a user). */
export function seriesName(ruleId: string, subject: string): string {
  return `${ruleId}${SEPARATOR}${subject}`;
}

/** The subject of a series' name. */
export function subjectOf(series: string): string {
  return series.slice(series.indexOf(SEPARATOR) + 1);
}
