/**
 * The notification store on the SQL port (migration 0007_notifications.sql): one insert per
 * batch of notifications, ids already kept skipped (`ON CONFLICT DO NOTHING`), listings paged on
 * `seq`, reads kept per recipient.
 */
import type { SqlDatabase } from '../sql/sql-database.ts';
import type {
  Notification,
  NotificationFilter,
  NotificationKind,
  NotificationPage,
  NotificationQuery,
  NotificationStore,
  RecordedNotifications,
  StoredNotification,
} from './notification-store.ts';

/** The advisory lock (pg_advisory_xact_lock) that serializes the writers of notifications. */
const RECORD_LOCK = 7_344_201_607;

/** Most notifications one listing answers. */
export const MAX_PAGE = 1_000;

interface Row {
  seq: string | number | bigint;
  id: string;
  rule_id: string;
  kind: NotificationKind;
  target: string;
  type: string;
  subject: string | null;
  value: number;
  threshold: number | null;
  window_minutes: number | null;
  baseline: number | null;
  score: number | null;
  occurred_at: Date | string;
  recipients: string[];
  message: string;
  created_at: Date | string;
  read: boolean;
}

const COLUMNS = `n.seq, n.id, n.rule_id, n.kind, n.target, n.type, n.subject, n.value, n.threshold,
  n.window_minutes, n.baseline, n.score, n.occurred_at, n.recipients, n.message, n.created_at`;

export function createSqlNotificationStore(sql: SqlDatabase): NotificationStore {
  return {
    async record(notifications: readonly Notification[]): Promise<RecordedNotifications> {
      if (notifications.length === 0) return { added: 0, stored: [] };
      const column = <T>(pick: (n: Notification) => T) => notifications.map(pick);
      // One writer at a time, the lock held to the commit: seqs are taken in the order they
      // become visible, so a reader that saw seq s has seen every lower one (`since`).
      const rows = await sql.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock($1)`, [RECORD_LOCK]);
        return tx.query<{ id: string }>(
          `INSERT INTO notification (id, rule_id, kind, target, type, subject, value, threshold,
           window_minutes, baseline, score, occurred_at, recipients, message)
         SELECT n.id, n.rule_id, n.kind, n.target, n.type, n.subject, n.value, n.threshold,
           n.window_minutes, n.baseline, n.score, n.occurred_at,
           ARRAY(SELECT json_array_elements_text(n.recipients::json)), n.message
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
           $7::float8[], $8::float8[], $9::int[], $10::float8[], $11::float8[], $12::timestamptz[],
           $13::text[], $14::text[])
           AS n(id, rule_id, kind, target, type, subject, value, threshold, window_minutes,
             baseline, score, occurred_at, recipients, message)
         ON CONFLICT (id) DO NOTHING
         RETURNING id`,
          [
            column((n) => n.id),
            column((n) => n.ruleId),
            column((n) => n.kind),
            column((n) => n.target),
            column((n) => n.type),
            column((n) => n.subject ?? null),
            column((n) => n.value),
            column((n) => n.threshold ?? null),
            column((n) => n.windowMinutes ?? null),
            column((n) => n.baseline ?? null),
            column((n) => n.score ?? null),
            column((n) => n.occurredAt.toISOString()),
            // A text[][] cannot be ragged: each notification's recipients travel as a JSON array.
            column((n) => JSON.stringify(n.recipients)),
            column((n) => n.message),
          ],
        );
      });
      const ids = [...new Set(notifications.map((n) => n.id))];
      const kept = await sql.query<Row>(
        `SELECT ${COLUMNS}, false AS read FROM notification n WHERE n.id = ANY($1::text[])`,
        [ids],
      );
      const byId = new Map(kept.map((row) => [row.id, toStored(row)]));
      return { added: rows.length, stored: ids.map((id) => byId.get(id)!) };
    },

    async list(query: NotificationQuery): Promise<NotificationPage> {
      const limit = Math.min(Math.max(1, Math.floor(query.limit)), MAX_PAGE);
      const where: string[] = [];
      const params: unknown[] = [query.recipient ?? null];
      const param = (value: unknown) => {
        params.push(value);
        return `$${params.length}`;
      };
      if (query.recipient !== undefined) where.push(`n.recipients @> ARRAY[$1::text]`);
      if (query.target !== undefined) where.push(`n.target = ${param(query.target)}`);
      if (query.ruleId !== undefined) where.push(`n.rule_id = ${param(query.ruleId)}`);
      if (query.before !== undefined) where.push(`n.seq < ${param(query.before)}::bigint`);
      const rows = await sql.query<Row>(
        `SELECT ${COLUMNS},
           EXISTS (SELECT 1 FROM notification_read r
                   WHERE r.notification_id = n.id AND r.recipient = $1::text) AS read
         FROM notification n
         ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY n.seq DESC
         LIMIT ${param(limit + 1)}`,
        params,
      );
      const page = rows.slice(0, limit).map(toStored);
      return rows.length > limit
        ? { notifications: page, nextCursor: page[page.length - 1]!.seq }
        : { notifications: page };
    },

    async since(afterSeq: string, filter: NotificationFilter, limit: number): Promise<StoredNotification[]> {
      const params: unknown[] = [afterSeq];
      const param = (value: unknown) => {
        params.push(value);
        return `$${params.length}`;
      };
      const where = [`n.seq > $1::bigint`];
      if (filter.recipients !== undefined)
        where.push(`n.recipients && ${param([...filter.recipients])}::text[]`);
      if (filter.target !== undefined) where.push(`n.target = ${param(filter.target)}`);
      const rows = await sql.query<Row>(
        `SELECT ${COLUMNS}, false AS read
         FROM notification n
         WHERE ${where.join(' AND ')}
         ORDER BY n.seq
         LIMIT ${param(Math.min(Math.max(1, Math.floor(limit)), MAX_PAGE))}`,
        params,
      );
      return rows.map(toStored);
    },

    async latestSeq(): Promise<string> {
      const [row] = await sql.query<{ seq: string | number | bigint | null }>(
        `SELECT max(seq) AS seq FROM notification`,
      );
      return String(row?.seq ?? 0);
    },

    async markRead(recipient: string, ids: readonly string[]): Promise<number> {
      if (ids.length === 0) return 0;
      const rows = await sql.query<{ notification_id: string }>(
        `INSERT INTO notification_read (notification_id, recipient)
         SELECT n.id, $1::text FROM notification n
         WHERE n.id = ANY($2::text[]) AND n.recipients @> ARRAY[$1::text]
         ON CONFLICT DO NOTHING
         RETURNING notification_id`,
        [recipient, [...ids]],
      );
      return rows.length;
    },
  };
}

function toStored(row: Row): StoredNotification {
  return {
    seq: String(row.seq),
    id: row.id,
    ruleId: row.rule_id,
    kind: row.kind,
    target: row.target,
    type: row.type,
    ...(row.subject === null ? {} : { subject: row.subject }),
    value: Number(row.value),
    ...(row.threshold === null ? {} : { threshold: Number(row.threshold) }),
    ...(row.window_minutes === null ? {} : { windowMinutes: Number(row.window_minutes) }),
    ...(row.baseline === null ? {} : { baseline: Number(row.baseline) }),
    ...(row.score === null ? {} : { score: Number(row.score) }),
    occurredAt: new Date(row.occurred_at),
    recipients: row.recipients,
    message: row.message,
    createdAt: new Date(row.created_at),
    read: Boolean(row.read),
  };
}
