/**
 * The notification store port: the notifications the alert rules raised, kept for listing and
 * acknowledgement (docs/alerts.md). A notification's id is deterministic, so recording the same
 * notification again — after a redelivery, a restart or a takeover — keeps one. Adapter:
 * sql-notification-store.ts, on the SQL port (PostgreSQL, and PGlite in the embedded mode).
 */

/** What raised a notification: the three kinds of alert rule. */
/** What raised a notification: an alert rule's kind, or a destination the senders disabled. */
export type NotificationKind = 'milestone' | 'threshold' | 'spike' | 'destination';
export const NOTIFICATION_KINDS: readonly NotificationKind[] = [
  'milestone',
  'threshold',
  'spike',
  'destination',
];

/** The recipient every notification may also go to: the dashboard's Alerts panel. */
export const DASHBOARD_RECIPIENT = 'dashboard';

/** A notification as the alerter raises it. */
export interface Notification {
  /** Deterministic: the rule, the series and the threshold or minute that raised it. */
  id: string;
  ruleId: string;
  kind: NotificationKind;
  /** The target of the series ('' for a window over a user's events). */
  target: string;
  /** The event type counted. */
  type: string;
  /** The user, for a window over one user's events. */
  subject?: string;
  /** The count, sum or per-minute count that raised it. */
  value: number;
  /** The milestone or threshold reached (milestone, threshold). */
  threshold?: number;
  /** The window's length (threshold). */
  windowMinutes?: number;
  /** The baseline's mean (spike). */
  baseline?: number;
  /** The minute's score against the baseline (spike). */
  score?: number;
  /** When what raised it happened: the minute, or the event that reached a milestone. */
  occurredAt: Date;
  /** `user:<id>`, `group:<name>`, {@link DASHBOARD_RECIPIENT}: at least one. */
  recipients: readonly string[];
  /** What happened, as people read it. */
  message: string;
}

/** A kept notification. */
export interface StoredNotification extends Notification {
  /** Its place in the order notifications were kept: the cursor of listings and replays. */
  seq: string;
  createdAt: Date;
  /** Whether the recipient a listing was made for has read it (false without a recipient). */
  read: boolean;
}

export interface RecordedNotifications {
  /** How many were not kept before. */
  added: number;
  /** Each id given, as kept, in the order first given. */
  stored: StoredNotification[];
}

export interface NotificationQuery {
  /** Only those addressed to this recipient (and `read` says whether it read them). */
  recipient?: string;
  target?: string;
  ruleId?: string;
  /** Only those kept before this cursor (a `seq`): the next page of a newest-first listing. */
  before?: string;
  /** Most notifications answered (1–1,000). */
  limit: number;
}

/** Which notifications a replay or a watch wants: those matching every field given. */
export interface NotificationFilter {
  /** Addressed to any of these. */
  recipients?: readonly string[];
  /** About this target. */
  target?: string;
}

/** Whether `n` matches `filter`. */
export function matchesFilter(n: Notification, filter: NotificationFilter): boolean {
  if (filter.target !== undefined && n.target !== filter.target) return false;
  if (filter.recipients !== undefined && !filter.recipients.some((r) => n.recipients.includes(r)))
    return false;
  return true;
}

export interface NotificationPage {
  /** Newest first. */
  notifications: StoredNotification[];
  /** The cursor of the next (older) page; undefined when this one is the last. */
  nextCursor?: string;
}

export interface NotificationStore {
  /**
   * Keeps each notification whose id is not kept yet; answers how many were new and every one
   * given as kept (the first time it was: its `seq` and `createdAt`), one per id, in order.
   */
  record(notifications: readonly Notification[]): Promise<RecordedNotifications>;
  /** A page of kept notifications, newest first. */
  list(query: NotificationQuery): Promise<NotificationPage>;
  /**
   * Those matching `filter` kept after the cursor `afterSeq`, oldest first (at most `limit`):
   * what a client that saw `afterSeq` missed. Notifications become visible in `seq` order (one
   * with a higher seq is never seen before one with a lower), so a reader that saw up to a seq
   * misses nothing by asking for those after it.
   */
  since(afterSeq: string, filter: NotificationFilter, limit: number): Promise<StoredNotification[]>;
  /** The highest seq kept ('0' when none): where a watch with nothing to replay starts. */
  latestSeq(): Promise<string>;
  /** Marks notifications read by `recipient` (those addressed to it); answers how many were unread. */
  markRead(recipient: string, ids: readonly string[]): Promise<number>;
}
