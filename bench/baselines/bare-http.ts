/**
 * Baseline: a bare Node.js HTTP server answering `POST /v1/events` as the gateway does on the
 * wire — parse the JSON body, answer `{"id"}` with the event's id (a new UUID when absent) —
 * with nothing behind it: no validation, no gRPC hop, no Kafka. `GET /readyz` answers 200.
 *
 *   node bench/baselines/bare-http.ts [--port N]     (prints {"port":N} once listening)
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/readyz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (req.method !== 'POST' || req.url !== '/v1/events') {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":5}}');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let id: unknown;
    try {
      id = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: unknown }).id;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"code":3}}');
      return;
    }
    const body = JSON.stringify({ id: typeof id === 'string' && id !== '' ? id : randomUUID() });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
});

server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' ? address?.port : 0 })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
