/**
 * The standard gRPC health service, grpc.health.v1.Health
 * (https://github.com/grpc/grpc/blob/master/doc/health-checking.md), as every Tally gRPC server
 * serves it: what kubelet's gRPC probes, grpc_health_probe and balancers ask.
 *
 * - `Check` with service `""` (the server as a whole): SERVING while the process is ready and
 *   accepting calls, NOT_SERVING while it starts and once it drains.
 * - `Check` with a served service's full name (`tally.v1.IngestService`): that service's status,
 *   the same as the server's (its roles start and drain with the process); any other name is
 *   NOT_FOUND, as the protocol asks.
 * - `Watch`: the status now, then each change, until the caller cancels; SERVICE_UNKNOWN (and the
 *   call kept open) for a name the server does not serve. On drain a watcher gets NOT_SERVING and
 *   its call ends OK, so that open watches do not hold the server's shutdown.
 */

import type { GenService } from '@bufbuild/protobuf/codegenv2';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../../gen/grpc/health/v1/health_pb.js';
import { AppError, Code } from '../app-error.ts';
import type { ServiceImpl } from './grpc-service.ts';

export { Health, ServingStatus };

type HealthMethods = typeof Health extends GenService<infer T> ? T : never;

/** The serving status of a server and of the services it serves. */
export class HealthStatus {
  readonly #services = new Set<string>();
  readonly #listeners = new Set<() => void>();
  #serving = false;
  #terminal = false;

  /** A service the server serves, by its full name. */
  addService(typeName: string): void {
    this.#services.add(typeName);
    this.#notify();
  }

  /** Ready (SERVING) or not (NOT_SERVING); ignored once {@link shutdown} was called. */
  setServing(serving: boolean): void {
    if (this.#terminal || serving === this.#serving) return;
    this.#serving = serving;
    this.#notify();
  }

  /** NOT_SERVING for good: the server drains. Ends every watch after telling it. */
  shutdown(): void {
    if (this.#terminal) return;
    this.#serving = false;
    this.#terminal = true;
    this.#notify();
  }

  /** The status of `service` (`""`: the server), or undefined for a service the server does not serve. */
  status(service: string): ServingStatus | undefined {
    if (service !== '' && !this.#services.has(service)) return undefined;
    return this.#serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  /**
   * The status of `service` now, then each change (changes that come faster than they are read
   * give their latest), until `signal` aborts or the server drains (after NOT_SERVING).
   */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus> {
    let changed = true;
    let wake: () => void = () => {};
    const listener = () => {
      changed = true;
      wake();
    };
    const onAbort = () => wake();
    this.#listeners.add(listener);
    signal.addEventListener('abort', onAbort);
    try {
      let last: ServingStatus | undefined;
      while (!signal.aborted) {
        if (!changed) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          continue;
        }
        changed = false;
        const now = this.status(service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (now !== last) {
          last = now;
          yield now;
        }
        if (this.#terminal) return;
      }
    } finally {
      this.#listeners.delete(listener);
      signal.removeEventListener('abort', onAbort);
    }
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }
}

/** Longest service name quoted back in a NOT_FOUND message. */
const MAX_QUOTED = 200;

/** The handlers of grpc.health.v1.Health answering from `status`. */
export function healthService(status: HealthStatus): ServiceImpl<HealthMethods> {
  return {
    async check({ service }) {
      const now = status.status(service);
      if (now === undefined) {
        const shown = service.length > MAX_QUOTED ? `${service.slice(0, MAX_QUOTED)}…` : service;
        throw new AppError(Code.NOT_FOUND, `unknown service: ${JSON.stringify(shown)}`);
      }
      return { status: now };
    },
    async *watch({ service }, { signal }) {
      for await (const now of status.watch(service, signal)) yield { status: now };
    },
  };
}
