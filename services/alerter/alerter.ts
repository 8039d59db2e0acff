/**
 * The alerter role (group `group_alerting`): evaluates the alert rules on the accepted events and
 * raises notifications (docs/alerts.md). Milestones: each event of a rule's type on a target the
 * rule watches adds one to the series (rule, target) in the milestone store, which applies each
 * event once by its position in the events topic and claims each threshold crossed once, ever;
 * the crossings become notifications with deterministic ids, handed to `notify` (the
 * notifications topic) before the store forgets them and the batch is committed. A crash anywhere
 * in between redelivers the batch, which counts nothing again and answers the same crossings:
 * a notification may be written twice, never lost, and always under the same id.
 */
import { createHash } from 'node:crypto';
import type {
  MilestoneCrossing,
  MilestoneIncrement,
  MilestoneStore,
} from '../infra/alerts/milestone-store.ts';
import type { Notification } from '../infra/alerts/notification-store.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { LoggedEvent } from '../pipeline/event-consumer.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';

export type AlerterConfig = SinkRoleConfig;

/** What the alerter needs of a milestone rule. */
export interface WatchedMilestone {
  ruleId: string;
  /** The event type counted. */
  type: string;
  /** The one target watched, or every target starting with `targetPrefix`. */
  target?: string;
  targetPrefix?: string;
  /** Ascending. */
  thresholds: readonly number[];
  /** `user:<id>`, `group:<name>`, `dashboard`. */
  recipients: readonly string[];
  /** Whether the target's owner (the event attribute {@link OWNER_ATTRIBUTE}) is told too. */
  notifyOwner: boolean;
}

/** The event attribute naming a target's owner, who a rule may notify. */
export const OWNER_ATTRIBUTE = 'owner';

export interface AlerterDeps extends SinkRoleDeps {
  milestones: MilestoneStore;
  /** The milestone rules in force now (enabled ones). */
  rules: () => readonly WatchedMilestone[];
  /** Writes notifications where their readers find them; resolves once they are durable. */
  notify: (notifications: readonly Notification[]) => Promise<void>;
}

/** Separates a rule's id from a target in a series' name (neither holds it). */
const SEPARATOR = '\u0000';

export function start(deps: AlerterDeps, config: AlerterConfig): Promise<Stoppable> {
  return startSinkRole(deps, config, {
    name: 'alerter',
    spanName: 'alerter evaluate',
    apply: async (batches) => {
      const rules = deps.rules();
      if (rules.length === 0) return;
      const increments: MilestoneIncrement[] = [];
      /** Per series, its rule and the last event that touched it (its owner, its time). */
      const touched = new Map<string, { rule: WatchedMilestone; last: LoggedEvent }>();
      for (const { events } of batches)
        for (const logged of events)
          for (const rule of rules) {
            if (!watches(rule, logged.event.type, logged.event.target)) continue;
            const series = milestoneSeries(rule.ruleId, logged.event.target);
            increments.push({
              series,
              partition: logged.partition,
              offset: logged.position,
              amount: 1,
              thresholds: rule.thresholds,
            });
            touched.set(series, { rule, last: logged });
          }
      if (increments.length === 0) return;
      const crossings = await deps.milestones.apply(increments);
      if (crossings.length === 0) return;
      await deps.notify(crossings.map((c) => milestoneNotification(c, touched.get(c.series)!)));
      await deps.milestones.confirm(crossings);
    },
  });
}

/** The milestone store's series of a rule and a target. */
export function milestoneSeries(ruleId: string, target: string): string {
  return `${ruleId}${SEPARATOR}${target}`;
}

/** Whether `rule` counts an event of `type` on `target`. */
export function watches(rule: WatchedMilestone, type: string, target: string): boolean {
  if (rule.type !== type) return false;
  if (rule.target !== undefined) return rule.target === target;
  return rule.targetPrefix !== undefined && target.startsWith(rule.targetPrefix);
}

/**
 * The notification of a crossing: its id depends on the rule, the target and the threshold only,
 * so the same crossing answered again is the same notification.
 */
export function milestoneNotification(
  crossing: MilestoneCrossing,
  { rule, last }: { rule: WatchedMilestone; last: LoggedEvent },
): Notification {
  const target = crossing.series.slice(crossing.series.indexOf(SEPARATOR) + 1);
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
    occurredAt: occurredAt(last),
    recipients: recipients.length > 0 ? [...new Set(recipients)] : ['dashboard'],
    message: `${target} reached ${crossing.threshold.toLocaleString('en-US')} ${rule.type} events`,
  };
}

/** A short, stable digest of a target (targets may be long or hold any character). */
function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22);
}

/** When the event happened: its occurred time, else when it was received. */
function occurredAt({ event }: LoggedEvent): Date {
  const at = event.occurredAt ?? event.receivedAt;
  return at ? new Date(Number(at.seconds) * 1000 + Math.floor(at.nanos / 1e6)) : new Date(0);
}
