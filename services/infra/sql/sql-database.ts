/**
 * The SQL port: PostgreSQL dialect, positional parameters ($1...). Adapters:
 * PostgreSQL through pg (pg-database.ts), PGlite in the process (pglite-database.ts).
 */

export interface SqlExecutor {
  /** Runs one statement; returns its rows. */
  query<Row extends object = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<Row[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

export interface SqlDatabase extends SqlExecutor {
  /** Which adapter, for the start-up log. */
  readonly description: string;
  /** Runs `work` in one transaction on the primary: committed if it resolves, rolled back if it throws. */
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Where reads that tolerate replication lag go (a replica when configured, else the primary). */
  readonly reader: SqlExecutor;
  /** Resolves when the primary answers `SELECT 1`; for readiness, untimed. */
  ping(): Promise<void>;
  /**
   * Sends each payload (at most 7,900 bytes) on `channel` of this database's schema (PostgreSQL
   * NOTIFY, delivered on commit to every listener of the channel, on the primary only).
   */
  notify(channel: string, payloads: readonly string[]): Promise<void>;
  /**
   * Calls `onPayload` with each payload sent on `channel` of this schema from now on, and
   * `onGap` (if given) whenever notifications may have been missed (the listening connection was
   * lost and is being opened again). Resolves once listening; the function it resolves with stops.
   */
  listen(
    channel: string,
    onPayload: (payload: string) => void,
    onGap?: () => void,
  ): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** The PostgreSQL channel of `channel` in `schema` (channels are per database, not per schema). */
export function schemaChannel(schema: string, channel: string): string {
  return `${schema}.${channel}`;
}

/** Largest payload `notify` sends: PostgreSQL refuses 8,000 bytes and more. */
export const MAX_NOTIFY_PAYLOAD_BYTES = 7_900;

/** Sends each of `payloads` on `channel` (already the schema's) in one statement. */
export const NOTIFY_SQL = 'SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p';

/**
 * `db` whose every call first waits for `ready` (say, the schema's migrations), and fails with its
 * error when it failed. The process's roles get this view while migrations run in the background.
 */
export function afterReady(db: SqlDatabase, ready: Promise<unknown>): SqlDatabase {
  ready.catch(() => {}); // reported by every call
  const gate =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      await ready;
      return fn(...args);
    };
  const gated = <E extends SqlExecutor>(executor: E): SqlExecutor => ({
    query: gate(executor.query.bind(executor)) as SqlExecutor['query'],
    exec: gate(executor.exec.bind(executor)),
  });
  return {
    description: db.description,
    ...gated(db),
    reader: gated(db.reader),
    transaction: gate(db.transaction.bind(db)) as SqlDatabase['transaction'],
    ping: gate(() => db.ping()),
    notify: gate(db.notify.bind(db)),
    listen: gate(db.listen.bind(db)),
    close: () => db.close(),
  };
}
