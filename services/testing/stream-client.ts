/**
 * Test support: a client of the gateway's WebSocket `/v1/stream` that keeps
 * every message and waits for the one a test expects.
 */
import { once } from 'node:events';
import WebSocket from 'ws';

export interface StreamMessage {
  channel: string;
  [key: string]: unknown;
}

export class StreamClient {
  readonly ws: WebSocket;
  readonly messages: StreamMessage[] = [];
  /** Set once the socket closed. */
  closed: { code: number; reason: string } | undefined;
  readonly #waiters = new Set<() => void>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(data.toString()) as StreamMessage);
      for (const wake of this.#waiters) wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const wake of this.#waiters) wake();
    });
    ws.on('error', () => {}); // the close that follows is what tests look at
  }

  /** Opens ws://127.0.0.1:<port>/v1/stream (wss:// trusting `tls.ca`, with `tls`). */
  static async connect(port: number, path = '/v1/stream', tls?: { ca: Buffer }): Promise<StreamClient> {
    const ws = tls
      ? new WebSocket(`wss://127.0.0.1:${port}${path}`, { ca: tls.ca })
      : new WebSocket(`ws://127.0.0.1:${port}${path}`);
    const client = new StreamClient(ws);
    await once(ws, 'open');
    return client;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The first message (from `from` on) that satisfies `match`, waiting up to `timeoutMs`. */
  async next<T extends StreamMessage = StreamMessage>(
    match: (m: StreamMessage) => boolean,
    timeoutMs = 10_000,
    from = 0,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let index = from;
    for (;;) {
      for (; index < this.messages.length; index++) {
        const m = this.messages[index]!;
        if (match(m)) return m as T;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) {
        const last = this.messages.slice(-3).map((m) => JSON.stringify(m).slice(0, 300));
        throw new Error(
          `no matching stream message within ${timeoutMs} ms${this.closed ? ` (closed ${this.closed.code})` : ''}; last: ${last.join('\n')}`,
        );
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.#waiters.add(wake);
      });
    }
  }

  /** Resolves with the close code once the socket closed. */
  async closedWith(timeoutMs = 10_000): Promise<number> {
    if (!this.closed)
      await Promise.race([
        once(this.ws, 'close'),
        new Promise((_, reject) => setTimeout(() => reject(new Error('socket did not close')), timeoutMs)),
      ]);
    return this.closed!.code;
  }

  close(): void {
    this.ws.close();
  }
}
