/**
 * The HTTP servers' listener: node:http, or node:https when the process has TLS material, its
 * certificate replaced on every reload (`setSecureContext`: new connections get the new
 * certificate, open ones keep theirs). An HTTPS server is an http.Server in all but the
 * handshake: the same requests, upgrades (wss), timeouts and closing.
 */
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { ReloadingTls } from '../tls/tls-reloader.ts';

/** An HTTP server, or an HTTPS one following `tls`, with `options` and `handler`. */
export function createListener(
  options: ServerOptions,
  handler: (request: IncomingMessage, response: ServerResponse) => void,
  tls?: ReloadingTls,
): Server {
  if (!tls) return createServer(options, handler);
  const { cert, key } = tls.current;
  const server = createHttpsServer({ ...options, cert, key }, handler);
  const unsubscribe = tls.onChange((material) =>
    server.setSecureContext({ cert: material.cert, key: material.key }),
  );
  server.once('close', unsubscribe);
  return server;
}
