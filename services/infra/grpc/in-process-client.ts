/**
 * A client of a service served in this same process: the calls go straight to the service's
 * handlers, with the same messages, metadata, validation and errors as over gRPC, but without
 * encoding the request, a loopback connection and HTTP/2 framing. `tally all` uses it for the
 * gateway's calls to ingest and query; roles in separate processes use gRPC (grpc-service.ts).
 *
 * The call is counted and timed in `tally_grpc_*` exactly as the gRPC server counts a call (same
 * service, method and code labels), so the SLOs and dashboards built on them read the same in one
 * process as across several. With a tracer it is one INTERNAL span named as the RPC
 * (`tally.v1.IngestService/Publish`, attribute `tally.rpc.transport` = `in-process`), child of the
 * caller's span, in which the handler runs: where a gRPC call has a CLIENT and a SERVER span.
 */
import { create, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import * as grpc from '@grpc/grpc-js';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { AppError, Code, codeName, shuttingDown, toAppError } from '../app-error.ts';
import type { AccessControl } from '../auth/access-control.ts';
import { withTimeout } from '../lifecycle.ts';
import type { Logger } from '../logger.ts';
import { type GrpcMetrics, secondsSince } from '../metrics.ts';
import { failSpan, type Tracer } from '../tracing.ts';
import {
  type CallContext,
  type CallOptions,
  SERVER_FAULTS,
  type ServiceClient,
  type ServiceImpl,
  type StreamCallContext,
  type StreamCallOptions,
} from './grpc-service.ts';

/** The peer an in-process call reports: the loopback address a local gRPC call would show. */
export const IN_PROCESS_PEER = '127.0.0.1:0';

export interface InProcessClientOptions {
  /** While false, calls get UNAVAILABLE, as a draining gRPC server answers. */
  accepting: () => boolean;
  /** Where unexpected errors are logged (INTERNAL), as the gRPC server logs them. */
  logger: Logger;
  /** The server-side call metrics the gRPC server would record (tally_grpc_*). */
  metrics?: GrpcMetrics;
  /** Traces each call (docs/tracing.md) when given. */
  tracer?: Tracer;
  /** Checks each call's credential and scope, as the gRPC server does. */
  access?: AccessControl;
  /** Aborted when the process drains: server streams in flight end, as the gRPC server's do. */
  draining?: AbortSignal;
}

/** A ServiceClient whose calls run `impl`'s handlers in this process. */
export function createInProcessClient<T extends GenServiceMethods>(
  service: GenService<T>,
  impl: ServiceImpl<T>,
  options: InProcessClientOptions,
): ServiceClient<T> {
  const out: Record<string, unknown> = { close: () => {} };
  for (const method of service.methods) {
    const handler = (impl as Record<string, unknown>)[method.localName] as (
      request: unknown,
      context: CallContext,
    ) => Promise<MessageInitShape<DescMessage>>;
    const labels = { service: service.typeName, method: method.name };
    const duration = options.metrics?.duration.labels(labels);
    const count = (code: Code) => options.metrics?.requests.inc({ ...labels, code: codeName(code) });
    const spanName = `${service.typeName}/${method.name}`;
    const call = async (request: unknown, callOptions: CallOptions | undefined) => {
      const startMs = performance.now();
      const span = options.tracer?.startSpan(spanName, {
        kind: SpanKind.INTERNAL,
        attributes: {
          'rpc.service': service.typeName,
          'rpc.method': method.name,
          'tally.rpc.transport': 'in-process',
        },
      });
      let code: Code = Code.OK;
      try {
        return await (span
          ? context.with(trace.setSpan(context.active(), span), () => run(request, callOptions))
          : run(request, callOptions));
      } catch (error) {
        code = toAppError(error).code;
        throw error;
      } finally {
        count(code);
        duration?.observe(secondsSince(startMs));
        if (span) {
          span.setAttribute('rpc.grpc.status_code', code);
          if (SERVER_FAULTS.has(code)) failSpan(span, codeName(code));
          span.end();
        }
      }
    };
    const run = async (request: unknown, callOptions: CallOptions | undefined) => {
      if (!options.accepting()) throw shuttingDown();
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(callOptions?.metadata ?? {})) metadata.set(k, v);
      const principal = await options.access?.authorizeCall(method, (name) => callOptions?.metadata?.[name]);
      const running = handler(request, {
        metadata,
        peer: IN_PROCESS_PEER,
        principal,
        ...(options.draining ? { draining: options.draining } : {}),
      });
      try {
        const answer = await (callOptions?.timeoutMs
          ? withTimeout(
              running,
              callOptions.timeoutMs,
              () => new AppError(Code.DEADLINE_EXCEEDED, 'deadline exceeded'),
            )
          : running);
        return create(method.output, answer);
      } catch (error) {
        const appError = toAppError(error);
        if (appError.code === Code.INTERNAL || appError.code === Code.UNKNOWN)
          options.logger.error('rpc failed', { method: method.name, error });
        throw appError;
      }
    };
    /** A server stream: its handler's answers, until they end, the caller leaves or cancels, or the process drains. */
    const stream = async function* (request: unknown, callOptions: StreamCallOptions | undefined) {
      if (callOptions?.signal?.aborted) return;
      const startMs = performance.now();
      const span = options.tracer?.startSpan(spanName, {
        kind: SpanKind.INTERNAL,
        attributes: {
          'rpc.service': service.typeName,
          'rpc.method': method.name,
          'tally.rpc.transport': 'in-process',
        },
      });
      const left = new AbortController();
      const signal = callOptions?.signal ? AbortSignal.any([callOptions.signal, left.signal]) : left.signal;
      let code: Code = Code.OK;
      try {
        if (!options.accepting()) throw shuttingDown();
        const metadata = new grpc.Metadata();
        for (const [k, v] of Object.entries(callOptions?.metadata ?? {})) metadata.set(k, v);
        const principal = await options.access?.authorizeCall(
          method,
          (name) => callOptions?.metadata?.[name],
        );
        const answers = (
          impl as Record<string, unknown> as Record<
            string,
            (request: unknown, context: StreamCallContext) => AsyncIterable<MessageInitShape<DescMessage>>
          >
        )[method.localName]!(request, {
          metadata,
          peer: IN_PROCESS_PEER,
          principal,
          signal,
          draining: options.draining ?? new AbortController().signal,
        });
        for await (const answer of answers) {
          if (signal.aborted) break;
          yield create(method.output, answer);
        }
      } catch (error) {
        const appError = toAppError(error);
        code = appError.code;
        if (code === Code.INTERNAL || code === Code.UNKNOWN)
          options.logger.error('rpc failed', { method: method.name, error });
        throw appError;
      } finally {
        left.abort();
        if (callOptions?.signal?.aborted && code === Code.OK) code = Code.CANCELLED;
        count(code);
        duration?.observe(secondsSince(startMs));
        if (span) {
          span.setAttribute('rpc.grpc.status_code', code);
          if (SERVER_FAULTS.has(code)) failSpan(span, codeName(code));
          span.end();
        }
      }
    };
    if (method.methodKind === 'unary') {
      out[method.localName] = (request: MessageInitShape<DescMessage>, callOptions?: CallOptions) =>
        call(create(method.input, request), callOptions);
    } else if (method.methodKind === 'server_streaming') {
      out[method.localName] = (request: MessageInitShape<DescMessage>, callOptions?: StreamCallOptions) =>
        stream(create(method.input, request), callOptions);
    } else if (method.methodKind === 'client_streaming') {
      out[method.localName] = (
        requests: AsyncIterable<MessageInitShape<DescMessage>> | Iterable<MessageInitShape<DescMessage>>,
        callOptions?: CallOptions,
      ) => call(created(method.input, requests), callOptions);
    }
  }
  return out as ServiceClient<T>;
}

async function* created(
  schema: DescMessage,
  requests: AsyncIterable<MessageInitShape<DescMessage>> | Iterable<MessageInitShape<DescMessage>>,
) {
  for await (const request of requests) yield create(schema, request);
}
