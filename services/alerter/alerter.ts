/**
 * The alerter role (group `group_alerting`): evaluates the alert rules on the accepted events and
 * raises notifications (docs/alerts.md).
 *
 * - Milestones: each event of a rule's type on a target the rule watches adds one to the series
 *   (rule, target) in the milestone store, which applies each event once by its position in the
 *   events topic and claims each threshold crossed once, ever.
 * - Thresholds over a window and spikes: each event adds to its minute of the series in the
 *   series store, once by its position; each series touched is then evaluated as stored and the
 *   result committed if no other process changed the series meanwhile (series-evaluation.ts).
 *
 * What either raised becomes notifications with deterministic ids, handed to `notify` (the
 * notification store and topic) before the stores forget them and the batch is committed. A
 * crash anywhere in between redelivers the batch, which counts nothing again and answers the same
 * pending notifications: one may be written twice, never lost, and always under the same id.
 */
import type {
  MilestoneCrossing,
  MilestoneIncrement,
  MilestoneStore,
} from '../infra/alerts/milestone-store.ts';
import type { Notification } from '../infra/alerts/notification-store.ts';
import type { SeriesStore } from '../infra/alerts/series-store.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import { alertEvaluationMetrics } from '../infra/metrics.ts';
import type { LoggedEvent } from '../pipeline/event-consumer.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';
import { digest, evaluateSeries, occurredMs, seriesIncrements } from './series-evaluation.ts';
import {
  OWNER_ATTRIBUTE,
  type RulesInForce,
  seriesName,
  subjectOf,
  type WatchedMilestone,
  watchedSubject,
} from './watched-rules.ts';

export interface AlerterConfig extends SinkRoleConfig {
  /**
   * How late an event may be, by occurred time behind the latest of its series, and still count
   * in its minute for threshold and spike rules (ms); default {@link DEFAULT_ALERT_LATENESS_MS}.
   */
  latenessMs?: number;
}

/** The default lateness bound of threshold and spike rules: a minute. */
export const DEFAULT_ALERT_LATENESS_MS = 60_000;

export interface AlerterDeps extends SinkRoleDeps {
  milestones: MilestoneStore;
  /** The series of threshold and spike rules. */
  series: SeriesStore;
  /** The rules in force now (enabled ones), by event type. */
  rules: () => RulesInForce;
  /** Writes notifications where their readers find them; resolves once they are durable. */
  notify: (notifications: readonly Notification[]) => Promise<void>;
}

export function start(deps: AlerterDeps, config: AlerterConfig): Promise<Stoppable> {
  const latenessMs = config.latenessMs ?? DEFAULT_ALERT_LATENESS_MS;
  const metrics = alertEvaluationMetrics(deps.metrics);
  return startSinkRole(deps, config, {
    name: 'alerter',
    spanName: 'alerter evaluate',
    apply: async (batches) => {
      const rules = deps.rules();
      if (rules.size === 0) return;
      const events = batches.flatMap((b) => b.events);
      const { increments, touched: milestoneTouched } = milestoneIncrements(rules, events);
      const series = seriesIncrements(rules, events, latenessMs);
      const [crossings, evaluated] = await Promise.all([
        increments.length > 0 ? deps.milestones.apply(increments) : [],
        evaluateSeries(deps.series, series.increments, series.touched, { latenessMs }),
      ]);
      if (evaluated.late > 0) metrics.lateEvents.inc(evaluated.late);
      if (evaluated.conflicts > 0) metrics.conflicts.inc(evaluated.conflicts);
      const notifications = [
        ...crossings.map((c) => milestoneNotification(c, milestoneTouched.get(c.series)!)),
        ...evaluated.pending.flatMap((p) => p.notifications),
      ];
      if (notifications.length === 0) return;
      await deps.notify(notifications);
      await Promise.all([
        crossings.length > 0 ? deps.milestones.confirm(crossings) : undefined,
        ...evaluated.pending.map((p) =>
          deps.series.confirm(
            p.series,
            p.notifications.map((n) => n.id),
          ),
        ),
      ]);
    },
  });
}

/** The milestone increments of a batch's events: one per event and rule watching it. */
function milestoneIncrements(rules: RulesInForce, events: readonly LoggedEvent[]) {
  const increments: MilestoneIncrement[] = [];
  /** Per series, its rule and the last event that touched it (its owner, its time). */
  const touched = new Map<string, { rule: WatchedMilestone; last: LoggedEvent }>();
  for (const logged of events) {
    const milestones = rules.ofType(logged.event.type)?.milestones;
    if (!milestones) continue;
    for (const rule of milestones) {
      const target = watchedSubject(rule, logged.event.type, logged.event.target);
      if (target === undefined) continue;
      const series = milestoneSeries(rule.ruleId, target);
      increments.push({
        series,
        partition: logged.partition,
        offset: logged.position,
        amount: 1,
        thresholds: rule.thresholds,
      });
      touched.set(series, { rule, last: logged });
    }
  }
  return { increments, touched };
}

/** The milestone store's series of a rule and a target. */
export function milestoneSeries(ruleId: string, target: string): string {
  return seriesName(ruleId, target);
}

/**
 * The notification of a crossing: its id depends on the rule, the target and the threshold only,
 * so the same crossing answered again is the same notification.
 */
export function milestoneNotification(
  crossing: MilestoneCrossing,
  { rule, last }: { rule: WatchedMilestone; last: LoggedEvent },
): Notification {
  const target = subjectOf(crossing.series);
  const owner = last.event.attributes[OWNER_ATTRIBUTE];
  const recipients = [...rule.recipients];
  if (rule.notifyOwner && owner) recipients.push(`user:${owner}`);
  return {
    id: `milestone:${rule.ruleId}:${digest(target)}:${crossing.threshold}`,
    ruleId: rule.ruleId,
    kind: 'milestone',
    target,
    type: rule.type,
    value: crossing.count,
    threshold: crossing.threshold,
    occurredAt: new Date(occurredMs(last)),
    recipients: recipients.length > 0 ? [...new Set(recipients)] : ['dashboard'],
    message: `${target} reached ${crossing.threshold.toLocaleString('en-US')} ${rule.type} events`,
  };
}
