/**
 * The gateway's WebSocket upgrades: only the stream's path is one, and only while the gateway
 * accepts requests. A refused handshake is answered as a REST error would be (`restError`: the
 * same status, headers and JSON body), then the connection is closed.
 */
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { AppError, Code, shuttingDown } from '../infra/app-error.ts';
import { restError } from '../infra/http/http-server.ts';
import { requestUrl } from './request-context.ts';
import { STREAM_PATH } from './route-docs.ts';
import type { StreamServer } from './stream-server.ts';

/** A listener of the HTTP server's `upgrade` event. */
export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * Hands an upgrade of `STREAM_PATH` to `stream`; refuses any other path with 404, and every
 * upgrade with 503 once `accepting()` is false (the gateway drains).
 */
export function createUpgradeHandler(stream: StreamServer, accepting: () => boolean): UpgradeHandler {
  return (request, socket, head) => {
    socket.on('error', () => {}); // a reset during the handshake is the client's business
    const path = requestUrl(request.url)?.pathname;
    if (path !== STREAM_PATH) {
      const message = `no WebSocket at ${path ?? 'this request target'} (the stream is ${STREAM_PATH})`;
      return refuse(socket, new AppError(Code.NOT_FOUND, message));
    }
    if (!accepting()) return refuse(socket, shuttingDown());
    stream.handleUpgrade(request, socket, head);
  };
}

/** Answers the handshake with a REST error and closes the connection. */
function refuse(socket: Duplex, error: AppError): void {
  const { status, headers, body } = restError(error);
  const text = JSON.stringify(body);
  const lines = Object.entries({
    ...headers,
    connection: 'close',
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
  }).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${lines.join('')}\r\n${text}`);
}
