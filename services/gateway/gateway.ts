/**
 * The gateway role: the HTTP edge. REST at /v1/... generated from the proto's
 * google.api.http rules (JSON = protobuf JSON mapping), the seed's legacy
 * routes, /healthz, /readyz and /metrics (the process's registry), the API's
 * OpenAPI document at /openapi.json and its reference page at /docs, the live
 * dashboard at / and its WebSocket /v1/stream. It calls ingest and query through
 * their clients (gRPC, or in-process when this process serves them), and reads the
 * events topic itself (its own consumer group) for the live feed.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Principal, RateLimitOverrides, Scope } from '../domain/api-keys.ts';
import { type Cidr, clientAddress, inRanges } from '../domain/client-address.ts';
import type { AlertService } from '../gen/tally/v1/alerts_pb.js';
import type { DestinationService } from '../gen/tally/v1/destinations_pb.js';
import type { EntityService, ProjectionService } from '../gen/tally/v1/entities_pb.js';
import { EventLogService } from '../gen/tally/v1/event_log_pb.js';
import type { IngestService } from '../gen/tally/v1/ingest_pb.js';
import type { KeysService } from '../gen/tally/v1/keys_pb.js';
import type { NotificationService } from '../gen/tally/v1/notifications_pb.js';
import type { QueryService } from '../gen/tally/v1/query_pb.js';
import { AppError } from '../infra/app-error.ts';
import { insufficientScope, SURFACE_METADATA } from '../infra/auth/access-control.ts';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import { httpRoutes } from '../infra/http/http-rules.ts';
import { observeRequest, traceRequest } from '../infra/http/http-server.ts';
import { createListener } from '../infra/http/tls-server.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { Logger } from '../infra/logger.ts';
import {
  authMetrics,
  createMetricsRegistry,
  type HttpMetrics,
  httpMetrics,
  type Registry,
} from '../infra/metrics.ts';
import type { ReadinessReport } from '../infra/readiness.ts';
import type { ReloadingTls } from '../infra/tls/tls-reloader.ts';
import type { Tracer } from '../infra/tracing.ts';
import type { RequestLimits } from '../pipeline/request-limits.ts';
import { loadApiDocs } from './api-docs.ts';
import { loadDashboardAssets } from './dashboard-assets.ts';
import { eventLogRoute } from './event-log-route.ts';
import { legacyRoutes } from './legacy-routes.ts';
import type { LiveFeedSource } from './live-feed.ts';
import { type CoalescerOptions, PublishCoalescer } from './publish-coalescer.ts';
import { createRequestContext } from './request-context.ts';
import { createRestTranscoder, REST_SERVICES } from './rest-transcoder.ts';
import { createRouter, type Router } from './router.ts';
import { createStreamServer } from './stream-server.ts';
import { createUpgradeHandler } from './stream-upgrade.ts';

export { REST_SERVICES };

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
  /**
   * Proxies whose `X-Forwarded-For` is believed (TALLY_TRUSTED_PROXIES): the client's address,
   * forwarded to ingest and query for the events' `ip` and the limits per address, is the first
   * untrusted hop from the right. Empty: the connection's address.
   */
  trustedProxies?: readonly Cidr[];
}

/** Access control at the edge (docs/security.md); the checks themselves are ingest's and query's. */
export interface GatewayAuth {
  /** Whether access control is on: then the WebSocket asks each socket for a credential. */
  on: boolean;
  /** When set, `/metrics` answers only `Authorization: Bearer <token>`. */
  metricsToken?: string;
}

export interface GatewayDeps {
  /** The process's readiness, served at `/readyz` (200 when ready, else 503, with the report). */
  readiness?: () => Promise<ReadinessReport>;
  ingest: ServiceClient<(typeof IngestService)['method']>;
  query: ServiceClient<(typeof QueryService)['method']>;
  /** Key administration's REST routes, and the WebSocket's credential checks (WhoAmI); needed with auth on. */
  keys?: ServiceClient<(typeof KeysService)['method']>;
  /** Alert rule administration's REST routes (served by query); absent: they answer UNIMPLEMENTED. */
  alerts?: ServiceClient<(typeof AlertService)['method']>;
  /** Notifications' REST routes and the stream's channel `notifications` (served by query); absent: UNIMPLEMENTED. */
  notifications?: ServiceClient<(typeof NotificationService)['method']>;
  /** Destination administration's REST routes (served by query); absent: they answer UNIMPLEMENTED. */
  destinations?: ServiceClient<(typeof DestinationService)['method']>;
  /** Projection administration's REST routes (served by query); absent: they answer UNIMPLEMENTED. */
  projections?: ServiceClient<(typeof ProjectionService)['method']>;
  /** The live entities' REST routes (served by query); absent: they answer UNIMPLEMENTED. */
  entities?: ServiceClient<(typeof EntityService)['method']>;
  /** The stored events' REST route, GET /v1/events (served by query); absent: UNIMPLEMENTED. */
  events?: ServiceClient<(typeof EventLogService)['method']>;
  /** Default: off, no metrics token. */
  auth?: GatewayAuth;
  logger: Logger;
  /** The process's metrics, served at /metrics, where every request is counted and timed (default: a registry of its own). */
  metrics?: Registry;
  /** Where the dashboard's live feed reads; without it the dashboard says live data is unavailable. */
  live?: LiveFeedSource;
  /** Traces each request (docs/tracing.md) but the probes and scrapes; none when tracing is off. */
  tracer?: Tracer;
  /** Serves HTTPS (and wss) with this material, followed as it is reloaded; plain HTTP without. */
  tls?: ReloadingTls | undefined;
  /**
   * The rate limits (pipeline/request-limits.ts): the stream's subscriptions are reads, checked
   * here; REST calls are checked by ingest and query. None: the stream is not limited.
   */
  limits?: RequestLimits;
}

/** A running gateway; `port` is the bound port (useful with port 0). */
export interface Gateway extends Stoppable {
  readonly port: number;
}

/**
 * Starts the gateway, put together from its parts: the router (router.ts) with the REST
 * transcoder (rest-transcoder.ts), the legacy routes, the API description and the dashboard, and
 * the stream (stream-server.ts) behind its upgrade handler (stream-upgrade.ts); both refuse new
 * work once `stop` began. Rejects, having stopped the stream, when the port cannot be bound.
 */
export async function start(deps: GatewayDeps, config: GatewayConfig): Promise<Gateway> {
  const logger = deps.logger.child({ role: 'gateway' });
  const routes = httpRoutes(REST_SERVICES);
  const legacy = legacyRoutes(deps);
  const dashboard = loadDashboardAssets();
  const apiDocs = loadApiDocs();
  const metrics = deps.metrics ?? createMetricsRegistry({ defaultMetrics: false });
  const failures = authMetrics(metrics).failures;
  /** Counts a refusal decided here (the metrics token, the stream's scope); ingest and query count theirs. */
  const countRefusal = (surface: 'metrics' | 'websocket', error: unknown) => {
    if (error instanceof AppError) failures.inc({ surface, reason: error.reason });
  };
  const coalescer = new PublishCoalescer(deps.ingest, {
    ...(config.coalesce ?? { maxBatchEvents: 1_000, maxBatchBytes: 2 * 1024 * 1024 }),
    perAddress: deps.limits?.perAddress ?? false,
  });
  const trusted = config.trustedProxies ?? [];
  const clientAddressOf = (socketAddress: string, forwardedFor: string | undefined) =>
    clientAddress(socketAddress, forwardedFor, (address) => inRanges(address, trusted));
  const contextOptions = {
    maxBodyBytes: config.maxBodyBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    coalescer,
    clientAddress: trusted.length > 0 ? clientAddressOf : undefined,
  };
  // Cleared by `stop`: the router and the upgrade handler refuse new work from then on.
  let accepting = true;
  const isAccepting = () => accepting;
  const router = createRouter({
    logger,
    accepting: isAccepting,
    readiness: deps.readiness,
    metrics,
    metricsToken: deps.auth?.metricsToken,
    onMetricsRefused: (error) => countRefusal('metrics', error),
    apiDocs,
    dashboard,
    legacy,
    routes,
    rest: createRestTranscoder({
      ingest: deps.ingest,
      query: deps.query,
      keys: deps.keys,
      alerts: deps.alerts,
      destinations: deps.destinations,
      projections: deps.projections,
      entities: deps.entities,
      notifications: deps.notifications,
      requestTimeoutMs: config.requestTimeoutMs,
      dedicated: new Map([
        [
          EventLogService.method.listEvents,
          eventLogRoute({ events: deps.events, requestTimeoutMs: config.requestTimeoutMs }),
        ],
      ]),
    }),
    context: (request, response) => createRequestContext(request, response, contextOptions),
  });
  const server = createHttpServer(config, httpMetrics(metrics), deps.tracer, router, deps.tls);
  if (deps.auth?.on && !deps.keys) throw new Error('a gateway with access control on needs the keys client');
  const streamAuth = deps.auth?.on && deps.keys ? { check: streamCheck(deps.keys, countRefusal) } : undefined;
  const stream = createStreamServer({
    query: deps.query,
    notifications: deps.notifications,
    entities: deps.entities,
    live: deps.live,
    logger,
    auth: streamAuth,
    limits: deps.limits,
    clientAddress: trusted.length > 0 ? clientAddressOf : undefined,
  });
  server.on('upgrade', createUpgradeHandler(stream, isAccepting, streamAuth));
  try {
    await listen(server, config);
  } catch (error) {
    await stream.stop(); // its timers and live feed would otherwise outlive the failed start
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  logger.info('gateway listening', { host: config.host, port, ...(deps.tls ? { tls: true } : {}) });

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

/**
 * The stream's credential check: the credential is valid (KeysService.WhoAmI, counted by query
 * under surface `websocket` when refused) and holds the `read` scope (PERMISSION_DENIED, counted
 * here, otherwise).
 */
function streamCheck(
  keys: ServiceClient<(typeof KeysService)['method']>,
  countRefusal: (surface: 'websocket', error: unknown) => void,
): (authorization: string) => Promise<Principal> {
  return async (authorization) => {
    const caller = await keys.whoAmI(
      {},
      { metadata: { authorization, [SURFACE_METADATA]: 'websocket' }, timeoutMs: 5_000 },
    );
    const limits: RateLimitOverrides = {};
    if (caller.ingestEventsPerMinute !== undefined)
      limits.ingestEventsPerMinute = Number(caller.ingestEventsPerMinute);
    if (caller.readsPerMinute !== undefined) limits.readsPerMinute = Number(caller.readsPerMinute);
    const principal: Principal = {
      kind: caller.kind as Principal['kind'],
      id: caller.id,
      scopes: new Set(caller.scopes as Scope[]),
      limits,
    };
    if (principal.scopes.has('read')) return principal;
    const error = insufficientScope(principal, 'read');
    countRefusal('websocket', error);
    throw error;
  };
}

/**
 * The HTTP server: every request goes to `router`, counted and timed in `requestMetrics` under
 * its route, and traced (but the probes and the scrape) when there is a tracer; HTTPS with `tls`.
 */
function createHttpServer(
  config: GatewayConfig,
  requestMetrics: HttpMetrics,
  tracer: Tracer | undefined,
  router: Router,
  tls: ReloadingTls | undefined,
): Server {
  const server = createListener(
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
      if (tracer && !UNTRACED.has(request.url ?? ''))
        void traceRequest(
          tracer,
          request,
          response,
          () => matched.route,
          () => router(request, response, matched),
        );
      else void router(request, response, matched);
    },
    tls,
  );
  server.keepAliveTimeout = 5_000;
  return server;
}

/** Binds `config.host`:`config.port`; rejects with the server's error (the port is taken, say). */
function listen(server: Server, config: Pick<GatewayConfig, 'host' | 'port'>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
