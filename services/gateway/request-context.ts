/**
 * What the gateway's handlers know of one HTTP request: its URL, the caller's address, its JSON
 * body (read once, bounded) and the way to publish an event through the shared
 * `PublishCoalescer`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PublishRequest } from '../gen/tally/v1/ingest_pb.js';
import { SURFACE_METADATA } from '../infra/auth/access-control.ts';
import { parseJson, readBody } from '../infra/http/http-server.ts';
import type { PublishCoalescer } from './publish-coalescer.ts';

/** What a route handler gets. */
export interface RequestContext {
  request: IncomingMessage;
  response: ServerResponse;
  /** The caller's address, forwarded to ingest. */
  clientIp: string;
  /** Reads and parses the JSON body (bounded). */
  json(): Promise<unknown>;
  /** The body's length in bytes, once `json()` has read it. */
  bodyBytes(): number | undefined;
  /** Publishes one event through ingest (sharing calls with other requests'); resolves with its id. */
  publish(event: PublishRequest['event'] | Record<string, unknown>): Promise<string>;
  /**
   * What the calls made for this request carry for access control: the caller's `authorization`
   * (the header, else an `api_key` taken from an ingest route's body), its `origin`, and the
   * surface (`rest`). Ingest and query check them (infra/auth/access-control.ts).
   */
  callMetadata(): Record<string, string>;
  /**
   * Removes an `api_key` field from an ingest route's JSON body (`navigator.sendBeacon` cannot set
   * headers) and uses it as the credential when the request has no `Authorization` header.
   */
  takeBodyKey(body: unknown): void;
}

/** What every request's context shares. */
export interface RequestContextOptions {
  /** Largest body `json()` reads; past it, it rejects with 413. */
  maxBodyBytes: number;
  /** The deadline of a publish. */
  requestTimeoutMs: number;
  coalescer: PublishCoalescer;
  /**
   * The client's address from the connection's and the `X-Forwarded-For` header's (believed only
   * from a trusted proxy: domain/client-address.ts); default: the connection's.
   */
  clientAddress?: (socketAddress: string, forwardedFor: string | undefined) => string;
}

/**
 * The context of one request; creating it reads nothing. The body is read on the first `json()`,
 * whose answer every later call shares; a publish carries the body's length, once read, as its
 * size hint.
 */
export function createRequestContext(
  request: IncomingMessage,
  response: ServerResponse,
  options: RequestContextOptions,
): RequestContext {
  let bodyRead: Promise<unknown> | undefined;
  let bodyBytes: number | undefined;
  const socketIp = (request.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, '');
  const clientIp = options.clientAddress
    ? options.clientAddress(socketIp, request.headersDistinct['x-forwarded-for']?.join(','))
    : socketIp;
  const metadata: Record<string, string> = { [SURFACE_METADATA]: 'rest' };
  if (request.headers.authorization) metadata.authorization = request.headers.authorization;
  if (request.headers.origin) metadata.origin = request.headers.origin;
  return {
    request,
    response,
    clientIp,
    json: () => {
      bodyRead ??= readBody(request, options.maxBodyBytes).then((body) => {
        bodyBytes = body.length;
        return parseJson(body);
      });
      return bodyRead;
    },
    bodyBytes: () => bodyBytes,
    publish: (event) =>
      options.coalescer.publish({
        event: event as never,
        clientIp,
        timeoutMs: options.requestTimeoutMs,
        sizeHint: bodyBytes,
        metadata,
      }),
    callMetadata: () => ({ ...metadata }),
    takeBodyKey(body) {
      if (typeof body !== 'object' || body === null || !('api_key' in body)) return;
      const key = (body as { api_key?: unknown }).api_key;
      delete (body as { api_key?: unknown }).api_key;
      if (typeof key === 'string' && key !== '' && metadata.authorization === undefined)
        metadata.authorization = `Bearer ${key}`;
    },
  };
}

/** The URL of a request target (origin-form `/path?query` or absolute-form); undefined when malformed. */
export function requestUrl(target: string | undefined): URL | undefined {
  const raw = target ?? '/';
  try {
    // Not `new URL(raw, base)`: that reads `//x` as a host, and throws on a path such as `//`.
    return raw.startsWith('/') ? new URL(`http://gateway${raw}`) : new URL(raw);
  } catch {
    return undefined;
  }
}
