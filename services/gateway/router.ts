/**
 * Which part of the gateway answers an HTTP request, tried in this order: the probes and the
 * scrape (`/healthz`, `/readyz`, `/metrics`, answered while draining), the API description, the
 * dashboard, the stream's path (426: it is a WebSocket), the seed's legacy routes, the /v1
 * routes; else 405 for a path served with other verbs, 404 for any other. Every error goes out
 * through `sendError`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AppError, Code, shuttingDown } from '../infra/app-error.ts';
import type { HttpRoute } from '../infra/http/http-rules.ts';
import {
  checkMetricsToken,
  methodNotAllowed,
  sendError,
  sendJson,
  sendMetrics,
} from '../infra/http/http-server.ts';
import type { Logger } from '../infra/logger.ts';
import type { Registry } from '../infra/metrics.ts';
import type { ReadinessReport } from '../infra/readiness.ts';
import type { ApiDocs } from './api-docs.ts';
import type { DashboardAssets } from './dashboard-assets.ts';
import type { LegacyRoute } from './legacy-routes.ts';
import { type RequestContext, requestUrl } from './request-context.ts';
import type { RestHandler } from './rest-transcoder.ts';
import { STREAM_PATH } from './route-docs.ts';

/** The parts the router sends requests to. */
export interface RouterParts {
  logger: Logger;
  /**
   * False once the gateway drains: then every request gets 503 but the probes', the scrape's and
   * a malformed target's.
   */
  accepting(): boolean;
  /** The process's readiness at `/readyz`; without it, ready while accepting. */
  readiness?: () => Promise<ReadinessReport>;
  /** Served at `/metrics`. */
  metrics: Registry;
  /** When set, `/metrics` answers only `Authorization: Bearer <token>` (TALLY_METRICS_TOKEN). */
  metricsToken?: string;
  /** Told of each refused scrape. */
  onMetricsRefused?: (error: unknown) => void;
  apiDocs: ApiDocs;
  dashboard: DashboardAssets;
  legacy: readonly LegacyRoute[];
  /** The /v1 routes, served by `rest`. */
  routes: readonly HttpRoute[];
  rest: RestHandler;
  context(request: IncomingMessage, response: ServerResponse): RequestContext;
}

/**
 * Answers one request, an error through `sendError`. `matched.route` is set to the route's
 * template (the metrics label) as soon as it is known; it stays as it was for a malformed target.
 */
export type Router = (
  request: IncomingMessage,
  response: ServerResponse,
  matched: { route: string },
) => Promise<void>;

export function createRouter(parts: RouterParts): Router {
  const { logger, apiDocs, dashboard } = parts;
  return async (request, response, matched) => {
    /** Names the route; refuses the request when draining. */
    const enter = (route: string) => {
      matched.route = route;
      if (!parts.accepting()) throw shuttingDown();
    };
    const url = requestUrl(request.url);
    if (!url) return sendError(response, badTarget(request.url), logger);
    const path = url.pathname;
    const verb = request.method ?? 'GET';
    const ctx = parts.context(request, response);
    try {
      if (path === '/healthz' || path === '/readyz' || path === '/metrics') matched.route = path;
      if (path === '/healthz') return sendJson(response, 200, { status: 'ok' });
      if (path === '/readyz') return await sendReadiness(response, parts);
      if (path === '/metrics') {
        try {
          checkMetricsToken(request, parts.metricsToken);
        } catch (error) {
          parts.onMetricsRefused?.(error);
          throw error;
        }
        return await sendMetrics(response, parts.metrics);
      }

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
        throw upgradeRequired();
      }

      const legacyRoute = parts.legacy.find((r) => r.paths.includes(path));
      if (legacyRoute) {
        enter(legacyRoute.paths[0]!);
        if (legacyRoute.verb !== verb) throw methodNotAllowed([legacyRoute.verb], path);
        return await legacyRoute.handle(ctx);
      }
      const candidates = parts.routes
        .map((route) => ({ route, match: route.pattern.exec(path) }))
        .filter((c): c is { route: HttpRoute; match: RegExpExecArray } => c.match !== null);
      const hit = candidates.find((c) => c.route.verb === verb);
      if (hit) {
        enter(hit.route.template);
        return await parts.rest(hit.route, hit.match, ctx, url);
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
}

/** `/readyz`: 503 `draining` once the gateway drains, else the process's readiness (200 when ready, else 503). */
async function sendReadiness(
  response: ServerResponse,
  parts: Pick<RouterParts, 'accepting' | 'readiness'>,
): Promise<void> {
  if (!parts.accepting()) return sendJson(response, 503, { status: 'draining' });
  if (!parts.readiness) return sendJson(response, 200, { status: 'ready' });
  const report = await parts.readiness();
  sendJson(response, report.ready ? 200 : 503, report);
}

/** A plain HTTP request for the stream: 426, naming the upgrade it needs. */
function upgradeRequired(): AppError {
  return new AppError(
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

function badTarget(target: string | undefined): AppError {
  const shown = JSON.stringify((target ?? '').slice(0, 100));
  return AppError.invalidField('path', `is not a valid request target: ${shown}`);
}
