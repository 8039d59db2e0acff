/**
 * PostgreSQL through pg: a pool on the primary for writes and transactions,
 * pools on read replicas (round robin) for reads that tolerate lag.
 */
import pg from 'pg';
import { AppError, Code } from '../app-error.ts';
import { pgMetrics, type Registry, secondsSince, sqlOperation } from '../metrics.ts';
import { NOTIFY_SQL, type SqlDatabase, type SqlExecutor, schemaChannel } from './sql-database.ts';

export interface PgDatabaseOptions {
  url: string;
  readUrls: readonly string[];
  /** Schema every connection uses (search_path). */
  schema: string;
  poolSize: number;
  /** Times each statement there when given (docs/metrics.md). */
  metrics?: Registry;
}

// bigint (int8) and numeric arrive as strings by default; counts fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export function createPgDatabase(options: PgDatabaseOptions): SqlDatabase {
  const pool = (url: string) => {
    const p = new pg.Pool({
      connectionString: url,
      max: options.poolSize,
      options: `-c search_path=${options.schema}`,
      connectionTimeoutMillis: 5_000,
    });
    p.on('error', () => {}); // an idle client's error; the next query reports its own
    return p;
  };
  const primary = pool(options.url);
  const replicas = options.readUrls.map(pool);
  let next = 0;
  const listeners = new Set<ReturnType<typeof listenOn>>();
  const duration = options.metrics && pgMetrics(options.metrics).duration;

  /** One statement (`script`: a script of several, timed as `script`). */
  const run = async <Row extends object>(
    on: pg.Pool | pg.PoolClient,
    text: string,
    params?: readonly unknown[],
    script = false,
  ): Promise<Row[]> => {
    const startMs = performance.now();
    try {
      const result = await on.query(text, params as unknown[] | undefined);
      return result.rows as Row[];
    } catch (error) {
      throw classify(error);
    } finally {
      duration?.observe({ operation: script ? 'script' : sqlOperation(text) }, secondsSince(startMs));
    }
  };

  const reader: SqlExecutor = {
    exec: async (script) => void (await run(primary, script, undefined, true)),
    query: (text, params) => {
      if (replicas.length === 0) return run(primary, text, params);
      const replica = replicas[next++ % replicas.length]!;
      return run(replica, text, params);
    },
  };

  return {
    description: `postgresql (pg, ${redact(options.url)}${replicas.length ? ` + ${replicas.length} read replica(s)` : ''}, schema ${options.schema})`,
    query: (text, params) => run(primary, text, params),
    exec: async (script) => void (await run(primary, script, undefined, true)),
    reader,
    async transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await primary.connect();
      } catch (error) {
        throw classify(error);
      }
      let broken = false;
      // A checked-out client has no listener of the pool's: a server that goes away between two
      // statements (a restart, a failover) would emit an unhandled 'error' and end the process.
      // The statement in flight, or the next one, fails on its own and the transaction rolls back.
      const onError = () => {
        broken = true;
      };
      client.on('error', onError);
      try {
        await run(client, 'BEGIN');
        const result = await work({
          query: (text, params) => run(client, text, params),
          exec: async (script) => void (await run(client, script, undefined, true)),
        });
        await run(client, 'COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw error; // statements were classified by run(); the work's own errors pass as they are
      } finally {
        client.removeListener('error', onError);
        client.release(broken);
      }
    },
    async ping(): Promise<void> {
      try {
        await primary.query('SELECT 1');
      } catch (error) {
        throw classify(error);
      }
    },
    async notify(channel, payloads) {
      if (payloads.length > 0)
        await run(primary, NOTIFY_SQL, [schemaChannel(options.schema, channel), payloads]);
    },
    async listen(channel, onPayload, onGap) {
      const listener = listenOn(options.url, schemaChannel(options.schema, channel), onPayload, onGap);
      listeners.add(listener);
      await listener.started;
      return async () => {
        listeners.delete(listener);
        await listener.stop();
      };
    },
    async close(): Promise<void> {
      await Promise.all([
        primary.end(),
        ...replicas.map((r) => r.end()),
        ...[...listeners].map((l) => l.stop()),
      ]);
    },
  };
}

/** Delay before a lost listening connection is opened again. */
const LISTEN_RETRY_MS = 1_000;

/**
 * LISTEN on a connection of its own to the primary (a pooled one would be handed to others).
 * `started` resolves after the first attempt, listening or not: a failed or lost connection is
 * opened again every LISTEN_RETRY_MS, and `onGap` is called each time listening resumes.
 */
function listenOn(
  url: string,
  name: string,
  onPayload: (payload: string) => void,
  onGap: (() => void) | undefined,
): { started: Promise<void>; stop(): Promise<void> } {
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  let stopped = false;
  const lost = (c: pg.Client) => {
    if (c !== client) return;
    client = undefined;
    c.end().catch(() => {});
    schedule();
  };
  const schedule = () => {
    if (stopped || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void attempt().then((ok) => ok && onGap?.());
    }, LISTEN_RETRY_MS);
  };
  const attempt = async (): Promise<boolean> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    c.on('notification', (n) => {
      if (n.channel === name) onPayload(n.payload ?? '');
    });
    c.on('error', () => lost(c));
    c.on('end', () => lost(c));
    client = c;
    try {
      await c.connect();
      await c.query(`LISTEN "${name.replaceAll('"', '""')}"`);
      if (stopped) await c.end();
      return !stopped;
    } catch {
      lost(c);
      return false;
    }
  };
  return {
    started: attempt().then(() => {}),
    async stop() {
      stopped = true;
      clearTimeout(retry);
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}

/** Connection-level failures are UNAVAILABLE (retry later); SQL errors keep their SQLSTATE in the cause. */
function classify(error: unknown): unknown {
  if (error instanceof AppError) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    // Class 08 connection exception, 53 insufficient resources, 57P01-03 shutdown, 40001/40P01 retry.
    if (/^(08|53|57P0)/.test(code) || code === '40001' || code === '40P01')
      return new AppError(Code.UNAVAILABLE, 'PostgreSQL unavailable', { cause: error });
    return error;
  }
  return new AppError(Code.UNAVAILABLE, 'PostgreSQL unavailable', { cause: error });
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*)(:[^@/]*)?@/, '//$1@');
}
