/**
 * The HTTP server of a process without a gateway: `/metrics` (Prometheus text
 * format), `/healthz` (alive) and `/readyz` (infra/readiness.ts: serving, not draining, backends answering).
 */
import type { AddressInfo } from 'node:net';
import { AppError, Code } from '../app-error.ts';
import type { Registry } from '../metrics.ts';
import type { ReadinessReport } from '../readiness.ts';
import type { ReloadingTls } from '../tls/tls-reloader.ts';
import { checkMetricsToken, sendError, sendJson, sendMetrics } from './http-server.ts';
import { createListener } from './tls-server.ts';

export interface MetricsServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  registry: Registry;
  /** What `/readyz` answers: 200 with the report when ready, else 503 with it. */
  readiness: () => Promise<ReadinessReport>;
  /** Serves HTTPS with this material (followed as it is reloaded); plain HTTP without. */
  tls?: ReloadingTls | undefined;
  /** When set, `/metrics` answers only `Authorization: Bearer <token>` (TALLY_METRICS_TOKEN). */
  token?: string;
  /** Told of each refused scrape (counted in `tally_auth_failures_total{surface="metrics"}`). */
  onRefused?: (error: unknown) => void;
}

export interface MetricsServer {
  readonly port: number;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/** Listens on host:port; rejects when the port cannot be bound. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server = createListener(
    {},
    (request, response) => {
      const path = (request.url ?? '/').split('?', 1)[0];
      if (path === '/metrics') {
        try {
          checkMetricsToken(request, options.token);
        } catch (error) {
          options.onRefused?.(error);
          return sendError(response, error);
        }
        sendMetrics(response, options.registry).catch(() => {
          if (response.headersSent) response.destroy();
          else sendError(response, new AppError(Code.INTERNAL, 'collecting metrics failed'));
        });
      } else if (path === '/healthz') sendJson(response, 200, { status: 'ok' });
      else if (path === '/readyz')
        options.readiness().then(
          (report) => sendJson(response, report.ready ? 200 : 503, report),
          () => sendJson(response, 503, { ready: false, status: 'not ready' }),
        );
      else
        sendError(
          response,
          new AppError(Code.NOT_FOUND, `no route for ${path}: /metrics, /healthz, /readyz`),
        );
    },
    options.tls,
  );
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
