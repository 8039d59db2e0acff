/**
 * Plain node:http plumbing for the edge: bounded body reading, JSON answers,
 * and errors rendered from AppError codes through the one code→status table.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { AppError, Code, codeName, httpStatusFor, toAppError } from '../app-error.ts';
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
  return new AppError(Code.RESOURCE_EXHAUSTED, `body: must be at most ${maxBytes} bytes`, { field: 'body' });
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

/**
 * Renders any error as `{"error":{"code","status","message","field"?}}` with the
 * HTTP status of its code. Body-size errors are 413; unknown errors are a logged 500
 * with a generic message.
 */
export function sendError(response: ServerResponse, error: unknown, logger: Logger): void {
  const appError = toAppError(error);
  let status = httpStatusFor(appError.code);
  if (appError.code === Code.RESOURCE_EXHAUSTED && appError.field === 'body') status = 413;
  if (status >= 500)
    logger[status === 503 ? 'warn' : 'error']('request failed', { error: appError, cause: appError.cause });
  const headers: Record<string, string> = {};
  if (status === 503) headers['retry-after'] = '1';
  if (status === 413) headers.connection = 'close';
  if (response.headersSent) {
    response.destroy();
    return;
  }
  sendJson(
    response,
    status,
    {
      error: {
        code: status,
        status: codeName(appError.code),
        message: appError.message,
        ...(appError.field ? { field: appError.field } : {}),
      },
    },
    headers,
  );
}

/** Answers a scrape: every metric of `registry` in the Prometheus text format. */
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
        'url.scheme': 'http',
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
