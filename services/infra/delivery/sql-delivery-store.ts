/**
 * The delivery store on the SQL port (PostgreSQL, or PGlite embedded): tables `delivery`,
 * `delivery_attempt` and `delivery_position` (migration 0009_deliveries.sql).
 *
 * Claims are leases: an UPDATE that sets `lease_owner`/`lease_until` on rows chosen as due and
 * unleased, re-checked row by row by the UPDATE itself, so two senders claiming at once never
 * take the same delivery. With per-user order, only a user's first pending delivery (lowest
 * `seq`) is a candidate: the next one becomes one when the first is finished.
 */
import type { SqlDatabase, SqlExecutor } from '../sql/sql-database.ts';
import type {
  AttemptRecord,
  ClaimedDelivery,
  ClaimOptions,
  DeliveryStore,
  Finish,
} from './delivery-store.ts';

export interface SqlDeliveryStoreOptions {
  sql: SqlDatabase;
}

/** Rows per INSERT statement (14 parameters each: well under PostgreSQL's 65,535). */
const INSERT_CHUNK = 500;

const date = (ms: number) => new Date(ms);

function bytesOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string' && value.startsWith('\\x')) return Buffer.from(value.slice(2), 'hex');
  throw new Error('delivery body: unexpected bytea value');
}

async function insertAttempts(
  tx: SqlExecutor,
  destinationId: string,
  rows: readonly { messageId: string; attempt: AttemptRecord }[],
): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    const chunk = rows.slice(i, i + INSERT_CHUNK);
    const params: unknown[] = [destinationId];
    const values = chunk.map(({ messageId, attempt: a }) => {
      const at = params.length;
      params.push(
        messageId,
        a.attempt,
        date(a.atMs),
        a.outcome,
        a.status ?? null,
        Math.round(a.latencyMs),
        a.error ?? null,
      );
      return `($1, $${at + 1}, $${at + 2}, $${at + 3}, $${at + 4}, $${at + 5}, $${at + 6}, $${at + 7})`;
    });
    await tx.query(
      `INSERT INTO delivery_attempt
         (destination_id, message_id, attempt, attempted_at, outcome, status, latency_ms, error)
       VALUES ${values.join(', ')}
       ON CONFLICT DO NOTHING`,
      params,
    );
  }
}

export function createSqlDeliveryStore(options: SqlDeliveryStoreOptions): DeliveryStore {
  const { sql } = options;
  return {
    description: `delivery store on ${sql.description}`,

    async positions(destinationId, topicPartition, sourcePartitions) {
      if (sourcePartitions.length === 0) return new Map();
      const rows = await sql.query<{ source_partition: number; source_offset: string }>(
        `SELECT source_partition, source_offset::text AS source_offset FROM delivery_position
          WHERE destination_id = $1 AND topic_partition = $2 AND source_partition = ANY($3::int[])`,
        [destinationId, topicPartition, [...sourcePartitions]],
      );
      return new Map(rows.map((r) => [Number(r.source_partition), BigInt(r.source_offset)]));
    },

    async blockedUsers(destinationId, userKeys) {
      if (userKeys.length === 0) return new Set();
      const rows = await sql.query<{ user_key: string }>(
        `SELECT DISTINCT user_key FROM delivery
          WHERE destination_id = $1 AND state = 'pending' AND user_key = ANY($2::text[])`,
        [destinationId, [...userKeys]],
      );
      return new Set(rows.map((r) => r.user_key));
    },

    async settle(destinationId, topicPartition, parked, positions, nowMs) {
      if (parked.length === 0 && positions.size === 0) return;
      await sql.transaction(async (tx) => {
        const parkedAt = date(nowMs);
        for (let i = 0; i < parked.length; i += INSERT_CHUNK) {
          const chunk = parked.slice(i, i + INSERT_CHUNK);
          const params: unknown[] = [destinationId, topicPartition, parkedAt];
          const values = chunk.map((p) => {
            const at = params.length;
            const last = p.log[p.log.length - 1];
            params.push(
              p.messageId,
              p.userKey,
              p.eventId,
              p.eventType,
              date(p.occurredAtMs),
              p.sourcePartition,
              p.sourceOffset.toString(),
              Buffer.from(p.body.buffer, p.body.byteOffset, p.body.byteLength),
              p.state,
              p.attempts,
              p.state === 'pending' ? date(p.nextAttemptAtMs) : null,
              p.lease?.owner ?? null,
              p.lease ? date(p.lease.untilMs) : null,
              last?.status ?? null,
              last?.error ?? null,
            );
            const n = (k: number) => `$${at + k}`;
            return `($1, ${n(1)}, ${n(2)}, ${n(3)}, ${n(4)}, ${n(5)}, $2, ${n(6)}, ${n(7)}::bigint, ${n(8)}, ${n(9)}, ${n(10)}, ${n(11)}, ${n(12)}, ${n(13)}, ${n(14)}, ${n(15)}, $3, ${p.state === 'dead' ? '$3' : 'NULL::timestamptz'})`;
          });
          await tx.query(
            `INSERT INTO delivery
               (destination_id, message_id, user_key, event_id, event_type, occurred_at, topic_partition,
                source_partition, source_offset, body, state, attempts, next_attempt_at, lease_owner,
                lease_until, last_status, last_error, parked_at, finished_at)
             VALUES ${values.join(', ')}
             ON CONFLICT (destination_id, message_id) DO NOTHING`,
            params,
          );
        }
        const attempts = parked.flatMap((p) => p.log.map((attempt) => ({ messageId: p.messageId, attempt })));
        await insertAttempts(tx, destinationId, attempts);
        if (positions.size > 0) {
          const sources = [...positions.keys()];
          await tx.query(
            `INSERT INTO delivery_position (destination_id, topic_partition, source_partition, source_offset)
             SELECT $1, $2, s.p, s.o::bigint FROM unnest($3::int[], $4::text[]) AS s (p, o)
             ON CONFLICT (destination_id, topic_partition, source_partition)
             DO UPDATE SET source_offset = GREATEST(delivery_position.source_offset, excluded.source_offset)`,
            [destinationId, topicPartition, sources, sources.map((s) => positions.get(s)!.toString())],
          );
        }
      });
    },

    async dueDestinations(nowMs) {
      const rows = await sql.query<{ destination_id: string }>(
        `SELECT DISTINCT destination_id FROM delivery
          WHERE state = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)`,
        [date(nowMs)],
      );
      return rows.map((r) => r.destination_id);
    },

    async claim(destinationId, o: ClaimOptions) {
      const now = date(o.nowMs);
      // Candidates: due and unleased; with per-user order, each user's first pending delivery only.
      const candidates = o.perUser
        ? `SELECT message_id, next_attempt_at FROM (
             SELECT DISTINCT ON (user_key) message_id, next_attempt_at, lease_until FROM delivery
              WHERE destination_id = $1 AND state = 'pending'
              ORDER BY user_key, seq
           ) AS head
           WHERE next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2)`
        : `SELECT message_id, next_attempt_at FROM delivery
            WHERE destination_id = $1 AND state = 'pending' AND next_attempt_at <= $2
              AND (lease_until IS NULL OR lease_until <= $2)`;
      const rows = await sql.query<{
        message_id: string;
        user_key: string;
        body: unknown;
        attempts: number;
        retry_from: number;
      }>(
        `WITH due AS (${candidates} ORDER BY next_attempt_at LIMIT $3)
         UPDATE delivery AS d SET lease_owner = $4, lease_until = $5
           FROM due
          WHERE d.destination_id = $1 AND d.message_id = due.message_id AND d.state = 'pending'
            AND (d.lease_until IS NULL OR d.lease_until <= $2)
         RETURNING d.message_id, d.user_key, d.body, d.attempts, d.retry_from`,
        [destinationId, now, o.limit, o.owner, date(o.nowMs + o.leaseMs)],
      );
      return rows.map((r) => ({
        destinationId,
        messageId: r.message_id,
        userKey: r.user_key,
        body: bytesOf(r.body),
        attempts: Number(r.attempts),
        retryFrom: Number(r.retry_from),
        leaseOwner: o.owner,
      }));
    },

    async finish(claim: ClaimedDelivery, finish: Finish, nowMs: number) {
      return sql.transaction(async (tx) => {
        const key = [claim.destinationId, claim.messageId, claim.leaseOwner];
        const attempt = finish.attempt;
        const status = attempt?.status ?? null;
        const error = attempt?.error ?? null;
        const counted = attempt ? 1 : 0;
        let rows: unknown[];
        if (finish.kind === 'delivered' || finish.kind === 'dead')
          rows = await tx.query(
            `UPDATE delivery SET state = $4, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL,
                    next_attempt_at = NULL, finished_at = $5, last_status = $6, last_error = $7
              WHERE destination_id = $1 AND message_id = $2 AND lease_owner = $3 AND state = 'pending'
              RETURNING 1`,
            [...key, finish.kind, date(nowMs), status, error],
          );
        else
          rows = await tx.query(
            `UPDATE delivery SET attempts = attempts + $4, lease_owner = NULL, lease_until = NULL,
                    next_attempt_at = $5, last_status = COALESCE($6, last_status), last_error = COALESCE($7, last_error)
              WHERE destination_id = $1 AND message_id = $2 AND lease_owner = $3 AND state = 'pending'
              RETURNING 1`,
            [...key, counted, date(finish.nextAttemptAtMs), status, error],
          );
        if (rows.length === 0) return false;
        if (attempt) await insertAttempts(tx, claim.destinationId, [{ messageId: claim.messageId, attempt }]);
        return true;
      });
    },

    async hasPending(destinationId) {
      const rows = await sql.query(
        `SELECT 1 FROM delivery WHERE destination_id = $1 AND state = 'pending' LIMIT 1`,
        [destinationId],
      );
      return rows.length > 0;
    },

    async pendingCounts() {
      const rows = await sql.query<{ destination_id: string; n: string }>(
        `SELECT destination_id, count(*)::text AS n FROM delivery WHERE state = 'pending' GROUP BY destination_id`,
      );
      return new Map(rows.map((r) => [r.destination_id, Number(r.n)]));
    },

    async prune({ deliveredBeforeMs, deadBeforeMs, limit }) {
      const rows = await sql.query(
        `DELETE FROM delivery WHERE (destination_id, message_id) IN (
           SELECT destination_id, message_id FROM delivery
            WHERE (state = 'delivered' AND finished_at < $1) OR (state = 'dead' AND finished_at < $2)
               OR destination_id IN (SELECT id FROM destination WHERE deleted_at IS NOT NULL)
            LIMIT $3)
         RETURNING 1`,
        [date(deliveredBeforeMs), date(deadBeforeMs), limit],
      );
      await sql.query(
        `DELETE FROM delivery_position WHERE destination_id IN (SELECT id FROM destination WHERE deleted_at IS NOT NULL)`,
      );
      return rows.length;
    },
  };
}
