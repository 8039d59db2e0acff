/**
 * The stored events (table `event`, written by the persister) read back in (occurred_at, id)
 * order by keyset: one descent of an index of migration 0012 and `limit` adjacent entries,
 * whatever the table's size. Times are whole microseconds since the epoch (PostgreSQL's own
 * precision), carried as bigint so that a position is exact; ids compare byte-wise (COLLATE "C").
 */
import type { EventSubject } from '../../domain/event-access.ts';
import type { SqlExecutor } from '../sql/sql-database.ts';

/** A place in the order: the (occurred_at, id) of an event. */
export interface EventPosition {
  occurredUs: bigint;
  id: string;
}

/** Which events: one subject's, optionally of one type, occurred in [fromUs, toUs). */
export interface EventFilter {
  subject: EventSubject;
  type?: string;
  fromUs?: bigint;
  toUs?: bigint;
}

export interface EventScan extends EventFilter {
  /** `asc`: oldest first; `desc`: newest first. */
  direction: 'asc' | 'desc';
  /** Only events strictly beyond this position in `direction`. */
  after?: EventPosition;
  limit: number;
}

/** An event as stored. */
export interface StoredEvent {
  id: string;
  type: string;
  target: string;
  userId: string;
  ip: string;
  value: number | null;
  occurredUs: bigint;
  receivedUs: bigint;
  attributes: Record<string, string>;
}

interface RawEvent {
  id: string;
  type: string;
  target: string;
  user_id: string;
  ip: string;
  value: number | null;
  occurred_us: string;
  received_us: string;
  attributes: Record<string, string> | string;
}

/** A microsecond count as a timestamptz: exact (an interval is whole microseconds; 2^53 µs is 285 years). */
const AT = (param: string) => `(timestamptz 'epoch' + ${param}::int8 * interval '1 microsecond')`;

/** The WHERE clause of `filter` (and `after`, for `direction`), and its parameters. */
function conditions(filter: EventFilter, after?: EventPosition, direction?: 'asc' | 'desc') {
  const params: unknown[] = [filter.subject.id];
  const where = [filter.subject.kind === 'user' ? 'user_id = $1' : 'target = $1'];
  const param = (value: unknown) => `$${params.push(value)}`;
  if (filter.type !== undefined) where.push(`type = ${param(filter.type)}`);
  if (filter.fromUs !== undefined) where.push(`occurred_at >= ${AT(param(filter.fromUs.toString()))}`);
  if (filter.toUs !== undefined) where.push(`occurred_at < ${AT(param(filter.toUs.toString()))}`);
  if (after) {
    const op = direction === 'desc' ? '<' : '>';
    const at = AT(param(after.occurredUs.toString()));
    where.push(`(occurred_at, id COLLATE "C") ${op} (${at}, ${param(after.id)} COLLATE "C")`);
    // Implied by the row comparison, but only a bound on occurred_at alone lets PostgreSQL leave
    // out the day partitions already passed (a deep page of a long range descends no newer day).
    where.push(`occurred_at ${op}= ${at}`);
  }
  return { where: where.join(' AND '), params, param };
}

/** Up to `scan.limit` events of the filter beyond `scan.after`, in `scan.direction`. */
export async function scanEvents(sql: SqlExecutor, scan: EventScan): Promise<StoredEvent[]> {
  const { where, params, param } = conditions(scan, scan.after, scan.direction);
  const dir = scan.direction === 'desc' ? 'DESC' : 'ASC';
  const rows = await sql.query<RawEvent>(
    `SELECT id, type, target, user_id, ip, value,
            (extract(epoch FROM occurred_at) * 1000000)::int8::text AS occurred_us,
            (extract(epoch FROM received_at) * 1000000)::int8::text AS received_us, attributes
       FROM event WHERE ${where}
      ORDER BY occurred_at ${dir}, id COLLATE "C" ${dir} LIMIT ${param(scan.limit)}`,
    params,
  );
  return rows.map((r) => ({
    id: r.id,
    type: r.type,
    target: r.target,
    userId: r.user_id,
    ip: r.ip,
    value: r.value,
    occurredUs: BigInt(r.occurred_us),
    receivedUs: BigInt(r.received_us),
    attributes: typeof r.attributes === 'string' ? JSON.parse(r.attributes) : r.attributes,
  }));
}

/**
 * The planner's estimate of the events `filter` matches (EXPLAIN's row count: from the table's
 * statistics, no row read). Rough: off by a factor for skewed subjects until ANALYZE has run.
 */
export async function estimateEvents(sql: SqlExecutor, filter: EventFilter): Promise<number> {
  const { where, params } = conditions(filter);
  const [row] = await sql.query<{ 'QUERY PLAN': unknown }>(
    `EXPLAIN (FORMAT JSON) SELECT 1 FROM event WHERE ${where}`,
    params,
  );
  const plan = row?.['QUERY PLAN'];
  const parsed = (typeof plan === 'string' ? JSON.parse(plan) : plan) as [{ Plan: { 'Plan Rows': number } }];
  return Math.max(0, Math.round(parsed[0].Plan['Plan Rows']));
}
