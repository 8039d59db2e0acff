/**
 * The sockets of the WebSocket `/v1/stream`: the upgrade (503 when full or stopping), the
 * `hello`, each client message rate-limited and parsed, the pings, and sending with
 * backpressure. What a message asks for is the listener's business (`createStreamServer`).
 */

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Principal } from '../domain/api-keys.ts';
import { Code } from '../infra/app-error.ts';
import type { Logger } from '../infra/logger.ts';
import {
  type ClientMessage,
  isProtocolError,
  type ProtocolError,
  type ProtocolLimits,
  parseClientMessage,
} from './stream-protocol.ts';

/** One open socket and what it subscribed to. */
export interface StreamSocket {
  readonly ws: WebSocket;
  /** Subscribed to the dashboard channel. */
  dashboard: boolean;
  /** The targets of its counters subscription. */
  readonly targets: Set<string>;
  /** Counters messages not sent yet because the socket is slow: the latest per target. */
  readonly pending: Map<string, string>;
  /** Answered the last ping (or sent something) since it was sent. */
  alive: boolean;
  /** Token bucket of client messages. */
  tokens: number;
  tokensAtMs: number;
  /**
   * The socket's `Authorization` value (`Bearer <key or JWT>`) once access control let it in;
   * undefined while it has not authenticated (it then gets nothing but may send `auth`).
   */
  authorization?: string;
  /**
   * Who the credential is (its key's own rate limits included), from access control's last check
   * of it; undefined with access control off.
   */
  principal?: Principal;
  /** The client's address: the connection's, or what a trusted proxy forwarded. */
  address: string;
}

/** A credential access control accepted: the `Authorization` value and who it is. */
export interface AcceptedCredential {
  authorization: string;
  principal: Principal;
}

/** Close codes of a socket refused by access control (docs/stream.md). */
export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_PERMISSION_DENIED = 4403;

/** Access control of the stream, when it is on. */
export interface StreamAuth {
  /**
   * Resolves with who `authorization` is when it may read the stream; rejects with the AppError
   * saying why (UNAUTHENTICATED, PERMISSION_DENIED) or that it cannot be told now (any other code).
   */
  check(authorization: string): Promise<Principal>;
  /** How long a socket opened without a credential has to send `auth` (default 5,000 ms). */
  authTimeoutMs?: number;
  /** How often each open socket's credential is checked again (default 1,000 ms). */
  recheckMs?: number;
}

export interface SocketHubOptions {
  logger: Logger;
  now: () => number;
  /** Largest client message, bytes. */
  maxMessageBytes: number;
  /** Most open sockets; more are refused with 503. */
  maxSockets: number;
  /** Client messages per second a socket may send, on average (bursts of twice that). */
  maxMessagesPerSecond: number;
  /** Ping period, ms; a socket that did not answer the previous ping is dropped. */
  pingIntervalMs: number;
  /** A socket with more than this many bytes unsent skips pushes (`isSlow`). */
  slowSocketBytes: number;
  /** A socket with more than this many bytes unsent is dropped when sent to. */
  maxBufferedBytes: number;
  limits: ProtocolLimits;
  /** Called when a socket opened, before its `hello` is built. */
  onOpen(socket: StreamSocket): void;
  /** The `hello` message each new socket gets. */
  hello(): Record<string, unknown>;
  /** A valid client message within the socket's rate; a throw is logged and answered as a server error. */
  onMessage(socket: StreamSocket, message: ClientMessage): void;
  /** Called once a socket closed (it is no longer in `sockets`). */
  onClose(socket: StreamSocket): void;
  /**
   * With it, a socket must present a credential — in the handshake (`authorization` of
   * `handleUpgrade`) or as its first message, `{"channel":"auth","token":"…"}` — before anything
   * else, and is closed (4401, 4403) when the credential stops being accepted.
   */
  auth?: StreamAuth;
  /** The client's address from the connection's and `X-Forwarded-For` (default: the connection's). */
  clientAddress?: (socketAddress: string, forwardedFor: string | undefined) => string;
}

/** The subprotocol prefix of a credential offered in the handshake: `bearer.<key or JWT>`. */
export const BEARER_PROTOCOL = 'bearer.';

/**
 * Closes a socket whose credential was refused: 4401 for UNAUTHENTICATED (missing, invalid,
 * expired, revoked), 4403 for PERMISSION_DENIED; any other error (the check could not be made)
 * leaves it open. The reason is the error's message, which never holds the credential.
 */
function closeRefused(socket: StreamSocket, error: unknown): void {
  const code = (error as { code?: unknown }).code;
  const close =
    code === Code.UNAUTHENTICATED
      ? CLOSE_UNAUTHENTICATED
      : code === Code.PERMISSION_DENIED
        ? CLOSE_PERMISSION_DENIED
        : undefined;
  if (close === undefined) {
    if (socket.authorization === '') socket.authorization = undefined; // let it send auth again
    return;
  }
  const reason = Buffer.from(String((error as Error).message ?? 'refused'))
    .subarray(0, 120)
    .toString();
  if (socket.ws.readyState === socket.ws.OPEN) socket.ws.close(close, reason);
}

/** Owns the open sockets; pings them from construction until `stop()`. */
export class SocketHub {
  /** The open sockets, oldest first. */
  readonly sockets = new Set<StreamSocket>();
  readonly #options: SocketHubOptions;
  readonly #wss: WebSocketServer;
  readonly #pings: NodeJS.Timeout;
  readonly #rechecks: NodeJS.Timeout | undefined;
  #stopping = false;

  constructor(options: SocketHubOptions) {
    this.#options = options;
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxMessageBytes,
      perMessageDeflate: false,
      clientTracking: false,
      // A credential offered as a subprotocol (`bearer.<credential>`) is never echoed back.
      handleProtocols: (protocols) => [...protocols].find((p) => !p.startsWith(BEARER_PROTOCOL)) ?? false,
    });
    this.#pings = setInterval(() => this.#ping(), options.pingIntervalMs);
    if (options.auth) {
      this.#rechecks = setInterval(() => this.#recheck(), options.auth.recheckMs ?? 1_000);
      this.#rechecks.unref();
    }
  }

  /** The `Authorization` value of some authenticated socket, for reads made for all of them. */
  anyAuthorization(): string | undefined {
    for (const socket of this.sockets) if (socket.authorization !== undefined) return socket.authorization;
    return undefined;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * Completes a WebSocket upgrade, or answers 503 when stopping or full; `credential`: the
   * handshake's credential, already accepted (access control on), and who it is.
   */
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    credential?: AcceptedCredential,
  ): void {
    if (this.#stopping || this.sockets.size >= this.#options.maxSockets) {
      const reason = this.#stopping ? 'server is shutting down' : 'too many stream connections';
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${reason.length}\r\n\r\n${reason}`,
      );
      return;
    }
    const peer = (request.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, '');
    const address = this.#options.clientAddress
      ? this.#options.clientAddress(peer, request.headersDistinct['x-forwarded-for']?.join(','))
      : peer;
    this.#wss.handleUpgrade(request, socket, head, (ws) => this.#open(ws, credential, address));
  }

  /** Sends unless the socket is closed or hopelessly behind (then dropped); false when not sent. */
  send(socket: StreamSocket, text: string): boolean {
    if (socket.ws.readyState !== socket.ws.OPEN) return false;
    if (socket.ws.bufferedAmount > this.#options.maxBufferedBytes) {
      this.#options.logger.warn('dropping a socket that does not read', {
        bufferedBytes: socket.ws.bufferedAmount,
      });
      socket.ws.terminate();
      return false;
    }
    socket.ws.send(text);
    return true;
  }

  /** More than `slowSocketBytes` unsent: pushes that a later one replaces should wait or skip. */
  isSlow(socket: StreamSocket): boolean {
    return socket.ws.bufferedAmount > this.#options.slowSocketBytes;
  }

  reply(socket: StreamSocket, message: Record<string, unknown>): boolean {
    return this.send(socket, JSON.stringify(message));
  }

  /** An `error` message: the field at fault, the message, and the request's id if it had one. */
  replyError(socket: StreamSocket, error: ProtocolError): boolean {
    return this.reply(socket, {
      channel: 'error',
      message: error.message,
      field: error.field,
      ...(error.id === undefined ? {} : { id: error.id }),
    });
  }

  /** Refuses new sockets, stops the pings, closes every socket (1001; terminated after 2 s). */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#pings);
    clearInterval(this.#rechecks);
    const closing = [...this.sockets].map(
      ({ ws }) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === ws.CLOSED) return resolve();
          ws.once('close', () => resolve());
          ws.close(1001, 'server shutting down');
        }),
    );
    const force = setTimeout(() => {
      for (const socket of this.sockets) socket.ws.terminate();
    }, 2_000);
    await Promise.all(closing);
    clearTimeout(force);
    this.#wss.close();
  }

  #open(ws: WebSocket, credential: AcceptedCredential | undefined, address: string): void {
    const socket: StreamSocket = {
      ws,
      address,
      dashboard: false,
      targets: new Set(),
      pending: new Map(),
      alive: true,
      tokens: 2 * this.#options.maxMessagesPerSecond,
      tokensAtMs: this.#options.now(),
    };
    this.sockets.add(socket);
    ws.on('pong', () => {
      socket.alive = true;
    });
    ws.on('message', (data, isBinary) => this.#receive(socket, data, isBinary));
    ws.on('error', (error) => {
      // Oversized or malformed frames: ws closes the socket itself (1009 / 1002).
      this.#options.logger.debug('stream socket error', { error: error.message });
    });
    ws.on('close', () => {
      clearTimeout(deadline);
      this.sockets.delete(socket);
      this.#options.onClose(socket);
    });
    const auth = this.#options.auth;
    let deadline: NodeJS.Timeout | undefined;
    if (!auth || credential !== undefined) {
      this.#welcome(socket, credential);
      return;
    }
    deadline = setTimeout(() => {
      if (socket.authorization === undefined)
        ws.close(CLOSE_UNAUTHENTICATED, 'authentication required: send {"channel":"auth","token":"…"} first');
    }, auth.authTimeoutMs ?? 5_000);
    deadline.unref();
  }

  /** The socket may read: it gets its `hello` and the listener learns of it. */
  #welcome(socket: StreamSocket, credential: AcceptedCredential | undefined): void {
    socket.authorization = credential?.authorization ?? (this.#options.auth ? undefined : '');
    socket.principal = credential?.principal;
    this.#options.onOpen(socket);
    this.reply(socket, this.#options.hello());
  }

  /** A message of a socket that has not authenticated: only `auth` is understood. */
  #authenticate(socket: StreamSocket, text: string): void {
    let token: unknown;
    try {
      const message = JSON.parse(text) as { channel?: unknown; token?: unknown };
      token = message.channel === 'auth' ? message.token : undefined;
    } catch {
      token = undefined;
    }
    if (typeof token !== 'string' || token === '') {
      socket.ws.close(
        CLOSE_UNAUTHENTICATED,
        'authentication required: the first message must be {"channel":"auth","token":"…"}',
      );
      return;
    }
    const authorization = `Bearer ${token}`;
    socket.authorization = ''; // a check is under way: further messages wait for it
    this.#options.auth!.check(authorization).then(
      (principal) => {
        if (socket.ws.readyState === socket.ws.OPEN) this.#welcome(socket, { authorization, principal });
      },
      (error: unknown) => closeRefused(socket, error),
    );
  }

  /** Checks every open socket's credential again (one check per distinct credential). */
  #recheck(): void {
    const auth = this.#options.auth;
    if (!auth) return;
    const byCredential = new Map<string, StreamSocket[]>();
    for (const socket of this.sockets) {
      if (!socket.authorization) continue;
      const group = byCredential.get(socket.authorization) ?? [];
      group.push(socket);
      byCredential.set(socket.authorization, group);
    }
    for (const [authorization, sockets] of byCredential)
      auth.check(authorization).then(
        // The key's record may have changed (its limits): the sockets follow it.
        (principal) => {
          for (const socket of sockets) socket.principal = principal;
        },
        (error: unknown) => {
          for (const socket of sockets) closeRefused(socket, error);
        },
      );
  }

  #receive(socket: StreamSocket, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    socket.alive = true;
    if (socket.authorization === undefined) {
      const bytes = Buffer.isBuffer(data)
        ? data
        : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data);
      this.#authenticate(socket, isBinary ? '' : bytes.toString('utf8'));
      return;
    }
    if (socket.authorization === '' && this.#options.auth) return; // its credential is being checked
    if (!this.#takeToken(socket)) {
      this.replyError(socket, {
        field: 'message',
        message: `message: too many messages (at most ${this.#options.maxMessagesPerSecond} per second); this one was ignored`,
      });
      return;
    }
    try {
      if (isBinary) {
        this.replyError(socket, { field: 'message', message: 'message: must be a text frame holding JSON' });
        return;
      }
      const bytes = Buffer.isBuffer(data)
        ? data
        : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data);
      const parsed = parseClientMessage(bytes.toString('utf8'), this.#options.limits);
      if (isProtocolError(parsed)) this.replyError(socket, parsed);
      else this.#options.onMessage(socket, parsed);
    } catch (error) {
      this.#options.logger.error('stream message failed', { error });
      this.replyError(socket, { field: 'message', message: 'message: could not be handled (server error)' });
    }
  }

  /** Refills the socket's bucket for the time since its last message; false when it is empty. */
  #takeToken(socket: StreamSocket): boolean {
    const rate = this.#options.maxMessagesPerSecond;
    const at = this.#options.now();
    socket.tokens = Math.min(2 * rate, socket.tokens + ((at - socket.tokensAtMs) * rate) / 1000);
    socket.tokensAtMs = at;
    if (socket.tokens < 1) return false;
    socket.tokens -= 1;
    return true;
  }

  #ping(): void {
    for (const socket of this.sockets) {
      if (!socket.alive) {
        socket.ws.terminate();
        continue;
      }
      socket.alive = false;
      socket.ws.ping();
    }
  }
}
