/**
 * Local webhook receivers for the delivery phase, in a process of their own (its CPU is then
 * accounted apart from the roles'), made and read over a control port:
 *
 *   node bench/lib/webhook-sink.ts     # prints {"port":N} (the control port) once listening
 *
 *   POST   /sinks?latencyMs=5&record=1  → {"id","port"}: a receiver on 127.0.0.1:<port> answering
 *                                        every POST 200 after latencyMs; with record=1 it keeps
 *                                        each event's first arrival (epoch ms) by the body's `id`
 *   GET    /sinks/<id>[?arrivals=1]     → {"requests","answered","recorded","arrivals"?: [[eventId, ms], …]}
 *   DELETE /sinks/<id>                  → closes it
 *
 * An arrival is when the request's headers came in: the first byte of a delivery attempt, as far
 * as the receiver can tell. Signatures are not checked (a receiver's cost, not Tally's).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Sink {
  server: Server;
  requests: number;
  answered: number;
  arrivals: Map<string, number> | undefined;
}

export async function startWebhookSinks(port = 0): Promise<{ server: Server; port: number }> {
  const sinks = new Map<string, Sink>();
  let made = 0;
  const open = async (latencyMs: number, record: boolean) => {
    const sink: Sink = {
      server: createServer(),
      requests: 0,
      answered: 0,
      arrivals: record ? new Map() : undefined,
    };
    sink.server.keepAliveTimeout = 60_000;
    sink.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const atMs = Date.now();
      sink.requests++;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (sink.arrivals) {
          try {
            const id = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: unknown }).id;
            if (typeof id === 'string' && !sink.arrivals.has(id)) sink.arrivals.set(id, atMs);
          } catch {
            // not JSON: counted, not recorded
          }
        }
        const answer = () => {
          if (res.destroyed) return;
          sink.answered++;
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' }).end('{}');
        };
        if (latencyMs > 0) setTimeout(answer, latencyMs);
        else answer();
      });
    });
    await new Promise<void>((resolve) => sink.server.listen(0, '127.0.0.1', resolve));
    const id = String(++made);
    sinks.set(id, sink);
    return { id, port: (sink.server.address() as AddressInfo).port };
  };

  const json = (res: ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const control = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://control');
    const id = /^\/sinks\/(\d+)$/.exec(url.pathname)?.[1];
    if (req.method === 'POST' && url.pathname === '/sinks') {
      const latencyMs = Number(url.searchParams.get('latencyMs') ?? '0');
      void open(Number.isFinite(latencyMs) ? latencyMs : 0, url.searchParams.get('record') === '1').then(
        (made) => json(res, 200, made),
      );
      return;
    }
    const sink = id === undefined ? undefined : sinks.get(id);
    if (!sink) return json(res, 404, { error: 'no such sink' });
    if (req.method === 'GET')
      return json(res, 200, {
        requests: sink.requests,
        answered: sink.answered,
        recorded: sink.arrivals?.size ?? 0,
        ...(sink.arrivals && url.searchParams.get('arrivals') === '1'
          ? { arrivals: [...sink.arrivals] }
          : {}),
      });
    if (req.method === 'DELETE') {
      sinks.delete(id!);
      sink.server.closeAllConnections();
      sink.server.close();
      return json(res, 200, {});
    }
    json(res, 405, { error: 'method not allowed' });
  });
  await new Promise<void>((resolve) => control.listen(port, '127.0.0.1', resolve));
  return { server: control, port: (control.address() as AddressInfo).port };
}

if (import.meta.main) {
  const { port } = await startWebhookSinks();
  process.stdout.write(`${JSON.stringify({ port })}\n`);
}
