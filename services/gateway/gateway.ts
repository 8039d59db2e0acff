/**
 * The gateway role: the HTTP edge. REST at /v1/... generated from the proto's
 * google.api.http rules (JSON = protobuf JSON mapping), the seed's legacy
 * routes, /healthz, /readyz and /metrics (the process's registry), the API's
 * OpenAPI document at /openapi.json and its reference page at /docs, the live
 * dashboard at / and its WebSocket /v1/stream. It calls ingest and query over
 * gRPC, and reads the events topic itself (its own consumer group) for the live feed.
 */
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import type { PublishRequest } from '../gen/tally/v1/ingest_pb.js';
import { IngestService } from '../gen/tally/v1/ingest_pb.js';
import { QueryService } from '../gen/tally/v1/query_pb.js';
import { AppError, Code, shuttingDown } from '../infra/app-error.ts';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import { type HttpRoute, httpRoutes } from '../infra/http/http-rules.ts';
import {
  methodNotAllowed,
  observeRequest,
  parseJson,
  readBody,
  restError,
  sendError,
  sendJson,
  sendMetrics,
  traceRequest,
} from '../infra/http/http-server.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { Logger } from '../infra/logger.ts';
import { createMetricsRegistry, httpMetrics, type Registry } from '../infra/metrics.ts';
import type { ReadinessReport } from '../infra/readiness.ts';
import type { Tracer } from '../infra/tracing.ts';
import { loadApiDocs } from './api-docs.ts';
import { loadDashboardAssets } from './dashboard-assets.ts';
import { legacyRoutes } from './legacy-routes.ts';
import type { LiveFeedSource } from './live-feed.ts';
import { type CoalescerOptions, PublishCoalescer } from './publish-coalescer.ts';
import { STREAM_PATH } from './route-docs.ts';
import { createStreamServer } from './stream-server.ts';

/** The services whose http rules the gateway serves (scripts/openapi.test.ts checks the document lists each route). */
export const REST_SERVICES = [IngestService, QueryService] as const;

/** Probes and scrapes, which would bury the traces of real requests. */
const UNTRACED = new Set(['/healthz', '/readyz', '/metrics']);

export interface GatewayConfig {
  host: string;
  port: number;
  maxBodyBytes: number;
  /** Whole-request bound, body included: a trickled body times out. */
  requestTimeoutMs: number;
  drainTimeoutMs: number;
  /**
   * How single events (POST /v1/events, PUT /event_generate/) share calls to ingest
   * (publish-coalescer.ts); default: up to 1,000 events and 2 MiB of bodies per call.
   */
  coalesce?: CoalescerOptions;
}

export interface GatewayDeps {
  /** The process's readiness, served at `/readyz` (200 when ready, else 503, with the report). */
  readiness?: () => Promise<ReadinessReport>;
  ingest: ServiceClient<(typeof IngestService)['method']>;
  query: ServiceClient<(typeof QueryService)['method']>;
  logger: Logger;
  /** The process's metrics, served at /metrics, where every request is counted and timed (default: a registry of its own). */
  metrics?: Registry;
  /** Where the dashboard's live feed reads; without it the dashboard says live data is unavailable. */
  live?: LiveFeedSource;
  /** Traces each request (docs/tracing.md) but the probes and scrapes; none when tracing is off. */
  tracer?: Tracer;
}

/** A running gateway; `port` is the bound port (useful with port 0). */
export interface Gateway extends Stoppable {
  readonly port: number;
}

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
}

export async function start(deps: GatewayDeps, config: GatewayConfig): Promise<Gateway> {
  const logger = deps.logger.child({ role: 'gateway' });
  const clients: Record<string, Record<string, (request: unknown, options?: unknown) => Promise<unknown>>> = {
    [IngestService.typeName]: deps.ingest as never,
    [QueryService.typeName]: deps.query as never,
  };
  const routes = httpRoutes(REST_SERVICES);
  const legacy = legacyRoutes(deps);
  const dashboard = loadDashboardAssets();
  const apiDocs = loadApiDocs();
  const metrics = deps.metrics ?? createMetricsRegistry({ defaultMetrics: false });
  const requestMetrics = httpMetrics(metrics);
  const coalescer = new PublishCoalescer(
    deps.ingest,
    config.coalesce ?? { maxBatchEvents: 1_000, maxBatchBytes: 2 * 1024 * 1024 },
  );
  const publishMethod = IngestService.method.publish;
  let accepting = true;

  const handleRest = async (route: HttpRoute, match: RegExpExecArray, ctx: RequestContext, url: URL) => {
    const json: Record<string, JsonValue> = {};
    if (route.body === '*') {
      const body = await ctx.json();
      if (!isObject(body)) throw AppError.invalidField('body', 'must be a JSON object');
      Object.assign(json, body);
    } else {
      if (route.body !== '') json[route.body] = (await ctx.json()) as JsonValue;
      for (const key of new Set(url.searchParams.keys())) {
        const values = url.searchParams.getAll(key);
        const field = route.method.input.fields.find((f) => f.name === key || f.jsonName === key);
        if (field?.fieldKind === 'list') json[key] = values;
        else if (values.length > 1) throw AppError.invalidField(key, 'is given more than once');
        else json[key] = values[0] ?? '';
      }
    }
    route.pathFields.forEach((field, i) => {
      json[field] = decodeURIComponent(match[i + 1] ?? '');
    });
    let request: unknown;
    try {
      request = fromJson(route.method.input, json, { ignoreUnknownFields: false });
    } catch (error) {
      throw jsonError(error, route.body);
    }
    if (route.method === publishMethod && (request as PublishRequest).event) {
      const id = await ctx.publish((request as PublishRequest).event);
      return sendJson(ctx.response, 200, { id });
    }
    const call = clients[route.service.typeName]?.[route.method.localName];
    if (!call) throw new AppError(Code.UNIMPLEMENTED, `${route.method.name} is not served here`);
    const result = await call(request, {
      metadata: { 'x-forwarded-for': ctx.clientIp },
      timeoutMs: config.requestTimeoutMs,
    });
    sendJson(ctx.response, 200, toJson(route.method.output, result as never, { alwaysEmitImplicit: true }));
  };

  /** `matched.route` is set to the route's template (the metrics label) as soon as it is known. */
  const handle = async (request: IncomingMessage, response: ServerResponse, matched: { route: string }) => {
    /** Names the route; refuses the request when draining. */
    const enter = (route: string) => {
      matched.route = route;
      if (!accepting) throw shuttingDown();
    };
    const url = requestUrl(request.url);
    if (!url) return sendError(response, badTarget(request.url), logger);
    const path = url.pathname;
    const verb = request.method ?? 'GET';
    let bodyRead: Promise<unknown> | undefined;
    let bodyBytes: number | undefined;
    const clientIp = (request.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, '');
    const ctx: RequestContext = {
      request,
      response,
      clientIp,
      json: () => {
        bodyRead ??= readBody(request, config.maxBodyBytes).then((body) => {
          bodyBytes = body.length;
          return parseJson(body);
        });
        return bodyRead;
      },
      bodyBytes: () => bodyBytes,
      publish: (event) =>
        coalescer.publish({
          event: event as never,
          clientIp,
          timeoutMs: config.requestTimeoutMs,
          sizeHint: bodyBytes,
        }),
    };
    try {
      if (path === '/healthz' || path === '/readyz' || path === '/metrics') matched.route = path;
      if (path === '/healthz') return sendJson(response, 200, { status: 'ok' });
      if (path === '/readyz') {
        if (!accepting) return sendJson(response, 503, { status: 'draining' });
        if (!deps.readiness) return sendJson(response, 200, { status: 'ready' });
        const report = await deps.readiness();
        return sendJson(response, report.ready ? 200 : 503, report);
      }
      if (path === '/metrics') return await sendMetrics(response, metrics);

      if (apiDocs.owns(path)) {
        enter(apiDocs.route(path));
        return apiDocs.serve(request, response, url);
      }
      if (dashboard.owns(path)) {
        enter('dashboard');
        return dashboard.serve(request, response, url);
      }
      if (path === STREAM_PATH) {
        enter(STREAM_PATH);
        throw new AppError(
          Code.FAILED_PRECONDITION,
          `${STREAM_PATH} is a WebSocket: connect with Upgrade: websocket (see docs/stream.md)`,
          {
            reason: 'UPGRADE_REQUIRED',
            http: {
              status: 426,
              name: 'UPGRADE_REQUIRED',
              headers: { upgrade: 'websocket', connection: 'Upgrade' },
            },
          },
        );
      }

      const legacyRoute = legacy.find((r) => r.paths.includes(path));
      if (legacyRoute) {
        enter(legacyRoute.paths[0]!);
        if (legacyRoute.verb !== verb) throw methodNotAllowed([legacyRoute.verb], path);
        return await legacyRoute.handle(ctx);
      }
      const candidates = routes
        .map((route) => ({ route, match: route.pattern.exec(path) }))
        .filter((c): c is { route: HttpRoute; match: RegExpExecArray } => c.match !== null);
      const hit = candidates.find((c) => c.route.verb === verb);
      if (hit) {
        enter(hit.route.template);
        return await handleRest(hit.route, hit.match, ctx, url);
      }
      enter(candidates[0]?.route.template ?? 'unmatched');
      if (candidates.length > 0)
        throw methodNotAllowed(
          candidates.map((c) => c.route.verb),
          path,
        );
      throw new AppError(Code.NOT_FOUND, `no route for ${verb} ${path}`);
    } catch (error) {
      sendError(response, error, logger);
    }
  };

  const server: Server = createServer(
    {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(config.requestTimeoutMs, 10_000),
      // Node checks both timeouts only every connectionsCheckingInterval (30 s by default), so a
      // trickled body would outlive a short requestTimeout by up to that much.
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(config.requestTimeoutMs / 4))),
    },
    (request, response) => {
      const matched = { route: 'unmatched' };
      observeRequest(requestMetrics, request, response, () => matched.route);
      if (deps.tracer && !UNTRACED.has(request.url ?? ''))
        void traceRequest(
          deps.tracer,
          request,
          response,
          () => matched.route,
          () => handle(request, response, matched),
        );
      else void handle(request, response, matched);
    },
  );
  server.keepAliveTimeout = 5_000;

  const stream = createStreamServer({ query: deps.query, live: deps.live, logger });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {}); // a reset during the handshake is the client's business
    const path = requestUrl(request.url)?.pathname;
    /** Answers the handshake with a REST error and closes the connection. */
    const refuse = (error: AppError) => {
      const { status, headers, body } = restError(error);
      const text = JSON.stringify(body);
      const lines = Object.entries({
        ...headers,
        connection: 'close',
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(Buffer.byteLength(text)),
      }).map(([name, value]) => `${name}: ${value}\r\n`);
      socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${lines.join('')}\r\n${text}`);
    };
    if (path !== STREAM_PATH) {
      const message = `no WebSocket at ${path ?? 'this request target'} (the stream is ${STREAM_PATH})`;
      return refuse(new AppError(Code.NOT_FOUND, message));
    }
    if (!accepting) return refuse(shuttingDown());
    stream.handleUpgrade(request, socket, head);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await stream.stop(); // its timers and live feed would otherwise outlive the failed start
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  logger.info('gateway listening', { host: config.host, port });

  return {
    name: 'gateway',
    port,
    async stop() {
      accepting = false;
      await stream.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), config.drainTimeoutMs);
      await closed;
      clearTimeout(force);
    },
  };
}

/** The URL of a request target (origin-form `/path?query` or absolute-form); undefined when malformed. */
function requestUrl(target: string | undefined): URL | undefined {
  const raw = target ?? '/';
  try {
    // Not `new URL(raw, base)`: that reads `//x` as a host, and throws on a path such as `//`.
    return raw.startsWith('/') ? new URL(`http://gateway${raw}`) : new URL(raw);
  } catch {
    return undefined;
  }
}

function badTarget(target: string | undefined): AppError {
  const shown = JSON.stringify((target ?? '').slice(0, 100));
  return AppError.invalidField('path', `is not a valid request target: ${shown}`);
}

function isObject(value: unknown): value is Record<string, JsonValue> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** protobuf-es JSON errors → INVALID_ARGUMENT naming the field where the message allows it. */
function jsonError(error: unknown, bodyField: string): AppError {
  const message = error instanceof Error ? error.message : String(error);
  const unknownKey = /key "([^"]+)" is unknown/.exec(message);
  const badField = /cannot decode field [\w.]*\.(\w+) from JSON/.exec(message);
  const field = unknownKey?.[1] ?? badField?.[1];
  const prefix = bodyField !== '' && bodyField !== '*' ? `${bodyField}.` : '';
  const detail = message.replace(/^cannot decode (message|field) [\w.]+ from JSON: /, '');
  return field
    ? AppError.invalidField(prefix + field, unknownKey ? 'is not a known field' : detail)
    : AppError.invalidField('body', detail);
}
