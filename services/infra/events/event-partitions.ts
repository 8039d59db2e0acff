/**
 * The day partitions of `event` (migration 0015): one per UTC day of event time, named
 * `event_pYYYYMMDD`, made ahead and on demand by `event_ensure_day`, and dropped whole by the
 * retention (TALLY_EVENT_RETENTION_DAYS) together with their days' rows of `event_id`
 * (docs/architecture.md, "The event table by day").
 */
import type { SqlDatabase, SqlExecutor } from '../sql/sql-database.ts';

/** What reading and making partitions needs: statements. */
type SqlQuery = Pick<SqlExecutor, 'query'>;

export const DAY_MS = 86_400_000;

/** The advisory lock of the maintenance: held by one process at a time, each step under it. */
const MAINTENANCE_LOCK = 7_245_016;
/** How long a partition's drop waits for the table's lock before giving up until the next run. */
const DROP_LOCK_TIMEOUT = '5s';
/** Ids deleted per statement (and transaction), so that no one statement holds many row locks. */
const ID_DELETE_BATCH = 10_000;

/** The UTC day (days since the epoch) of a time in ms. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** `YYYY-MM-DD` of a day number. */
export function dayText(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** The partition of a day: `event_pYYYYMMDD`. */
export function partitionName(day: number): string {
  return `event_p${dayText(day).replaceAll('-', '')}`;
}

/** The day of a partition's name, or undefined for a name that is not one. */
function dayOfPartition(name: string): number | undefined {
  const m = /^event_p(\d{4})(\d{2})(\d{2})$/.exec(name);
  return m ? dayOf(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
}

/**
 * Makes the partitions of `days` that do not exist yet (in one statement, in day order); resolves
 * with the days it made.
 */
export async function ensureEventDays(sql: SqlQuery, days: Iterable<number>): Promise<number[]> {
  const wanted = [...new Set(days)].sort((a, b) => a - b);
  if (wanted.length === 0) return [];
  const rows = await sql.query<{ made: boolean }>(
    'SELECT event_ensure_day(d) AS made FROM unnest($1::date[]) WITH ORDINALITY AS u(d, n) ORDER BY n',
    [wanted.map(dayText)],
  );
  return wanted.filter((_, i) => rows[i]?.made);
}

/** The days that have a partition, oldest first. */
export async function eventDays(sql: SqlQuery): Promise<number[]> {
  const rows = await sql.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'event'::regclass`,
  );
  return rows
    .map((r) => dayOfPartition(r.name))
    .filter((d) => d !== undefined)
    .sort((a, b) => a - b);
}

export interface EventMaintenanceOptions {
  /** Now, ms since the epoch. */
  nowMs: number;
  /** Days of events kept before today's; 0 keeps every day. */
  retentionDays: number;
  /** Days after today whose partitions are made ahead (default 3); yesterday's is made too. */
  aheadDays?: number;
}

export interface EventMaintenanceOutcome {
  /** False when another process held the maintenance lock: this one did nothing. */
  ran: boolean;
  /** Days whose partitions were made, and dropped. */
  made: number[];
  dropped: number[];
  /** Rows of `event_id` deleted (the ids of the dropped days). */
  idsDeleted: number;
  /** Days past the retention still there: their drop waited too long for the table's lock. */
  pending: number[];
}

/**
 * The first day the retention keeps: every partition before it ends at least `retentionDays`
 * days before now. Never later than today (a retention of at least one day keeps today whole).
 */
export function firstKeptDay(nowMs: number, retentionDays: number): number {
  return Math.min(dayOf(nowMs - retentionDays * DAY_MS), dayOf(nowMs));
}

/**
 * One run of the partitions' maintenance, each step in a transaction of its own under one
 * advisory lock (`pg_try_advisory_xact_lock`: a process that does not get it skips the step, so
 * one process at a time does the work): makes the partitions of yesterday to `aheadDays` ahead;
 * with a retention, drops the partitions wholly older than it (each waits at most 5 s for the
 * table's lock, else it is left for the next run) and then deletes the ids of those days from
 * `event_id`, a batch at a time — never an id whose day still has its partition.
 */
export async function maintainEventPartitions(
  sql: Pick<SqlDatabase, 'transaction'>,
  options: EventMaintenanceOptions,
): Promise<EventMaintenanceOutcome> {
  const today = dayOf(options.nowMs);
  const outcome: EventMaintenanceOutcome = { ran: false, made: [], dropped: [], idsDeleted: 0, pending: [] };
  const underLock = <T>(work: (tx: SqlExecutor) => Promise<T>): Promise<{ held: boolean; value?: T }> =>
    sql.transaction(async (tx) => {
      const [row] = await tx.query<{ held: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS held', [
        MAINTENANCE_LOCK,
      ]);
      if (!row?.held) return { held: false };
      return { held: true, value: await work(tx) };
    });

  const ahead = Array.from({ length: (options.aheadDays ?? 3) + 2 }, (_, i) => today - 1 + i);
  const first = await underLock(async (tx) => {
    const made = await ensureEventDays(tx, ahead);
    return { made, days: await eventDays(tx) };
  });
  if (!first.held || !first.value) return outcome;
  outcome.ran = true;
  outcome.made = first.value.made;
  if (options.retentionDays <= 0) return outcome;

  const keepFrom = firstKeptDay(options.nowMs, options.retentionDays);
  const expired = first.value.days.filter((d) => d < keepFrom && d < today);
  for (const day of expired) {
    try {
      const step = await underLock(async (tx) => {
        await tx.query(`SET LOCAL lock_timeout = '${DROP_LOCK_TIMEOUT}'`);
        await tx.query(`DROP TABLE IF EXISTS "${partitionName(day)}"`);
      });
      if (!step.held) break;
      outcome.dropped.push(day);
    } catch (error) {
      if ((error as { code?: string }).code !== '55P03') throw error; // lock_not_available
      outcome.pending = expired.filter((d) => d >= day);
      break;
    }
  }
  // Ids only of days without their partition: an id whose event is still stored keeps its row.
  const idsBefore = Math.min(keepFrom, ...outcome.pending);
  for (;;) {
    const step = await underLock((tx) =>
      tx.query<{ n: number }>(
        `WITH gone AS (
           DELETE FROM event_id WHERE id IN (
             SELECT id FROM event_id WHERE occurred_at < to_timestamp($1::float8 / 1000) LIMIT $2)
           RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
        [idsBefore * DAY_MS, ID_DELETE_BATCH],
      ),
    );
    const n = step.value?.[0]?.n ?? 0;
    outcome.idsDeleted += n;
    if (!step.held || n < ID_DELETE_BATCH) break;
  }
  return outcome;
}

/** Per database handle, the days whose partitions this process made or found. */
const knownDays = new WeakMap<object, Set<number>>();

/**
 * Makes sure the partitions of `days` exist, asking the database only about the days not yet
 * made or found through `sql` by this process (a batch's days are nearly always known).
 */
export async function ensureEventDaysOnce(sql: SqlQuery, days: Iterable<number>): Promise<void> {
  let known = knownDays.get(sql);
  if (!known) {
    known = new Set();
    knownDays.set(sql, known);
  }
  const missing = [...new Set(days)].filter((d) => !known.has(d));
  if (missing.length === 0) return;
  await ensureEventDays(sql, missing);
  for (const d of missing) known.add(d);
}

/** Forgets the days known through `sql` (a partition was dropped since: retention). */
export function forgetEventDays(sql: SqlQuery): void {
  knownDays.delete(sql);
}

/** Whether `error` is PostgreSQL's refusal of a row whose day has no partition. */
export function isMissingPartition(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e.code === '23514' && /no partition of relation/.test(e.message ?? '');
}
