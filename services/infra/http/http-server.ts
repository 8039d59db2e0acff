/**
 * Plain node:http plumbing for the edge: bounded body reading, JSON answers,
 * and errors rendered from AppError codes through the one code→status table,
 * with the same standard details gRPC sends (infra/error-details.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JsonValue } from '@bufbuild/protobuf';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { AppError, Code, codeName, httpStatusFor, Reason, toAppError } from '../app-error.ts';
import { detailsJson } from '../error-details.ts';
import type { Logger } from '../logger.ts';
import { type HttpMetrics, httpMethodLabel, type Registry, secondsSince } from '../metrics.ts';
import { extractContext, failSpan, type Tracer } from '../tracing.ts';

/** Reads the whole body; 413 past `maxBytes`, 400 when the client aborts. */
export async function readBody(request: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? Number.NaN);
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw tooLarge(maxBytes);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof AppError) throw error;
    // The client went away (or the request timed out) mid-body: its problem, not a 500.
    throw AppError.invalidField('body', `was cut off after ${size} bytes (${(error as Error).message})`);
  }
  return Buffer.concat(chunks, size);
}

function tooLarge(maxBytes: number): AppError {
  const description = `must be at most ${maxBytes} bytes`;
  return new AppError(Code.RESOURCE_EXHAUSTED, `body: ${description}`, {
    fieldViolations: [{ field: 'body', description }],
    reason: Reason.BODY_TOO_LARGE,
    metadata: { limit_bytes: String(maxBytes) },
    retryable: false, // the same body will be refused again
  });
}

/** Parses a JSON body; 400 naming the problem when it is not JSON. */
export function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw AppError.invalidField('body', 'is empty; expected a JSON object');
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  let decoded: string;
  try {
    decoded = text.decode(body);
  } catch {
    throw AppError.invalidField('body', 'is not valid UTF-8');
  }
  try {
    return JSON.parse(decoded);
  } catch (error) {
    throw AppError.invalidField('body', `malformed JSON: ${(error as Error).message}`);
  }
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

export function sendText(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

/** The body of every REST error. */
export interface RestErrorBody {
  error: {
    /** The HTTP status. */
    code: number;
    /** The gRPC code's name (`INVALID_ARGUMENT`), or the HTTP reason of a REST-only error (`METHOD_NOT_ALLOWED`). */
    status: string;
    message: string;
    /** The first field at fault, when there is one (the same as `details`' first FieldViolation). */
    field?: string;
    /** google.rpc.BadRequest / RetryInfo / ErrorInfo in the protobuf JSON mapping, with `@type`. */
    details: JsonValue[];
  };
}

/**
 * The one rendering of an error for REST: its HTTP status (from the code through the one table;
 * 413 for a body over the limit; a REST-only status when the error names one), headers
 * (`retry-after` from its retry delay, `connection: close` after a 413) and body
 * `{"error":{"code","status","message","field"?,"details"}}`, whose details are the ones gRPC sends.
 */
export function restError(error: unknown): {
  status: number;
  headers: Record<string, string>;
  body: RestErrorBody;
} {
  const appError = toAppError(error);
  const status =
    appError.http?.status ?? (appError.reason === Reason.BODY_TOO_LARGE ? 413 : httpStatusFor(appError.code));
  const headers: Record<string, string> = { ...appError.http?.headers };
  if ((status === 503 || status === 429) && appError.retryAfterMs !== undefined)
    headers['retry-after'] = String(Math.max(1, Math.ceil(appError.retryAfterMs / 1000)));
  // A rate limit's refusal carries its RateLimit fields (pipeline/request-limits.ts).
  if (status === 429) {
    if (appError.metadata.ratelimit) headers.ratelimit = appError.metadata.ratelimit;
    if (appError.metadata.ratelimit_policy) headers['ratelimit-policy'] = appError.metadata.ratelimit_policy;
  }
  if (status === 413) headers.connection = 'close';
  if (status === 401)
    headers['www-authenticate'] =
      appError.reason === Reason.INVALID_TOKEN
        ? 'Bearer realm="tally", error="invalid_token"'
        : 'Bearer realm="tally"';
  const field = appError.field;
  return {
    status,
    headers,
    body: {
      error: {
        code: status,
        status: appError.http?.name ?? codeName(appError.code),
        message: appError.message,
        ...(field ? { field } : {}),
        details: detailsJson(appError),
      },
    },
  };
}

/**
 * Answers with {@link restError}; a 5xx is logged (with its cause) when `logger` is given. After
 * a 413 the connection closes only once the client stopped sending, within bounds
 * ({@link closeAfterDiscarding}).
 */
export function sendError(response: ServerResponse, error: unknown, logger?: Logger): void {
  const { status, headers, body } = restError(error);
  if (status >= 500 && logger) {
    const appError = toAppError(error);
    logger[status === 503 ? 'warn' : 'error']('request failed', { error: appError, cause: appError.cause });
  }
  if (response.headersSent) {
    response.destroy();
    return;
  }
  if (status === 413) {
    const limit = Number(toAppError(error).metadata.limit_bytes);
    closeAfterDiscarding(response, Number.isFinite(limit) ? limit : 1024 * 1024);
  }
  sendJson(response, status, body, headers);
}

/** 405 with the verbs `path` accepts (header `allow`, ErrorInfo metadata `allow`); REST only. */
export function methodNotAllowed(verbs: readonly string[], path: string): AppError {
  const allow = [...new Set(verbs)].join(', ');
  return new AppError(Code.UNIMPLEMENTED, `${path} accepts ${allow}`, {
    reason: 'METHOD_NOT_ALLOWED',
    metadata: { allow },
    http: { status: 405, name: 'METHOD_NOT_ALLOWED', headers: { allow } },
  });
}

/** After a 413, how long the rest of the body is read and dropped before the connection closes. */
export const DISCARD_MAX_MS = 5_000;

/** After a 413, how much of the rest of the body is read and dropped: 4× the limit, at least 32 MiB. */
export function discardMaxBytes(limitBytes: number): number {
  return Math.max(4 * limitBytes, 32 * 1024 * 1024);
}

/**
 * Makes the `Connection: close` answer about to be sent close gently. Node ends such an answer
 * with `socket.destroySoon()`: the body the client is still sending then meets a closed socket,
 * the kernel answers it with a reset, and a client that writes its whole body before reading
 * (Python's http.client, a browser's or Node's `fetch` streaming a body) sees EPIPE or a reset
 * instead of the 413. Here the answer is sent and the write side closed, the rest of the body read
 * and dropped until the client stops sending (its FIN), or {@link discardMaxBytes} or
 * {@link DISCARD_MAX_MS} pass, and only then is the connection closed.
 */
function closeAfterDiscarding(response: ServerResponse, limitBytes: number): void {
  const socket = response.socket;
  if (!socket) return;
  socket.destroySoon = () => {
    const startBytes = socket.bytesRead;
    const maxBytes = discardMaxBytes(limitBytes);
    const startMs = performance.now();
    // The HTTP parser keeps reading (and dropping) the body; the byte count is the socket's own.
    const check = setInterval(() => {
      if (socket.bytesRead - startBytes > maxBytes || performance.now() - startMs > DISCARD_MAX_MS)
        socket.destroy();
    }, 50);
    socket.once('close', () => clearInterval(check));
    if (socket.readableEnded) socket.destroy();
    else socket.once('end', () => socket.destroy());
    socket.once('error', () => socket.destroy());
    socket.end();
    socket.resume();
  };
}

/** Answers a scrape: every metric of `registry` in the Prometheus text format. */
/**
 * Whether a scrape may read `/metrics`: always without a token (TALLY_METRICS_TOKEN unset), else
 * only with `Authorization: Bearer <token>` (compared in constant time). Throws UNAUTHENTICATED
 * otherwise; the message never repeats what was sent.
 */
export function checkMetricsToken(request: IncomingMessage, token: string | undefined): void {
  if (token === undefined) return;
  const header = request.headers.authorization ?? '';
  if (header === '')
    throw new AppError(Code.UNAUTHENTICATED, '/metrics needs "Authorization: Bearer <metrics token>"', {
      reason: Reason.MISSING_CREDENTIAL,
    });
  const sent = Buffer.from(header.replace(/^Bearer\s+/i, ''));
  const expected = Buffer.from(token);
  if (sent.length !== expected.length || !timingSafeEqual(sent, expected))
    throw new AppError(Code.UNAUTHENTICATED, 'the metrics token is not the configured one', {
      reason: Reason.INVALID_CREDENTIAL,
      metadata: { credential_error: 'unknown' },
    });
}

export async function sendMetrics(response: ServerResponse, registry: Registry): Promise<void> {
  const text = await registry.metrics();
  response.writeHead(200, {
    'content-type': registry.contentType,
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

/**
 * Counts and times a request in `metrics` once its response ends, under the
 * route `route()` names by then (a template, never the raw path). A response
 * the client abandoned before it was complete counts with code 499.
 */
export function observeRequest(
  metrics: HttpMetrics,
  request: IncomingMessage,
  response: ServerResponse,
  route: () => string,
): void {
  const startMs = performance.now();
  response.once('close', () => {
    const labels = { route: route(), method: httpMethodLabel(request.method) };
    metrics.duration.observe(labels, secondsSince(startMs));
    metrics.requests.inc({ ...labels, code: String(response.writableFinished ? response.statusCode : 499) });
  });
}

/**
 * Runs `handle` in a SERVER span for the request, continuing the trace context
 * of its headers (`traceparent`) when a client sent one. The span ends with the
 * response; it is named `<method> <route>` after the route `route()` names by
 * then (never the raw path, which may hold a target), and fails on a 5xx; a
 * client that goes away first leaves it with `error.type` `aborted`.
 */
export function traceRequest(
  tracer: Tracer,
  request: IncomingMessage,
  response: ServerResponse,
  route: () => string,
  handle: () => Promise<void>,
): Promise<void> {
  const label = httpMethodLabel(request.method);
  // The semantic conventions' names for a method outside the standard set.
  const method = label === 'other' ? '_OTHER' : label;
  const spanName = label === 'other' ? 'HTTP' : label;
  const parent = extractContext(request.headers);
  const span = tracer.startSpan(
    spanName,
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': method,
        'url.scheme': 'encrypted' in request.socket ? 'https' : 'http',
        'network.protocol.version': request.httpVersion,
      },
    },
    parent,
  );
  response.once('close', () => {
    const template = route();
    if (template !== 'unmatched') {
      span.updateName(`${spanName} ${template}`);
      span.setAttribute('http.route', template);
    }
    // A client that went away is not a server error: marked, with no status code since none was sent.
    if (!response.writableFinished) span.setAttribute('error.type', 'aborted');
    else {
      span.setAttribute('http.response.status_code', response.statusCode);
      if (response.statusCode >= 500) failSpan(span, String(response.statusCode));
    }
    span.end();
  });
  return context.with(trace.setSpan(parent, span), handle);
}
