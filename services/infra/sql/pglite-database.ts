/**
 * PostgreSQL in the process, for the embedded mode: PGlite (Postgres compiled to WebAssembly),
 * file-backed under `dataDir`, run in a worker thread (pglite-worker.ts) so that neither a first
 * start's initialisation nor any statement holds the event loop that serves requests. Same SQL as
 * the server; one session, so statements and transactions run one at a time, in call order.
 */
import { mkdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { WorkerInit, WorkerNotification, WorkerRequest, WorkerResponse } from './pglite-worker.ts';
import { NOTIFY_SQL, type SqlDatabase, type SqlExecutor, schemaChannel } from './sql-database.ts';

export interface PgliteDatabaseOptions {
  dataDir: string;
  /** Schema every statement uses (search_path); created if missing. */
  schema: string;
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type Pending = { resolve: (rows: unknown[]) => void; reject: (error: Error) => void };

/** An error as the worker sent it: its message, and PostgreSQL's SQLSTATE `code` and `detail`. */
function workerError(error: Extract<WorkerResponse, { ok: false }>['error']): Error {
  return Object.assign(new Error(error.message), {
    ...(error.code === undefined ? {} : { code: error.code }),
    ...(error.detail === undefined ? {} : { detail: error.detail }),
  });
}

/**
 * Opens the database in its worker and returns at once: the worker initialises a new data
 * directory (seconds) while the caller goes on; each call waits for the opening, and a failed
 * opening fails every call with its error.
 */
export async function createPgliteDatabase(options: PgliteDatabaseOptions): Promise<SqlDatabase> {
  mkdirSync(options.dataDir, { recursive: true });
  const workerData: WorkerInit = { dataDir: options.dataDir, schema: options.schema };
  const worker = new Worker(new URL('./pglite-worker.ts', import.meta.url), { workerData });
  // The thread keeps the process alive only while a call waits for it: the process's lifetime is its roles'.
  worker.unref();
  const pending = new Map<number, Pending>();
  let nextId = 0;
  let failure: Error | undefined;
  const failAll = (error: Error) => {
    failure ??= error;
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  };
  /** The listeners of each channel (the worker listens once per channel). */
  const channels = new Map<string, Set<(payload: string) => void>>();
  worker.on('message', (response: WorkerResponse | WorkerNotification) => {
    if ('notification' in response) {
      for (const listener of channels.get(response.notification.channel) ?? [])
        listener(response.notification.payload);
      return;
    }
    const p = pending.get(response.id);
    if (!p) return;
    pending.delete(response.id);
    if (pending.size === 0) worker.unref();
    if (response.ok) p.resolve(response.rows ?? []);
    else p.reject(workerError(response.error));
  });
  worker.on('error', (error) => failAll(error));
  worker.on('exit', (code) => failAll(new Error(`the PGlite worker exited (code ${code})`)));

  const send = (request: WithoutId<WorkerRequest>) =>
    new Promise<unknown[]>((resolve, reject) => {
      if (failure) return reject(failure);
      const id = nextId++;
      pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ ...request, id } as WorkerRequest);
    });
  const direct: SqlExecutor = {
    query: async (text, params) => (await send({ op: 'query', text, params: params as unknown[] })) as never,
    exec: async (script) => void (await send({ op: 'exec', text: script })),
  };

  // One session: a transaction holds it from BEGIN to COMMIT, and other calls wait their turn.
  let turn: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const result = turn.then(work);
    turn = result.catch(() => {});
    return result;
  };
  const query: SqlExecutor['query'] = (text, params) => exclusive(() => direct.query(text, params));
  const exec: SqlExecutor['exec'] = (script) => exclusive(() => direct.exec(script));

  return {
    description: `embedded (PGlite in ${options.dataDir}, schema ${options.schema})`,
    query,
    exec,
    reader: { query, exec },
    transaction: (work) =>
      exclusive(async () => {
        await direct.exec('BEGIN');
        try {
          const result = await work(direct);
          await direct.exec('COMMIT');
          return result;
        } catch (error) {
          await direct.exec('ROLLBACK').catch(() => {});
          throw error;
        }
      }),
    ping: async () => void (await query('SELECT 1')),
    async notify(channel, payloads) {
      if (payloads.length > 0) await query(NOTIFY_SQL, [schemaChannel(options.schema, channel), payloads]);
    },
    // One session: no connection to lose, so no gap.
    async listen(channel, onPayload) {
      const name = schemaChannel(options.schema, channel);
      let listeners = channels.get(name);
      if (!listeners) {
        listeners = new Set();
        channels.set(name, listeners);
        await exclusive(() => send({ op: 'listen', channel: name }));
      }
      listeners.add(onPayload);
      return async () => {
        listeners.delete(onPayload);
        if (listeners.size > 0 || channels.get(name) !== listeners) return;
        channels.delete(name);
        await exclusive(() => send({ op: 'unlisten', channel: name })).catch(() => {});
      };
    },
    async close() {
      await exclusive(() => send({ op: 'close' })).catch(() => {});
      await worker.terminate();
    },
  };
}
