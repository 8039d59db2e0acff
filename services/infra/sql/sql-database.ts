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
  close(): Promise<void>;
}

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
    close: () => db.close(),
  };
}
