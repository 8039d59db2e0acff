/**
 * The worker thread that runs PGlite for pglite-database.ts. PostgreSQL compiled to WebAssembly
 * runs synchronously on the thread that calls it: a first start's initialisation (seconds) and
 * every statement would otherwise hold the event loop that serves requests. Requests arrive as
 * messages, one at a time in order (the connection is single, as a PostgreSQL session is).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, types } from '@electric-sql/pglite';

/** A request from the main thread. */
export type WorkerRequest =
  | { id: number; op: 'query'; text: string; params?: unknown[] }
  | { id: number; op: 'exec'; text: string }
  | { id: number; op: 'listen'; channel: string }
  | { id: number; op: 'unlisten'; channel: string }
  | { id: number; op: 'close' };

/** The answer to request `id`: rows, or the error in a form that crosses threads. */
export type WorkerResponse =
  | { id: number; ok: true; rows?: unknown[] }
  | { id: number; ok: false; error: { message: string; code?: string; detail?: string; name?: string } };

/** A notification on a channel the main thread listens to (not an answer: no id). */
export interface WorkerNotification {
  notification: { channel: string; payload: string };
}

export interface WorkerInit {
  dataDir: string;
  schema: string;
}

if (parentPort) {
  const port = parentPort;
  const { dataDir, schema } = workerData as WorkerInit;
  const db = new PGlite(dataDir, {
    // Counts fit in a double, as with the pg adapter.
    parsers: { [types.INT8]: (value: string) => Number(value) },
  });
  const opening = (async () => {
    await db.waitReady;
    await db.exec(`CREATE SCHEMA IF NOT EXISTS "${schema}"; SET search_path TO "${schema}"`);
  })();
  let queue: Promise<unknown> = opening.catch(() => {});
  /** The channels listened to, each with the function that stops listening. */
  const unlisten = new Map<string, () => Promise<void>>();
  port.on('message', (request: WorkerRequest) => {
    queue = queue.then(async () => {
      let response: WorkerResponse;
      try {
        await opening;
        if (request.op === 'query')
          response = { id: request.id, ok: true, rows: (await db.query(request.text, request.params)).rows };
        else if (request.op === 'exec') {
          await db.exec(request.text);
          response = { id: request.id, ok: true };
        } else if (request.op === 'listen') {
          const { channel } = request;
          unlisten.set(
            channel,
            await db.listen(`"${channel.replaceAll('"', '""')}"`, (payload) =>
              port.postMessage({ notification: { channel, payload } } satisfies WorkerNotification),
            ),
          );
          response = { id: request.id, ok: true };
        } else if (request.op === 'unlisten') {
          await unlisten.get(request.channel)?.();
          unlisten.delete(request.channel);
          response = { id: request.id, ok: true };
        } else {
          await db.close();
          response = { id: request.id, ok: true };
        }
      } catch (error) {
        const e = error as { message?: string; code?: string; detail?: string; name?: string };
        response = {
          id: request.id,
          ok: false,
          error: { message: e.message ?? String(error), code: e.code, detail: e.detail, name: e.name },
        };
      }
      port.postMessage(response);
    });
  });
}
