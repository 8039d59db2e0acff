/**
 * The sockets of the WebSocket `/v1/stream`: the upgrade (503 when full or stopping), the
 * `hello`, each client message rate-limited and parsed, the pings, and sending with
 * backpressure. What a message asks for is the listener's business (`createStreamServer`).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
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
}

/** Owns the open sockets; pings them from construction until `stop()`. */
export class SocketHub {
  /** The open sockets, oldest first. */
  readonly sockets = new Set<StreamSocket>();
  readonly #options: SocketHubOptions;
  readonly #wss: WebSocketServer;
  readonly #pings: NodeJS.Timeout;
  #stopping = false;

  constructor(options: SocketHubOptions) {
    this.#options = options;
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxMessageBytes,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.#pings = setInterval(() => this.#ping(), options.pingIntervalMs);
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Completes a WebSocket upgrade, or answers 503 when stopping or full. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#stopping || this.sockets.size >= this.#options.maxSockets) {
      const reason = this.#stopping ? 'server is shutting down' : 'too many stream connections';
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${reason.length}\r\n\r\n${reason}`,
      );
      return;
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => this.#open(ws));
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

  #open(ws: WebSocket): void {
    const socket: StreamSocket = {
      ws,
      dashboard: false,
      targets: new Set(),
      pending: new Map(),
      alive: true,
      tokens: 2 * this.#options.maxMessagesPerSecond,
      tokensAtMs: this.#options.now(),
    };
    this.sockets.add(socket);
    this.#options.onOpen(socket);
    ws.on('pong', () => {
      socket.alive = true;
    });
    ws.on('message', (data, isBinary) => this.#receive(socket, data, isBinary));
    ws.on('error', (error) => {
      // Oversized or malformed frames: ws closes the socket itself (1009 / 1002).
      this.#options.logger.debug('stream socket error', { error: error.message });
    });
    ws.on('close', () => {
      this.sockets.delete(socket);
      this.#options.onClose(socket);
    });
    this.reply(socket, this.#options.hello());
  }

  #receive(socket: StreamSocket, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    socket.alive = true;
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
