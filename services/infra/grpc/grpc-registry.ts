/**
 * Collects the gRPC services of the roles running in one process, so that
 * they share one server and port; refuses new calls once draining.
 */
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../logger.ts';
import { grpcMetrics, type Registry } from '../metrics.ts';
import type { Tracer } from '../tracing.ts';
import {
  type GrpcServer,
  type GrpcServerOptions,
  grpcService,
  type ServiceImpl,
  startGrpcServer,
} from './grpc-service.ts';

export class GrpcRegistry {
  readonly #services: { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }[] =
    [];
  readonly #logger: Logger;
  readonly #metrics: Registry | undefined;
  readonly #tracer: Tracer | undefined;
  #accepting = true;

  /**
   * With `metrics`, every call is counted and timed there (docs/metrics.md); with `tracer`, every
   * call is a SERVER span continuing the caller's trace context (docs/tracing.md).
   */
  constructor(logger: Logger, metrics?: Registry, tracer?: Tracer) {
    this.#logger = logger;
    this.#metrics = metrics;
    this.#tracer = tracer;
  }

  /** Adds a service; call before {@link listen}. */
  register<T extends GenServiceMethods>(service: GenService<T>, impl: ServiceImpl<T>): void {
    this.#services.push(
      grpcService(service, impl, {
        logger: this.#logger.child({ service: service.typeName }),
        accepting: () => this.#accepting,
        metrics: this.#metrics && grpcMetrics(this.#metrics),
        tracer: this.#tracer,
      }),
    );
  }

  get isEmpty(): boolean {
    return this.#services.length === 0;
  }

  /** New calls from now on get UNAVAILABLE. */
  drain(): void {
    this.#accepting = false;
  }

  listen(options: GrpcServerOptions): Promise<GrpcServer> {
    return startGrpcServer(this.#services, options);
  }
}
