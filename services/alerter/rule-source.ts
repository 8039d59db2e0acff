/**
 * The alert rules in force for the alerter: every enabled rule, loaded once and kept current from
 * the rule store's change feed (a rule created, changed, disabled or deleted takes effect within
 * `refreshMs`), turned into what the alerter evaluates. A failed refresh keeps the rules it had
 * and tries again at the next tick (logged once until it recovers).
 */
import type { AlertRule, RuleStore } from '../infra/alerts/rule-store.ts';
import type { Logger } from '../infra/logger.ts';
import {
  type RulesInForce,
  rulesInForce,
  type WatchedMilestone,
  type WatchedSpike,
  type WatchedWindow,
} from './watched-rules.ts';

export interface RuleSource {
  /** The rules in force now, by event type. */
  inForce(): RulesInForce;
  /** The milestone rules in force now. */
  milestones(): readonly WatchedMilestone[];
  /** The store's revision the rules are current to. */
  revision(): number;
  /** Reads the change feed now (the timer does it every `refreshMs`). */
  refresh(): Promise<void>;
  stop(): void;
}

export interface RuleSourceOptions {
  store: Pick<RuleStore, 'loadEnabled' | 'changesSince'>;
  logger: Logger;
  /** How often the change feed is read (ms). */
  refreshMs: number;
}

/** Loads the enabled rules and starts following the change feed. */
export async function startRuleSource(options: RuleSourceOptions): Promise<RuleSource> {
  const { store, logger } = options;
  const snapshot = await store.loadEnabled();
  const rules = new Map(snapshot.rules.map((r) => [r.id, r]));
  let revision = snapshot.revision;
  let milestones = toMilestones(rules);
  let inForce = toRulesInForce(rules);
  let failing = false;
  let refreshing: Promise<void> | undefined;

  const refresh = (): Promise<void> => {
    refreshing ??= (async () => {
      try {
        const changes = await store.changesSince(revision);
        for (const rule of changes.changed)
          if (rule.enabled) rules.set(rule.id, rule);
          else rules.delete(rule.id);
        for (const id of changes.deleted) rules.delete(id);
        if (changes.changed.length > 0 || changes.deleted.length > 0) {
          milestones = toMilestones(rules);
          inForce = toRulesInForce(rules);
          logger.info('alert rules changed', {
            revision: changes.revision,
            changed: changes.changed.length,
            deleted: changes.deleted.length,
            enabled: rules.size,
          });
        }
        revision = changes.revision;
        if (failing) logger.info('alert rules readable again', { revision });
        failing = false;
      } catch (error) {
        if (!failing)
          logger.warn(
            'alert rules could not be read; keeping the rules in force (logged again once readable)',
            {
              error: error instanceof Error ? error.message : String(error),
            },
          );
        failing = true;
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  };
  const timer = setInterval(() => void refresh(), options.refreshMs);
  timer.unref();
  logger.info('alert rules loaded', { revision, enabled: rules.size });
  return {
    inForce: () => inForce,
    milestones: () => milestones,
    revision: () => revision,
    refresh,
    stop: () => clearInterval(timer),
  };
}

/** The milestone rules among `rules`, as the alerter evaluates them. */
function toMilestones(rules: ReadonlyMap<string, AlertRule>): WatchedMilestone[] {
  const out: WatchedMilestone[] = [];
  for (const rule of rules.values()) {
    const watched = watchedMilestone(rule);
    if (watched) out.push(watched);
  }
  return out;
}

/** Every enabled rule, as the alerter evaluates it, by event type. */
function toRulesInForce(rules: ReadonlyMap<string, AlertRule>): RulesInForce {
  const windows: WatchedWindow[] = [];
  const spikes: WatchedSpike[] = [];
  for (const rule of rules.values()) {
    const window = watchedWindow(rule);
    if (window) windows.push(window);
    const spike = watchedSpike(rule);
    if (spike) spikes.push(spike);
  }
  return rulesInForce({ milestones: toMilestones(rules), windows, spikes });
}

/** What every kind shares: the rule's id, type, subject and recipients. */
function watchedBase(rule: AlertRule) {
  const { subject } = rule.condition;
  return {
    ruleId: rule.id,
    type: rule.eventType,
    ...(subject.kind === 'target'
      ? { target: subject.value }
      : subject.kind === 'target_prefix'
        ? { targetPrefix: subject.value }
        : { userId: subject.value }),
    recipients: [
      ...rule.recipients.userIds.map((id) => `user:${id}`),
      ...rule.recipients.groups.map((name) => `group:${name}`),
      ...(rule.recipients.dashboard ? ['dashboard'] : []),
    ],
    notifyOwner: rule.recipients.targetOwner,
  };
}

/** What the alerter needs of a milestone rule; undefined for a rule of another kind. */
export function watchedMilestone(rule: AlertRule): WatchedMilestone | undefined {
  const { condition } = rule;
  if (condition.kind !== 'milestone') return undefined;
  return { ...watchedBase(rule), thresholds: condition.thresholds };
}

/** What the alerter needs of a threshold rule; undefined for a rule of another kind. */
export function watchedWindow(rule: AlertRule): WatchedWindow | undefined {
  const { condition } = rule;
  if (condition.kind !== 'threshold') return undefined;
  return {
    ...watchedBase(rule),
    measure: condition.measure,
    window: {
      threshold: condition.threshold,
      windowMinutes: condition.windowMinutes,
      rearmMinutes: condition.rearmMinutes,
    },
  };
}

/** What the alerter needs of a spike rule; undefined for a rule of another kind. */
export function watchedSpike(rule: AlertRule): WatchedSpike | undefined {
  const { condition } = rule;
  if (condition.kind !== 'spike') return undefined;
  const { halfLifeMinutes, zThreshold, zClear, minCount, minRatio, warmupMinutes } = condition;
  return {
    ...watchedBase(rule),
    spike: { halfLifeMinutes, zThreshold, zClear, minCount, minRatio, warmupMinutes },
  };
}
