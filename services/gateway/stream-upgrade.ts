/**
 * The gateway's WebSocket upgrades: only the stream's path is one, and only while the gateway
 * accepts requests. A refused handshake is answered as a REST error would be (`restError`: the
 * same status, headers and JSON body), then the connection is closed.
 */
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Principal } from '../domain/api-keys.ts';
import { AppError, Code, shuttingDown } from '../infra/app-error.ts';
import { restError } from '../infra/http/http-server.ts';
import { requestUrl } from './request-context.ts';
import { STREAM_PATH } from './route-docs.ts';
import { BEARER_PROTOCOL } from './socket-hub.ts';
import type { StreamServer } from './stream-server.ts';

/** A listener of the HTTP server's `upgrade` event. */
export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** With access control on, how the handshake's credential is checked (as the stream's, socket-hub.ts). */
export interface UpgradeAuth {
  check(authorization: string): Promise<Principal>;
}

/**
 * The credential of a handshake: its `Authorization` header (clients other than browsers), else a
 * subprotocol `bearer.<key or JWT>` of `Sec-WebSocket-Protocol` (browsers cannot set headers).
 */
export function handshakeAuthorization(request: IncomingMessage): string | undefined {
  if (request.headers.authorization) return request.headers.authorization;
  const offered = (request.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  const bearer = offered.find((p) => p.startsWith(BEARER_PROTOCOL));
  return bearer === undefined ? undefined : `Bearer ${bearer.slice(BEARER_PROTOCOL.length)}`;
}

/**
 * Hands an upgrade of `STREAM_PATH` to `stream`; refuses any other path with 404, and every
 * upgrade with 503 once `accepting()` is false (the gateway drains). With `auth`, a handshake
 * carrying a credential is checked first (401 or 403 as REST answers them); one without may still
 * authenticate with its first message.
 */
export function createUpgradeHandler(
  stream: StreamServer,
  accepting: () => boolean,
  auth?: UpgradeAuth,
): UpgradeHandler {
  return (request, socket, head) => {
    socket.on('error', () => {}); // a reset during the handshake is the client's business
    const path = requestUrl(request.url)?.pathname;
    if (path !== STREAM_PATH) {
      const message = `no WebSocket at ${path ?? 'this request target'} (the stream is ${STREAM_PATH})`;
      return refuse(socket, new AppError(Code.NOT_FOUND, message));
    }
    if (!accepting()) return refuse(socket, shuttingDown());
    const authorization = auth ? handshakeAuthorization(request) : undefined;
    if (!auth || authorization === undefined) return stream.handleUpgrade(request, socket, head);
    auth.check(authorization).then(
      (principal) => stream.handleUpgrade(request, socket, head, { authorization, principal }),
      (error: unknown) => refuse(socket, error instanceof AppError ? error : shuttingDown()),
    );
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
