/**
 * The delivery log on the SQL port (PostgreSQL, or PGlite embedded): the tables of migration
 * 0009_deliveries.sql, read newest first by `seq` (keyset pages on index `delivery_listing`, or
 * `seq`'s own when no destination is named) and changed by single conditional UPDATEs, so that
 * a redelivery or recovery racing a sender's lease or another call takes effect once.
 */
import type { SqlDatabase } from '../sql/sql-database.ts';
import type { AttemptEntry, DeliveryEntry, DeliveryLog, DeliveryState } from './delivery-log.ts';
import type { AttemptOutcome } from './delivery-store.ts';

export interface SqlDeliveryLogOptions {
  sql: SqlDatabase;
}

interface RawDelivery {
  seq: string;
  message_id: string;
  destination_id: string;
  state: DeliveryState;
  user_key: string;
  event_id: string;
  event_type: string;
  occurred_at: Date | string;
  attempts: number;
  next_attempt_at: Date | string | null;
  last_status: number | null;
  last_error: string | null;
  parked_at: Date | string;
  finished_at: Date | string | null;
}

const COLUMNS = `seq::text AS seq, message_id, destination_id, state, user_key, event_id, event_type, occurred_at,
  attempts, next_attempt_at, last_status, last_error, parked_at, finished_at`;

const ms = (value: Date | string) => new Date(value).getTime();

function entryOf(r: RawDelivery): DeliveryEntry {
  return {
    id: r.message_id,
    destinationId: r.destination_id,
    state: r.state,
    userKey: r.user_key,
    eventId: r.event_id,
    eventType: r.event_type,
    occurredAtMs: ms(r.occurred_at),
    attempts: Number(r.attempts),
    nextAttemptAtMs: r.next_attempt_at === null ? undefined : ms(r.next_attempt_at),
    lastStatus: r.last_status ?? undefined,
    lastError: r.last_error ?? undefined,
    createdAtMs: ms(r.parked_at),
    finishedAtMs: r.finished_at === null ? undefined : ms(r.finished_at),
  };
}

/** A delivery set pending again: due now, its schedule started again, unleased. */
const PENDING_AGAIN = `state = 'pending', next_attempt_at = $2, retry_from = attempts, finished_at = NULL,
  lease_owner = NULL, lease_until = NULL`;

export function createSqlDeliveryLog(options: SqlDeliveryLogOptions): DeliveryLog {
  const { sql } = options;
  const get = async (id: string) => {
    const [row] = await sql.query<RawDelivery>(`SELECT ${COLUMNS} FROM delivery WHERE message_id = $1`, [id]);
    return row ? entryOf(row) : undefined;
  };
  return {
    async list(filter, limit, after) {
      const where: string[] = [];
      const params: unknown[] = [];
      const add = (clause: (p: string) => string, value: unknown) => {
        params.push(value);
        where.push(clause(`$${params.length}`));
      };
      if (filter.destinationId !== undefined) add((p) => `destination_id = ${p}`, filter.destinationId);
      if (filter.state !== undefined) add((p) => `state = ${p}`, filter.state);
      if (filter.userKey !== undefined) add((p) => `user_key = ${p}`, filter.userKey);
      if (filter.sinceMs !== undefined) add((p) => `parked_at >= ${p}`, new Date(filter.sinceMs));
      if (filter.untilMs !== undefined) add((p) => `parked_at < ${p}`, new Date(filter.untilMs));
      if (after !== undefined) add((p) => `seq < ${p}::bigint`, after.toString());
      params.push(limit);
      const rows = await sql.query<RawDelivery>(
        `SELECT ${COLUMNS} FROM delivery ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
          ORDER BY seq DESC LIMIT $${params.length}`,
        params,
      );
      const last = rows[rows.length - 1];
      return {
        entries: rows.map(entryOf),
        ...(rows.length === limit && last ? { last: BigInt(last.seq) } : {}),
      };
    },

    get,

    async attempts(id) {
      const rows = await sql.query<{
        attempt: number;
        attempted_at: Date | string;
        outcome: AttemptOutcome;
        status: number | null;
        latency_ms: number;
        error: string | null;
      }>(
        `SELECT attempt, attempted_at, outcome, status, latency_ms, error FROM delivery_attempt
          WHERE message_id = $1 AND destination_id = (SELECT destination_id FROM delivery WHERE message_id = $1 LIMIT 1)
          ORDER BY attempt`,
        [id],
      );
      return rows.map(
        (r): AttemptEntry => ({
          attempt: Number(r.attempt),
          atMs: ms(r.attempted_at),
          outcome: r.outcome,
          status: r.status ?? undefined,
          latencyMs: Number(r.latency_ms),
          error: r.error ?? undefined,
        }),
      );
    },

    async redeliver(id, nowMs) {
      const [row] = await sql.query<RawDelivery>(
        `UPDATE delivery SET ${PENDING_AGAIN}
          WHERE message_id = $1 AND state <> 'pending' AND body IS NOT NULL
          RETURNING ${COLUMNS}`,
        [id, new Date(nowMs)],
      );
      if (row) return { entry: entryOf(row), changed: true };
      const found = await get(id);
      return found ? { entry: found, changed: false } : undefined;
    },

    async recover(destinationId, sinceMs, nowMs) {
      const rows = await sql.query(
        `UPDATE delivery SET ${PENDING_AGAIN}
          WHERE destination_id = $1 AND state = 'dead' AND finished_at >= $3 AND body IS NOT NULL
          RETURNING 1`,
        [destinationId, new Date(nowMs), new Date(sinceMs)],
      );
      return rows.length;
    },
  };
}
