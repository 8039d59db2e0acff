/**
 * A discard receiver for OTLP/HTTP traces: accepts `POST /v1/traces` (any body, read and thrown
 * away), answers 200 with an empty ExportTraceServiceResponse, and counts the requests and their
 * bytes; `GET /stats` answers `{"requests","bytes"}`. What the roles export to while the harness
 * measures tracing's cost: a collector that costs nothing and never pushes back. Run as a process
 * of its own (its CPU is then accounted apart from the roles'):
 *
 *   node bench/lib/otlp-sink.ts     # prints {"port":N} once listening
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OtlpSink {
  server: Server;
  port: number;
  stats(): { requests: number; bytes: number };
}

export async function startOtlpSink(port = 0): Promise<OtlpSink> {
  let requests = 0;
  let bytes = 0;
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ requests, bytes }));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
      res.writeHead(404).end();
      return;
    }
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      requests++;
      // An empty protobuf message: every span accepted.
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '0' });
      res.end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, stats: () => ({ requests, bytes }) };
}

if (import.meta.main) {
  const sink = await startOtlpSink();
  process.stdout.write(`${JSON.stringify({ port: sink.port })}\n`);
}
