/**
 * Collects the gRPC services of the roles running in one process, so that
 * they share one server and port; refuses new calls once draining. Every server
 * also serves the standard health service (grpc.health.v1.Health, grpc-health.ts) and, unless
 * turned off, server reflection (grpc-reflection.ts).
 */
import type { DescService } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type * as grpc from '@grpc/grpc-js';
import type { AccessControl } from '../auth/access-control.ts';
import type { Logger } from '../logger.ts';
import { grpcMetrics, type Registry } from '../metrics.ts';
import type { Tracer } from '../tracing.ts';
import { Health, HealthStatus, healthService } from './grpc-health.ts';
import { reflectionServices } from './grpc-reflection.ts';
import {
  type GrpcServer,
  type GrpcServerOptions,
  grpcService,
  type ServiceClient,
  type ServiceImpl,
  startGrpcServer,
} from './grpc-service.ts';
import { createInProcessClient } from './in-process-client.ts';

export class GrpcRegistry {
  readonly #services: { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }[] =
    [];
  readonly #descriptors: DescService[] = [];
  /** Each registered service's handlers, by full name, for in-process clients. */
  readonly #impls = new Map<string, unknown>();
  readonly #health = new HealthStatus();
  readonly #logger: Logger;
  readonly #metrics: Registry | undefined;
  readonly #tracer: Tracer | undefined;
  readonly #access: AccessControl | undefined;
  #accepting = true;
  readonly #draining = new AbortController();

  /**
   * With `metrics`, every call is counted and timed there (docs/metrics.md); with `tracer`, every
   * call is a SERVER span continuing the caller's trace context (docs/tracing.md). Health checks
   * and reflection are neither: probes and tools would bury the real traffic. With `access`,
   * every call of a registered service, in-process ones included, is checked by it (credential,
   * scope); health and reflection stay open (docs/security.md).
   */
  constructor(logger: Logger, metrics?: Registry, tracer?: Tracer, access?: AccessControl) {
    this.#logger = logger;
    this.#metrics = metrics;
    this.#tracer = tracer;
    this.#access = access;
  }

  /** Adds a service; call before {@link listen}. */
  register<T extends GenServiceMethods>(service: GenService<T>, impl: ServiceImpl<T>): void {
    this.#services.push(
      grpcService(service, impl, {
        logger: this.#logger.child({ service: service.typeName }),
        accepting: () => this.#accepting,
        draining: this.#draining.signal,
        metrics: this.#metrics && grpcMetrics(this.#metrics),
        tracer: this.#tracer,
        access: this.#access,
      }),
    );
    this.#descriptors.push(service);
    this.#impls.set(service.typeName, impl);
    this.#health.addService(service.typeName);
  }

  /**
   * A client whose calls run the handlers `service` registered in this process (no gRPC hop), or
   * undefined when no role of this process serves it. It refuses calls once draining, as the server does.
   */
  localClient<T extends GenServiceMethods>(service: GenService<T>): ServiceClient<T> | undefined {
    const impl = this.#impls.get(service.typeName) as ServiceImpl<T> | undefined;
    return (
      impl &&
      createInProcessClient(service, impl, {
        accepting: () => this.#accepting,
        draining: this.#draining.signal,
        logger: this.#logger.child({ service: service.typeName }),
        metrics: this.#metrics && grpcMetrics(this.#metrics),
        tracer: this.#tracer,
        access: this.#access,
      })
    );
  }

  /** Whether no role registered a service (the health service does not count). */
  get isEmpty(): boolean {
    return this.#services.length === 0;
  }

  /** The full names of the services {@link listen} serves, the health service's included (not reflection's). */
  get serviceNames(): readonly string[] {
    return [...this.#descriptors.map((s) => s.typeName), Health.typeName];
  }

  /**
   * Whether the process is ready (its roles started) and so health checks answer SERVING; until
   * then they answer NOT_SERVING. Ignored once draining.
   */
  setServing(serving: boolean): void {
    this.#health.setServing(serving);
  }

  /**
   * New calls from now on get UNAVAILABLE; health checks answer NOT_SERVING, and watches and
   * bidirectional streams end.
   */
  drain(): void {
    this.#accepting = false;
    this.#draining.abort();
    this.#health.shutdown();
  }

  /** Starts the server; with `reflection` (default true) it also answers server reflection. */
  listen(options: GrpcServerOptions & { reflection?: boolean }): Promise<GrpcServer> {
    // Answers while draining (NOT_SERVING), and stays out of the request metrics and traces.
    const health = grpcService(Health, healthService(this.#health), {
      logger: this.#logger.child({ service: Health.typeName }),
      accepting: () => true,
    });
    // Describes the registered services and health; like health, uncounted and untraced.
    const reflection = options.reflection === false ? [] : reflectionServices([...this.#descriptors, Health]);
    return startGrpcServer([...this.#services, health, ...reflection], options);
  }
}
