/**
 * Runs a set of roles in this process, as the role table (roles.ts) describes them: opens the
 * ports they need, ensures the topics, starts the gRPC roles, the gRPC server, the HTTP roles, and
 * then lets the consumer roles join their groups in the background; stops them in named drain phases.
 */
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { ChannelCredentials } from '@grpc/grpc-js';
import {
  type Backends,
  backendChecks,
  closeBackends,
  openBackends,
  openRequestLimits,
  type Port,
} from './backends.ts';
import { apiKeyId } from './domain/api-keys.ts';
import { AppError, Code } from './infra/app-error.ts';
import { cachedKeyStore, createAccessControl } from './infra/auth/access-control.ts';
import { createJwtVerifier } from './infra/auth/jwt-verifier.ts';
import {
  type AuthMode,
  grpcClientTls,
  isLoopbackHost,
  jwtVerifierOptions,
  listenerTls,
  resolveAuthMode,
  type TallyConfig,
} from './infra/config.ts';
import { GrpcRegistry } from './infra/grpc/grpc-registry.ts';
import { createGrpcClient, type GrpcServer, type ServiceClient } from './infra/grpc/grpc-service.ts';
import { grpcChannelCredentials, grpcServerCredentials } from './infra/grpc/grpc-tls.ts';
import { type MetricsServer, startMetricsServer } from './infra/http/metrics-server.ts';
import type { KeyStore } from './infra/keys/key-store.ts';
import { createSqlKeyStore } from './infra/keys/sql-key-store.ts';
import type { Stoppable } from './infra/lifecycle.ts';
import type { Logger } from './infra/logger.ts';
import { authMetrics, createMetricsRegistry } from './infra/metrics.ts';
import { Readiness } from './infra/readiness.ts';
import { migrate } from './infra/sql/migrate.ts';
import { afterReady } from './infra/sql/sql-database.ts';
import type { TlsFiles, TlsMaterial } from './infra/tls/tls-files.ts';
import { leafFields, type ReloadingTls, watchTlsFiles } from './infra/tls/tls-reloader.ts';
import { serviceNamedByEnv, startTracing, type Tracing } from './infra/tracing.ts';
import type { RequestLimits } from './pipeline/request-limits.ts';
import { ROLE_TABLE, ROLES, type Role, type RoleWiring } from './roles.ts';

/** Longest the stop waits for buffered spans to be exported: well within the drain's force deadline. */
const TRACING_FLUSH_MS = 3_000;

/** A running process: its roles, servers and backends, stopped in drain order. */
export interface Running {
  httpPort?: number;
  grpcPort?: number;
  /** Where /metrics is served: the gateway's HTTP port, else the metrics server's. */
  metricsPort: number;
  /** Resolves when every consumer role has joined its group (or failed to, which is logged). */
  joined: Promise<void>;
  stop(): Promise<void>;
}

/** The default `service.name` of a process's spans: `tally-all`, or `tally-<role>-…` in the order of ROLES. */
export function serviceName(roles: readonly Role[]): string {
  const present = ROLES.filter((r) => roles.includes(r));
  return present.length === ROLES.length ? 'tally-all' : `tally-${present.join('-')}`;
}

/**
 * The ports `roles` use together; with access control on, a process serving gRPC roles also
 * opens the SQL port, where the API keys are (infra/keys/).
 */
export function portsOf(roles: readonly Role[], authOn = false): Set<Port> {
  const ports = new Set(roles.flatMap((r) => ROLE_TABLE[r].ports));
  if (authOn && roles.some((r) => ROLE_TABLE[r].kind === 'grpc')) ports.add('sql');
  return ports;
}

/** The name of the key stored from TALLY_BOOTSTRAP_ADMIN_KEY. */
export const BOOTSTRAP_KEY_NAME = 'bootstrap admin (TALLY_BOOTSTRAP_ADMIN_KEY)';

/** Says at start-up how access control runs, and how to turn it on when it is off. */
function logAuthMode(auth: AuthMode, config: TallyConfig, logger: Logger): void {
  if (auth.on) {
    logger.info('access control on', {
      why: auth.why,
      jwt: config.jwt !== undefined,
      metricsToken: config.auth.metricsToken !== undefined,
    });
    return;
  }
  const hint =
    'to require credentials: TALLY_AUTH=on TALLY_BOOTSTRAP_ADMIN_KEY=<a tly_sk_ key> (make one with `tally keys create --name admin --scopes admin`, or let the key be made from your own random 32 bytes); see docs/security.md';
  if (auth.why === 'loopback')
    logger.info('access control off: listening on loopback only, every caller may read and write', {
      host: config.http.host,
      hint,
    });
  else
    logger[isLoopbackHost(config.http.host) ? 'info' : 'warn'](
      'access control off (TALLY_AUTH=off): every caller that reaches this process may read, write and administer keys',
      { host: config.http.host, hint },
    );
}

/**
 * The drain, phase by phase (each logged): `refuse` (readiness and gRPC health turn false, the HTTP
 * roles stop accepting and finish their requests, the gRPC server refuses new calls and waits for
 * those in flight), `consumers` (each finishes its batch and commits), `services` (the gRPC roles
 * flush what they hold, e.g. ingest's producer), `backends` (adapters closed), `telemetry` (spans
 * exported, the metrics server closed last so the drain itself can be watched).
 */
class Drain {
  readonly #logger: Logger;
  readonly #phases: { name: string; run: () => Promise<void> }[] = [];

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  phase(name: string, run: () => Promise<void>): void {
    this.#phases.push({ name, run });
  }

  async run(): Promise<void> {
    for (const { name, run } of this.#phases) {
      this.#logger.info('drain phase', { phase: name });
      await run();
    }
  }
}

/** How long a consumer role's start is tried again while its backends are unreachable. */
const CONSUMER_START_RETRY_MS = 120_000;

/**
 * Whether a start failed because a backend could not be reached (a connection refused or reset,
 * a timeout, a backend's UNAVAILABLE), which a restart of that backend ends, rather than for a
 * reason that stays (a wrong setting, a refused credential).
 */
export function isUnreachable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EPIPE')
      return true;
    if (e instanceof AppError && e.code === Code.UNAVAILABLE) return true;
    if (/^KafkaJS(Connection|Request|NumberOfRetriesExceeded|RequestTimeout)Error$/.test(e.name)) return true;
    if (/ECONNREFUSED|ECONNRESET|ETIMEDOUT/.test(e.message)) return true;
  }
  return false;
}

/**
 * Starts a consumer role, trying again (1 s, 2 s, … up to 10 s apart, for up to
 * {@link CONSUMER_START_RETRY_MS}) while its backends are unreachable — a process started while
 * Kafka or PostgreSQL restarts joins once they are back rather than exiting — and not once the
 * process drains.
 */
export async function startConsumerRole(
  role: string,
  start: () => Promise<Stoppable>,
  logger: Logger,
  draining: () => boolean,
  retryForMs = CONSUMER_START_RETRY_MS,
): Promise<Stoppable> {
  const began = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (!isUnreachable(error) || draining() || Date.now() - began >= retryForMs) throw error;
      const waitMs = Math.min(10_000, 1000 * 2 ** (attempt - 1));
      logger.warn('consumer role could not reach its backends; starting it again', {
        role,
        attempt,
        inMs: waitMs,
        error: error instanceof Error ? error.message : String(error),
      });
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      if (draining()) throw error;
    }
  }
}

export interface RunOptions {
  /**
   * Called when a consumer role fails to start in the background (its group cannot be joined, its
   * store refuses): the process cannot do its work, so main.ts drains and exits non-zero.
   */
  onFatal?: (error: unknown) => void;
}

/** Starts `roles` in this process; rejects (having stopped what started) when one cannot start. */
export async function runRoles(
  roles: readonly Role[],
  config: TallyConfig,
  logger: Logger,
  options: RunOptions = {},
): Promise<Running> {
  const auth = resolveAuthMode(config); // a ConfigError before anything starts
  const metrics = createMetricsRegistry(); // one registry: roles running together share each metric
  const failures = authMetrics(metrics).failures;
  let readiness = new Readiness([]);
  const report = () => readiness.report();
  const hasHttpRole = roles.some((r) => ROLE_TABLE[r].kind === 'http');
  // The TLS files are read and checked before anything listens (a ConfigError names the variable).
  const tls = startTls(config, logger);
  // Without an HTTP role, /metrics gets a server of its own, up first so that a taken port fails fast.
  let metricsServer: MetricsServer | undefined;
  try {
    metricsServer = hasHttpRole
      ? undefined
      : await startMetricsServer({
          ...config.metrics,
          registry: metrics,
          readiness: report,
          tls: tls.listener,
          token: config.auth.metricsToken,
          onRefused: (error) => {
            if (error instanceof AppError) failures.inc({ surface: 'metrics', reason: error.reason });
          },
        });
  } catch (error) {
    tls.close();
    throw error;
  }
  if (metricsServer)
    logger.info('metrics listening', { host: config.metrics.host, port: metricsServer.port });

  let tracing: Tracing | undefined;
  let backends: Backends = {};
  let grpc: GrpcRegistry | undefined;
  let keys: (KeyStore & { invalidate(): void }) | undefined;
  let limits: RequestLimits | undefined;
  let grpcServer: GrpcServer | undefined;
  const clients: { close(): void }[] = [];
  const services: Stoppable[] = [];
  const edge: Stoppable[] = [];
  const consumers: Stoppable[] = [];
  const joining: Promise<void>[] = [];

  const drain = new Drain(logger);
  let draining = false;
  drain.phase('refuse', async () => {
    draining = true;
    readiness.draining();
    grpc?.setServing(false); // gRPC health: NOT_SERVING from the first moment of the drain
    for (const role of edge) await stopRole(role, logger);
    grpc?.drain();
    await grpcServer?.shutdown(config.drainTimeoutMs);
    for (const c of clients) c.close();
  });
  drain.phase('consumers', async () => {
    await Promise.all(joining); // a consumer still joining is stopped once it has started
    await Promise.all(consumers.map((role) => stopRole(role, logger)));
  });
  drain.phase('services', async () => {
    for (const role of services.reverse()) await stopRole(role, logger);
  });
  drain.phase('backends', async () => {
    await keys?.close().catch((error: unknown) => logger.warn('key store close failed', { error }));
    await limits?.close().catch((error: unknown) => logger.warn('rate limiter close failed', { error }));
    await closeBackends(backends);
  });
  drain.phase('telemetry', async () => {
    await tracing?.shutdown(TRACING_FLUSH_MS); // exports the spans of the drain too
    await metricsServer?.close();
    tls.close();
  });

  try {
    // Off unless OTEL_* asks for traces (docs/tracing.md); then every component gets the tracer.
    tracing = await startTracing({ serviceName: serviceName(roles), logger });
    if (tracing.tracer)
      logger.info('tracing on', {
        serviceName: serviceNamedByEnv() ? 'from OTEL_* variables' : serviceName(roles),
        exporter: process.env.OTEL_TRACES_EXPORTER?.trim() || 'otlp',
      });
    logAuthMode(auth, config, logger);
    backends = await openBackends(portsOf(roles, auth.on), config, logger, metrics);
    for (const port of ['log', 'counters', 'sql', 'aggregates'] as const) {
      const backend = backends[port];
      if (backend) logger.info('backend', { port, adapter: backend.description });
    }
    if (backends.sql && config.pg.migrate) {
      // Migrations run while the edge starts (an embedded database's first start takes seconds);
      // the roles' SQL waits for them, and a migration that fails stops the process.
      const sql = backends.sql;
      const migrated = migrate(sql, config.pg.schema).then(
        (applied) => {
          if (applied.length > 0) logger.info('applied migrations', { applied });
        },
        (error: unknown) => {
          logger.error('migrations failed', { error });
          options.onFatal?.(error);
          throw error;
        },
      );
      backends = { ...backends, sql: afterReady(sql, migrated) };
    }
    readiness = new Readiness(backendChecks(backends, config.topics.events));
    // The roles that check limits: ingest (events), query (reads), the gateway (the stream's subscriptions).
    if (roles.some((r) => r === 'gateway' || r === 'ingest' || r === 'query'))
      limits = openRequestLimits(config, logger, metrics);
    if (backends.sql) {
      keys = cachedKeyStore(
        createSqlKeyStore({
          sql: backends.sql,
          onFlushError: (error) => logger.warn("writing keys' last use failed", { error }),
        }),
        { logger },
      );
      if (config.auth.bootstrapAdminKey !== undefined) {
        const added = await keys.adopt(config.auth.bootstrapAdminKey, {
          name: BOOTSTRAP_KEY_NAME,
          kind: 'secret',
          scopes: new Set(['admin']),
        });
        const id = apiKeyId(config.auth.bootstrapAdminKey);
        logger.info(added ? 'bootstrap admin key stored' : 'bootstrap admin key present', { id });
      }
    }
    const grpcRoles = roles.some((r) => ROLE_TABLE[r].kind === 'grpc');
    // Throws when access control is on without a key store: never serve gRPC open by mistake.
    const access = grpcRoles
      ? createAccessControl({
          mode: auth.on ? 'on' : 'off',
          keys,
          jwt: config.jwt && createJwtVerifier(jwtVerifierOptions(config.jwt)),
          metrics,
          logger,
        })
      : undefined;
    // The one place topics are ensured: every role that reads or writes them runs after this.
    await backends.log?.ensureTopics([
      { name: config.topics.events, partitions: config.topics.eventsPartitions },
      // Partition for partition with the events topic: the persister forwards p to p.
      { name: config.topics.accepted, partitions: config.topics.eventsPartitions },
      { name: config.topics.dlq, partitions: config.topics.eventsPartitions },
      // The alerter's notifications, keyed by recipient (docs/alerts.md).
      { name: config.topics.notifications, partitions: config.topics.eventsPartitions },
    ]);

    grpc = new GrpcRegistry(logger, metrics, tracing.tracer, access);
    const wiring: RoleWiring = {
      config,
      backends,
      grpc,
      logger,
      metrics,
      tracer: tracing.tracer,
      readiness: report,
      tls: tls.listener,
      auth,
      keys,
      limits,
      client: <T extends GenServiceMethods>(service: GenService<T>, address: string): ServiceClient<T> => {
        const local = grpc?.localClient(service);
        if (local) return local;
        const client = createGrpcClient(service, address, {
          maxMessageBytes: config.grpc.maxMessageBytes,
          tracer: tracing?.tracer,
          credentials: tls.grpcClient,
        });
        clients.push(client);
        return client;
      },
    };
    const ofKind = (kind: 'grpc' | 'http' | 'consumer') => roles.filter((r) => ROLE_TABLE[r].kind === kind);
    for (const role of ofKind('grpc')) services.push(await ROLE_TABLE[role].start(wiring));
    if (!grpc.isEmpty) {
      grpcServer = await grpc.listen({
        ...config.grpc,
        credentials:
          tls.listener &&
          grpcServerCredentials(tls.listener, {
            requireClientCertificate: config.tls?.clientCaFile !== undefined,
          }),
      });
      logger.info('grpc listening', { host: config.grpc.host, port: grpcServer.port });
    }
    for (const role of ofKind('http')) edge.push(await ROLE_TABLE[role].start(wiring));

    // The edge serves from here on; consumers join their groups in the background (a restarted
    // member may wait out a dead one's session timeout), and readiness lists them until they have.
    for (const role of ofKind('consumer')) {
      const mark = readiness.joining(role);
      const started = startConsumerRole(
        role,
        () => ROLE_TABLE[role].start(wiring),
        logger,
        () => draining,
      ).then(
        (stoppable) => {
          consumers.push(stoppable);
          logger.info('role started', { role });
        },
        (error: unknown) => {
          logger.error('consumer role failed to start', { role, error });
          options.onFatal?.(error);
        },
      );
      joining.push(started.finally(() => mark.done()));
    }
  } catch (error) {
    await drain.run().catch(() => {});
    throw error;
  }

  const gatewayPort = (edge[0] as Partial<{ port: number }> | undefined)?.port;
  const metricsPort = metricsServer?.port ?? gatewayPort!;
  if (!metricsServer)
    logger.info('metrics listening', { host: config.http.host, port: metricsPort, on: 'gateway' });
  readiness.serving();
  grpc.setServing(true);
  logger.info('tally started', { roles });
  const consumerRoles = roles.filter((r) => ROLE_TABLE[r].kind === 'consumer');
  const joined = Promise.all(joining).then(() => {
    logger.info('consumers joined', { roles: consumerRoles });
  });
  joined.catch(() => {}); // a consumer that failed to start is reported by onFatal
  return {
    httpPort: gatewayPort,
    grpcPort: grpcServer?.port,
    metricsPort,
    joined,
    stop: () => drain.run(),
  };
}

/**
 * The process's TLS: the listeners' material (TALLY_TLS_*) and the gRPC client's credentials
 * (TALLY_GRPC_TLS*), each file read and checked now and then followed as it changes.
 */
function startTls(
  config: TallyConfig,
  logger: Logger,
): { listener: ReloadingTls | undefined; grpcClient: ChannelCredentials | undefined; close(): void } {
  const watched: ReloadingTls[] = [];
  const watch = (files: TlsFiles, material: TlsMaterial, name: string) => {
    const reloading = watchTlsFiles(files, material, { logger, name });
    watched.push(reloading);
    return reloading;
  };
  let listener: ReloadingTls | undefined;
  if (config.tls) {
    const { files, material } = listenerTls(config.tls);
    listener = watch(files, material, 'listeners');
    logger.info('tls on the listeners', {
      ...leafFields(material),
      grpcClientCertificates: config.tls.clientCaFile === undefined ? 'not asked' : 'required',
    });
  }
  let grpcClient: ChannelCredentials | undefined;
  if (config.grpcClientTls) {
    const { files, material } = grpcClientTls(config.grpcClientTls);
    const reloading = files.certFile || files.caFile ? watch(files, material, 'grpc client') : undefined;
    grpcClient = grpcChannelCredentials(reloading);
    logger.info('tls to ingest and query', {
      ca: files.caFile ?? 'system CAs',
      ...(material.leaf ? { clientCertificate: leafFields(material) } : {}),
    });
  }
  return {
    listener,
    grpcClient,
    close: () => {
      for (const w of watched) w.close();
    },
  };
}

async function stopRole(role: Stoppable, logger: Logger): Promise<void> {
  await role.stop();
  logger.info('role stopped', { role: role.name });
}
