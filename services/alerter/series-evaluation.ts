/**
 * Threshold and spike rules, evaluated on the series store (docs/alerts.md). A batch's events add
 * to their series' minutes (once each, by partition and offset); then each series touched is read
 * as stored — every replica's events in it, not only this batch's — and its detector run over the
 * minutes closed since its last evaluation and over the open ones (domain/alert-detectors.ts).
 * The next state and the notifications raised are committed only if no one changed the series
 * since it was read; otherwise it is read and evaluated again. What a commit leaves pending is
 * written by the caller and then confirmed.
 *
 * Notification ids name the rule, the subject and the minute that fired, so that however often a
 * committed notification is written (a crash before its confirmation), it is one notification.
 */
import { createHash } from 'node:crypto';
import {
  evaluateSpikes,
  evaluateWindow,
  INITIAL_SPIKE_STATE,
  INITIAL_WINDOW_STATE,
  judgeOpenSpike,
  judgeOpenWindow,
  lastClosedMinute,
  MAX_CATCH_UP_MINUTES,
  MINUTE_MS,
  minuteOf,
  type SpikeState,
  type WindowState,
} from '../domain/alert-detectors.ts';
import type { Notification } from '../infra/alerts/notification-store.ts';
import type { SeriesIncrement, SeriesSnapshot, SeriesStore } from '../infra/alerts/series-store.ts';
import { AppError, Code } from '../infra/app-error.ts';
import type { LoggedEvent } from '../pipeline/event-consumer.ts';
import {
  OWNER_ATTRIBUTE,
  type RulesInForce,
  seriesName,
  subjectOf,
  type WatchedSpike,
  type WatchedWindow,
  watchedSubject,
} from './watched-rules.ts';

/** A series touched by a batch: its rule, and the last event that touched it (its owner). */
interface Touched {
  rule: WatchedWindow | WatchedSpike;
  last: LoggedEvent;
}

export interface SeriesEvaluationOptions {
  /** How late an event may be, by occurred time, and still count in its minute (ms). */
  latenessMs: number;
  /** Attempts at a series whose commit keeps being refused before the batch fails. */
  maxAttempts?: number;
}

export interface SeriesOutcome {
  /** Every notification pending on the series touched, to write and then confirm. */
  pending: { series: string; notifications: Notification[] }[];
  /** Events later than the lateness bound, not counted. */
  late: number;
  /** Commits refused because the series changed meanwhile (evaluated again). */
  conflicts: number;
}

/** The series increments of a batch's events for the threshold and spike rules in force. */
export function seriesIncrements(
  rules: RulesInForce,
  events: readonly LoggedEvent[],
  latenessMs: number,
): { increments: SeriesIncrement[]; touched: Map<string, Touched> } {
  const increments: SeriesIncrement[] = [];
  const touched = new Map<string, Touched>();
  for (const logged of events) {
    const { event } = logged;
    const ofType = rules.ofType(event.type);
    if (!ofType || (ofType.windows.length === 0 && ofType.spikes.length === 0)) continue;
    const occurredAtMs = occurredMs(logged);
    const minute = minuteOf(occurredAtMs);
    const add = (rule: WatchedWindow | WatchedSpike, amount: number, ttlMs: number) => {
      const subject = watchedSubject(rule, event.type, event.target, event.userId);
      if (subject === undefined) return;
      const series = seriesName(rule.ruleId, subject);
      increments.push({
        series,
        partition: logged.partition,
        offset: logged.position,
        minute,
        occurredAtMs,
        amount,
        ttlMs,
      });
      touched.set(series, { rule, last: logged });
    };
    for (const rule of ofType.windows)
      add(rule, rule.measure === 'sum' ? (event.value ?? 0) : 1, windowTtlMs(rule, latenessMs));
    for (const rule of ofType.spikes) add(rule, 1, spikeTtlMs(rule));
  }
  return { increments, touched };
}

/**
 * Applies the increments, evaluates every series they touched and commits each result; answers
 * what is pending to be written. Throws (the batch is redelivered) when the store fails or a
 * series' commit is refused `maxAttempts` times in a row.
 */
export async function evaluateSeries(
  store: SeriesStore,
  increments: readonly SeriesIncrement[],
  touched: ReadonlyMap<string, Touched>,
  options: SeriesEvaluationOptions,
): Promise<SeriesOutcome> {
  const maxAttempts = options.maxAttempts ?? 8;
  const outcome: SeriesOutcome = { pending: [], late: 0, conflicts: 0 };
  if (increments.length === 0) return outcome;
  const snapshots = await store.apply(increments);
  await Promise.all(
    snapshots.map(async (first) => {
      outcome.late += first.late;
      const { rule, last } = touched.get(first.series)!;
      let snapshot = first;
      for (let attempt = 1; ; attempt++) {
        const step = evaluate(rule, snapshot, last, options.latenessMs);
        let pending: Map<string, string> | undefined = snapshot.pending;
        if (step) {
          pending = await store.commit({
            series: snapshot.series,
            expectedVersion: snapshot.version,
            ...step,
          });
          if (pending === undefined) {
            outcome.conflicts++;
            if (attempt >= maxAttempts)
              throw new AppError(
                Code.ABORTED,
                `the alert series of rule ${rule.ruleId} kept changing during ${maxAttempts} evaluations`,
              );
            snapshot = (await store.read([snapshot.series]))[0]!;
            continue;
          }
        }
        if (pending.size > 0)
          outcome.pending.push({
            series: snapshot.series,
            notifications: [...pending.values()].map(parseNotification),
          });
        return;
      }
    }),
  );
  return outcome;
}

/**
 * One evaluation of a series as read: the commit to make, or undefined when there is nothing to
 * write (no minute newly closed, nothing fired).
 */
function evaluate(
  rule: WatchedWindow | WatchedSpike,
  snapshot: SeriesSnapshot,
  last: LoggedEvent,
  latenessMs: number,
) {
  if (snapshot.latestMs === 0) return undefined;
  const currentMinute = minuteOf(snapshot.latestMs);
  const closedMinute = Math.max(
    snapshot.closedMinute ?? Number.NEGATIVE_INFINITY,
    lastClosedMinute(snapshot.latestMs, latenessMs),
  );
  const notifications = new Map<string, string>();
  let state: string;
  let keepFromMinute: number;
  let ttlMs: number;
  const subject = subjectOf(snapshot.series);
  if ('window' in rule) {
    const before = snapshot.state ? (JSON.parse(snapshot.state) as WindowState) : INITIAL_WINDOW_STATE;
    const closed = evaluateWindow(rule.window, before, snapshot.totals, closedMinute);
    const open = judgeOpenWindow(rule.window, closed.state, snapshot.totals, closedMinute, currentMinute);
    for (const firing of open.firing ? [...closed.firings, open.firing] : closed.firings) {
      const n = windowNotification(rule, subject, firing.minute, firing.value, last);
      notifications.set(n.id, serializeNotification(n));
    }
    state = JSON.stringify(open.state);
    keepFromMinute = closedMinute - rule.window.windowMinutes + 2;
    ttlMs = windowTtlMs(rule, latenessMs);
  } else {
    const before = snapshot.state ? (JSON.parse(snapshot.state) as SpikeState) : INITIAL_SPIKE_STATE;
    const closed = evaluateSpikes(rule.spike, before, snapshot.totals, closedMinute);
    const open = judgeOpenSpike(rule.spike, closed.state, snapshot.totals, closedMinute, currentMinute);
    for (const alert of open.alert ? [...closed.alerts, open.alert] : closed.alerts) {
      const n = spikeNotification(rule, subject, alert, last);
      notifications.set(n.id, serializeNotification(n));
    }
    state = JSON.stringify(open.state);
    keepFromMinute = closedMinute + 1;
    ttlMs = spikeTtlMs(rule);
  }
  if (notifications.size === 0 && state === snapshot.state && closedMinute === snapshot.closedMinute)
    return undefined;
  return { state, closedMinute, keepFromMinute, notifications, ttlMs };
}

/** How long an idle window series is kept: past its window, re-arm and lateness it holds nothing. */
function windowTtlMs(rule: WatchedWindow, latenessMs: number): number {
  return (rule.window.windowMinutes + rule.window.rearmMinutes + 2) * MINUTE_MS + latenessMs;
}

/**
 * How long an idle spike series is kept: the baseline forgets its history in a few half-lives,
 * and an evaluation restarts it after {@link MAX_CATCH_UP_MINUTES} of silence anyway.
 */
function spikeTtlMs(rule: WatchedSpike): number {
  return (
    Math.min(Math.max(4 * rule.spike.halfLifeMinutes, MAX_CATCH_UP_MINUTES), 4 * MAX_CATCH_UP_MINUTES) *
    MINUTE_MS
  );
}

function windowNotification(
  rule: WatchedWindow,
  subject: string,
  minute: number,
  value: number,
  last: LoggedEvent,
): Notification {
  const onUser = rule.userId !== undefined;
  const what = rule.measure === 'sum' ? `${rule.type} value` : `${rule.type} events`;
  const span = `${rule.window.windowMinutes} min`;
  return {
    id: `threshold:${rule.ruleId}:${digest(subject)}:${minute}`,
    ruleId: rule.ruleId,
    kind: 'threshold',
    target: onUser ? '' : subject,
    ...(onUser ? { subject } : {}),
    type: rule.type,
    value,
    threshold: rule.window.threshold,
    windowMinutes: rule.window.windowMinutes,
    occurredAt: new Date(minute * MINUTE_MS),
    recipients: recipientsOf(rule, onUser ? undefined : last),
    message: `${onUser ? `user ${subject}` : subject}: ${formatNumber(value)} ${what} in ${span} (threshold ${formatNumber(rule.window.threshold)})`,
  };
}

function spikeNotification(
  rule: WatchedSpike,
  target: string,
  alert: { minute: number; count: number; baseline: number; z: number },
  last: LoggedEvent,
): Notification {
  const usual = alert.baseline < 10 ? alert.baseline.toFixed(1) : formatNumber(Math.round(alert.baseline));
  return {
    id: `spike:${rule.ruleId}:${digest(target)}:${alert.minute}`,
    ruleId: rule.ruleId,
    kind: 'spike',
    target,
    type: rule.type,
    value: alert.count,
    baseline: alert.baseline,
    score: alert.z,
    occurredAt: new Date(alert.minute * MINUTE_MS),
    recipients: recipientsOf(rule, last),
    message: `${target}: ${formatNumber(alert.count)} ${rule.type} events in a minute, usually ${usual} (z ${alert.z.toFixed(1)})`,
  };
}

/** The rule's recipients, the target's owner when it asks for them, else the dashboard. */
function recipientsOf(rule: WatchedWindow | WatchedSpike, last: LoggedEvent | undefined): string[] {
  const recipients = [...rule.recipients];
  const owner = last?.event.attributes[OWNER_ATTRIBUTE];
  if (rule.notifyOwner && owner) recipients.push(`user:${owner}`);
  return recipients.length > 0 ? [...new Set(recipients)] : ['dashboard'];
}

/** A notification as the store keeps it pending (its time as ms). */
export function serializeNotification(n: Notification): string {
  return JSON.stringify({ ...n, occurredAt: n.occurredAt.getTime() });
}

export function parseNotification(text: string): Notification {
  const raw = JSON.parse(text) as Omit<Notification, 'occurredAt'> & { occurredAt: number };
  return { ...raw, occurredAt: new Date(raw.occurredAt) };
}

/** A short, stable digest of a subject (targets may be long or hold any character). */
export function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22);
}

/** When the event happened: its occurred time, else when it was received. */
export function occurredMs({ event }: LoggedEvent): number {
  const at = event.occurredAt ?? event.receivedAt;
  return at ? Number(at.seconds) * 1000 + Math.floor(at.nanos / 1e6) : 0;
}

function formatNumber(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: 2 });
}
