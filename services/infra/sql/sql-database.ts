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
  close(): Promise<void>;
}
