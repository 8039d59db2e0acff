/**
 * gRPC with protobuf-es messages on @grpc/grpc-js: service definitions built
 * from the generated descriptors (no proto-loader, no protobufjs).
 * Requests are decoded inside the handler so that a malformed message is
 * INVALID_ARGUMENT, not the INTERNAL grpc-js would answer for a failing deserializer.
 */

import { once } from 'node:events';
import {
  create,
  type DescMessage,
  type DescMethod,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import * as grpc from '@grpc/grpc-js';
import {
  type Attributes,
  context,
  propagation,
  type Span,
  SpanKind,
  type TextMapGetter,
  type TextMapSetter,
  trace,
} from '@opentelemetry/api';
import type { Principal } from '../../domain/api-keys.ts';
import { AppError, Code, codeName, shuttingDown, toAppError } from '../app-error.ts';
import type { AccessControl } from '../auth/access-control.ts';
import { decodeStatus, encodeStatus, STATUS_DETAILS_KEY } from '../error-details.ts';
import type { Logger } from '../logger.ts';
import { type GrpcMetrics, secondsSince } from '../metrics.ts';
import { extractContext, failSpan, type Tracer } from '../tracing.ts';

/** What a handler knows of its call. */
export interface CallContext {
  metadata: grpc.Metadata;
  /** `ip:port` of the caller. */
  peer: string;
  /**
   * Who the call acts as, once access control let it in (absent on a server without access
   * control, as in handler tests).
   */
  principal?: Principal;
  /** Aborted when the call is cancelled (by the caller, or its deadline); absent where unknown. */
  signal?: AbortSignal;
  /** Aborted when the server starts draining: a unary call that waits (a long-poll) answers now. */
  draining?: AbortSignal;
}

/** What a streaming handler knows of its call: also when the caller goes away, and when the server drains. */
export interface StreamCallContext extends CallContext {
  /** Aborted when the call is cancelled (by the caller, or its deadline): stop producing. */
  signal: AbortSignal;
  /**
   * Aborted when the server starts draining: a long-lived stream stops (a bidirectional one stops
   * reading and answers what it read) and ends (the server waits for calls in flight, up to its
   * drain timeout).
   */
  draining: AbortSignal;
}

/** What a bidirectional handler knows of its call. */
export type BidiCallContext = StreamCallContext;

type MethodImpl<M> = M extends { methodKind: 'unary'; input: infer I; output: infer O }
  ? I extends DescMessage
    ? O extends DescMessage
      ? (request: MessageShape<I>, context: CallContext) => Promise<MessageInitShape<O>>
      : never
    : never
  : M extends { methodKind: 'client_streaming'; input: infer I; output: infer O }
    ? I extends DescMessage
      ? O extends DescMessage
        ? (requests: AsyncIterable<MessageShape<I>>, context: CallContext) => Promise<MessageInitShape<O>>
        : never
      : never
    : M extends { methodKind: 'server_streaming'; input: infer I; output: infer O }
      ? I extends DescMessage
        ? O extends DescMessage
          ? (request: MessageShape<I>, context: StreamCallContext) => AsyncIterable<MessageInitShape<O>>
          : never
        : never
      : M extends { methodKind: 'bidi_streaming'; input: infer I; output: infer O }
        ? I extends DescMessage
          ? O extends DescMessage
            ? (
                requests: AsyncIterable<MessageShape<I>>,
                context: BidiCallContext,
              ) => AsyncIterable<MessageInitShape<O>>
            : never
          : never
        : never;

/**
 * One function per method of the service: an async function for a unary or client-streaming
 * method, an async iterable of the answers for a server-streaming or bidirectional one (the call
 * ends OK when it ends, with the error's status when it throws).
 */
export type ServiceImpl<T extends GenServiceMethods> = { [K in keyof T]: MethodImpl<T[K]> };

const identity = (b: Buffer): Buffer => b;

/**
 * The grpc-js definition and handlers for `service` served by `impl`; each call is counted and timed
 * in `metrics` when given, and runs in a SERVER span continuing the caller's `traceparent` with `tracer`
 * (a server stream: from its request to its end). While `accepting()` is false, new calls get UNAVAILABLE;
 * `draining`, once aborted, tells streaming calls in flight to end.
 */
export function grpcService<T extends GenServiceMethods>(
  service: GenService<T>,
  impl: ServiceImpl<T>,
  options: {
    logger: Logger;
    accepting: () => boolean;
    draining?: AbortSignal;
    metrics?: GrpcMetrics;
    tracer?: Tracer;
    /** Checks every call's credential and scope before its request is decoded (access-control.ts). */
    access?: AccessControl;
  },
): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
  const definition: Record<string, grpc.MethodDefinition<Buffer, unknown>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const fn = (impl as Record<string, unknown>)[method.localName] as (
      request: unknown,
      context: CallContext,
    ) => Promise<MessageInitShape<DescMessage>>;
    const clientStreaming = method.methodKind === 'client_streaming';
    const serverStreaming = method.methodKind === 'server_streaming';
    const bidi = method.methodKind === 'bidi_streaming';
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: clientStreaming || bidi,
      responseStream: serverStreaming || bidi,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: (m: unknown) => Buffer.from(toBinary(method.output, m as MessageShape<DescMessage>)),
      responseDeserialize: identity,
    };
    const labels = { service: service.typeName, method: method.name };
    const duration = options.metrics?.duration.labels(labels);
    const count = (code: Code) => options.metrics?.requests.inc({ ...labels, code: codeName(code) });
    const spanName = `${service.typeName}/${method.name}`;
    const spanAttributes = rpcAttributes(service.typeName, method.name);
    /** The call's context, with its principal once access control let it in. */
    const admit = async (
      call: grpc.ServerUnaryCall<Buffer, unknown> | grpc.ServerReadableStream<Buffer, unknown> | ServerWriter,
    ): Promise<CallContext> => {
      const context = contextOf(call);
      if (options.access)
        context.principal = await options.access.authorizeCall(method, metadataLookup(call.metadata));
      return context;
    };
    /** Runs `work` as the call, then answers through `settle`: OK with its value, else its error's status. */
    const respond = <R>(
      metadata: grpc.Metadata,
      settle: (status: Partial<grpc.StatusObject> | null, value?: R) => Code,
      work: () => Promise<R>,
    ): void => {
      const startMs = performance.now();
      let span: Span | undefined;
      let run = work;
      if (options.tracer) {
        const parent = extractContext(metadata, metadataGetter);
        const started = options.tracer.startSpan(
          spanName,
          { kind: SpanKind.SERVER, attributes: spanAttributes },
          parent,
        );
        span = started;
        run = () => context.with(trace.setSpan(parent, started), work);
      }
      run().then(
        (value) => {
          const code = settle(null, value);
          duration?.observe(secondsSince(startMs));
          count(code);
          if (span) endRpcSpan(span, code, SERVER_FAULTS);
        },
        (error: unknown) => {
          const code = settle(toServiceError(error, method, options.logger));
          duration?.observe(secondsSince(startMs));
          count(code);
          if (span) endRpcSpan(span, code, SERVER_FAULTS);
        },
      );
    };
    const unaryAnswer =
      (callback: grpc.sendUnaryData<unknown>) =>
      (status: Partial<grpc.StatusObject> | null, init?: MessageInitShape<DescMessage>): Code => {
        if (status) {
          callback(status);
          return status.code as number as Code;
        }
        callback(null, create(method.output, init!));
        return Code.OK;
      };
    if (serverStreaming) {
      const stream = impl as Record<string, unknown> as Record<
        string,
        (request: unknown, context: StreamCallContext) => AsyncIterable<MessageInitShape<DescMessage>>
      >;
      const draining = options.draining ?? new AbortController().signal;
      handlers[method.name] = (call: grpc.ServerWritableStream<Buffer, unknown>) => {
        const cancelled = new AbortController();
        call.on('cancelled', () => cancelled.abort());
        respond(call.metadata, streamEnd(call, cancelled.signal), async () => {
          refuseWhenDraining(options.accepting);
          const admitted = await admit(call);
          const request = decode(method.input, call.request, '');
          const answers = stream[method.localName]!(request, {
            ...admitted,
            signal: cancelled.signal,
            draining,
          });
          for await (const init of answers) {
            if (cancelled.signal.aborted) break;
            if (!call.write(create(method.output, init))) await drained(call, cancelled.signal);
          }
        });
      };
      continue;
    }
    if (bidi) {
      const duplex = impl as Record<string, unknown> as Record<
        string,
        (
          requests: AsyncIterable<unknown>,
          context: BidiCallContext,
        ) => AsyncIterable<MessageInitShape<DescMessage>>
      >;
      const draining = options.draining ?? new AbortController().signal;
      handlers[method.name] = (call: grpc.ServerDuplexStream<Buffer, unknown>) => {
        const cancelled = new AbortController();
        call.on('cancelled', () => cancelled.abort());
        respond(call.metadata, streamEnd(call, cancelled.signal), async () => {
          refuseWhenDraining(options.accepting);
          const admitted = await admit(call);
          // A handler that stops reading still answers and ends with its status: neither leaving its
          // loop nor a read it left pending may destroy the call.
          const requests = decodeStream(requestsOf(call), method.input);
          const answers = duplex[method.localName]!(requests, {
            ...admitted,
            signal: cancelled.signal,
            draining,
          });
          for await (const init of answers) {
            if (cancelled.signal.aborted) break;
            if (!call.write(create(method.output, init))) await drained(call, cancelled.signal);
          }
        });
      };
      continue;
    }
    if (method.methodKind !== 'unary' && !clientStreaming)
      throw new Error(`unsupported method kind: ${method.name}`);
    const unaryDraining = options.draining ?? new AbortController().signal;
    handlers[method.name] = clientStreaming
      ? (call: grpc.ServerReadableStream<Buffer, unknown>, callback: grpc.sendUnaryData<unknown>) =>
          respond(call.metadata, unaryAnswer(callback), async () => {
            refuseWhenDraining(options.accepting);
            const admitted = await admit(call);
            return fn(decodeStream(call, method.input), admitted);
          })
      : (call: grpc.ServerUnaryCall<Buffer, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          // grpc-js emits 'cancelled' once the status is sent, on every call: only a cancellation
          // before the answer aborts (an abort makes a DOMException, with its stack, per call).
          const cancelled = new AbortController();
          let answered = false;
          call.on('cancelled', () => {
            if (!answered) cancelled.abort();
          });
          const answer = unaryAnswer(callback);
          respond(
            call.metadata,
            (status, init) => {
              answered = true;
              return answer(status, init);
            },
            async () => {
              refuseWhenDraining(options.accepting);
              const admitted = await admit(call);
              return fn(decode(method.input, call.request, ''), {
                ...admitted,
                signal: cancelled.signal,
                draining: unaryDraining,
              });
            },
          );
        };
  }
  return { definition, handlers };
}

/** Ends a server stream with the status of its handler; a cancelled call has nobody to answer. */
type ServerWriter = grpc.ServerWritableStream<Buffer, unknown> | grpc.ServerDuplexStream<Buffer, unknown>;

function streamEnd(call: ServerWriter, cancelled: AbortSignal) {
  return (status: Partial<grpc.StatusObject> | null): Code => {
    if (cancelled.aborted) return Code.CANCELLED;
    if (status) {
      call.emit('error', status); // grpc-js's way to end a server stream with a status
      return status.code as number as Code;
    }
    call.end();
    return Code.OK;
  };
}

/**
 * The request messages of a bidirectional call, until the client half-closes; throws CANCELLED when
 * the call ends first (grpc-js destroys it when cancelled).
 *
 * Not the call's own async iterator: it also watches the call for 'error', which is how
 * {@link streamEnd} sets the status, and on an error it destroys the call, `destroyOnReturn: false`
 * or not. A handler that stopped reading with a read pending (a draining stream whose client sends
 * nothing more) would have that read fail with its own status and the call destroyed, while grpc-js
 * sends the status only once the last answer's write completes, and a destroyed call sends nothing,
 * neither trailers nor RST_STREAM. Its client got the answers and no end until its keepalive ping
 * found the connection closed by the drain (UNAVAILABLE 'Connection dropped'), and the server waited
 * as long for that connection. This reader leaves the call's life to grpc-js.
 */
async function* requestsOf(call: grpc.ServerDuplexStream<Buffer, unknown>): AsyncGenerator<Buffer> {
  for (;;) {
    if (call.readableEnded) return;
    if (call.destroyed) throw new AppError(Code.CANCELLED, 'the call ended before its requests did');
    const request = call.read() as Buffer | null;
    if (request !== null) {
      yield request;
      continue;
    }
    // Woken by the next message, the client's half-close, or the call's end (never by an 'error').
    await new Promise<void>((resolve) => {
      const wake = () => {
        call.off('readable', wake);
        call.off('end', wake);
        call.off('close', wake);
        resolve();
      };
      call.on('readable', wake);
      call.on('end', wake);
      call.on('close', wake);
    });
  }
}

/** Resolves once `call` takes writes again, or at once when the call is cancelled. */
async function drained(call: ServerWriter, cancelled: AbortSignal): Promise<void> {
  try {
    await once(call, 'drain', { signal: cancelled });
  } catch (error) {
    if (!cancelled.aborted) throw error;
  }
}

/** gRPC metadata as a carrier of trace context (`traceparent`). */
const metadataGetter: TextMapGetter<grpc.Metadata> = {
  get(carrier, key) {
    const values = carrier.get(key);
    return values.length === 0 ? undefined : values.map((v) => (typeof v === 'string' ? v : v.toString()));
  },
  keys: (carrier) => Object.keys(carrier.getMap()),
};
const metadataSetter: TextMapSetter<grpc.Metadata> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

function rpcAttributes(service: string, method: string): Attributes {
  return { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method };
}

/** The codes that fail a server span: the server's faults, not the caller's (semantic conventions). */
export const SERVER_FAULTS: ReadonlySet<Code> = new Set([
  Code.UNKNOWN,
  Code.DEADLINE_EXCEEDED,
  Code.UNIMPLEMENTED,
  Code.INTERNAL,
  Code.UNAVAILABLE,
  Code.DATA_LOSS,
]);

/** Ends an RPC span with its status code; `failing` codes (all but OK when undefined) fail it. */
function endRpcSpan(span: Span, code: Code, failing?: ReadonlySet<Code>): void {
  span.setAttribute('rpc.grpc.status_code', code);
  if (code !== Code.OK && (failing === undefined || failing.has(code))) failSpan(span, codeName(code));
  span.end();
}

function refuseWhenDraining(accepting: () => boolean): void {
  if (!accepting()) throw shuttingDown();
}

function contextOf(
  call: grpc.ServerUnaryCall<Buffer, unknown> | grpc.ServerReadableStream<Buffer, unknown> | ServerWriter,
): CallContext {
  return { metadata: call.metadata, peer: call.getPeer() };
}

/** The first text value of each metadata key, as access control reads headers. */
export function metadataLookup(metadata: grpc.Metadata): (name: string) => string | undefined {
  return (name) => {
    const value = metadata.get(name)[0];
    return typeof value === 'string' ? value : undefined;
  };
}

function decode<D extends DescMessage>(schema: D, bytes: Buffer, where: string): MessageShape<D> {
  try {
    return fromBinary(schema, bytes);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new AppError(Code.INVALID_ARGUMENT, `malformed ${schema.typeName}${where}: ${reason}`);
  }
}

async function* decodeStream<D extends DescMessage>(
  call: AsyncIterable<Buffer>,
  schema: D,
): AsyncGenerator<MessageShape<D>> {
  let index = 0;
  for await (const chunk of call) {
    yield decode(schema, chunk, ` at stream message ${index}`);
    index++;
  }
}

function toServiceError(error: unknown, method: DescMethod, logger: Logger): Partial<grpc.StatusObject> {
  const appError = toAppError(error);
  if (appError.code === Code.INTERNAL || appError.code === Code.UNKNOWN) {
    logger.error('rpc failed', { method: method.name, error });
  } else if (appError.code === Code.UNAVAILABLE) {
    logger.warn('rpc unavailable', { method: method.name, error: appError.message, cause: appError.cause });
  }
  const metadata = new grpc.Metadata();
  // The standard form: a google.rpc.Status with BadRequest / RetryInfo / ErrorInfo details.
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(encodeStatus(appError)));
  const field = appError.field;
  if (field) {
    // Deprecated, kept for one release: the field at fault in private metadata (BadRequest says it).
    // Text metadata must be printable ASCII (grpc-js throws otherwise, which crashed the process on
    // a field naming a non-ASCII attribute key): such a field travels as UTF-8 in binary metadata.
    if (/^[\x20-\x7e]*$/.test(field)) metadata.set('tally-field', field);
    else metadata.set('tally-field-bin', Buffer.from(field, 'utf8'));
  }
  return { code: appError.code as number as grpc.status, details: appError.message, metadata };
}

/** A started gRPC server. */
export interface GrpcServer {
  readonly port: number;
  /** Refuses new calls (UNAVAILABLE), waits up to `timeoutMs` for calls in flight, then closes. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** How long a client's connection to a gRPC server lasts before the server asks it to reconnect. */
export const MAX_CONNECTION_AGE_MS = 5 * 60_000;

export interface GrpcServerOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  /** Default {@link MAX_CONNECTION_AGE_MS}. */
  maxConnectionAgeMs?: number;
  /** TLS (grpc-tls.ts); default plaintext. */
  credentials?: grpc.ServerCredentials | undefined;
}

/** Binds `services` on host:port (port 0 picks a free one). */
export async function startGrpcServer(
  services: readonly { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }[],
  options: GrpcServerOptions,
): Promise<GrpcServer> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes,
    'grpc.max_send_message_length': options.maxMessageBytes,
    // A connection older than this is asked to go away (GOAWAY; grpc-js adds ±10 % jitter): its
    // calls in flight, streams included, run to their end, and the client connects again after
    // resolving its target anew, which is how a round_robin client finds pods added since.
    'grpc.max_connection_age_ms': options.maxConnectionAgeMs ?? MAX_CONNECTION_AGE_MS,
    // No channelz service is served: its per-call and per-session bookkeeping is skipped.
    'grpc.enable_channelz': 0,
  });
  for (const s of services) server.addService(s.definition, s.handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${options.host}:${options.port}`,
      options.credentials ?? grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    ),
  );
  return {
    port,
    shutdown: (timeoutMs: number) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

type ClientMethod<M> = M extends { methodKind: 'unary'; input: infer I; output: infer O }
  ? I extends DescMessage
    ? O extends DescMessage
      ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
      : never
    : never
  : M extends { methodKind: 'client_streaming'; input: infer I; output: infer O }
    ? I extends DescMessage
      ? O extends DescMessage
        ? (
            requests: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
            options?: CallOptions,
          ) => Promise<MessageShape<O>>
        : never
      : never
    : M extends { methodKind: 'bidi_streaming'; input: infer I; output: infer O }
      ? I extends DescMessage
        ? O extends DescMessage
          ? (options?: CallOptions) => BidiCall<MessageInitShape<I>, MessageShape<O>>
          : never
        : never
      : M extends { methodKind: 'server_streaming'; input: infer I; output: infer O }
        ? I extends DescMessage
          ? O extends DescMessage
            ? (request: MessageInitShape<I>, options?: StreamCallOptions) => AsyncIterable<MessageShape<O>>
            : never
          : never
        : never;

/**
 * A bidirectional call: write requests, read the answers by iterating it. The iteration ends when
 * the server ends the call OK and throws an AppError with its status otherwise.
 */
export interface BidiCall<I, O> extends AsyncIterable<O> {
  /** Sends `request`; false when the call's buffer is full: wait for {@link drained} before the next. */
  write(request: I): boolean;
  /** Resolves when the call takes writes again (gRPC flow control), or when it ended. */
  drained(): Promise<void>;
  /** Ends the client's side: no more requests. */
  end(): void;
  cancel(): void;
}

/** A typed client: one async function per method, plus `close()`. */
export type ServiceClient<T extends GenServiceMethods> = { [K in keyof T]: ClientMethod<T[K]> } & {
  close(): void;
};

export interface CallOptions {
  metadata?: Record<string, string>;
  /** Per-call deadline. */
  timeoutMs?: number;
}

/**
 * A server stream's options: also a signal that cancels it. Its answers are read by iterating;
 * the iteration ends when the server ends the call OK (or `signal` aborts, or the loop leaves,
 * both cancelling the call) and throws an AppError with the status otherwise.
 */
export interface StreamCallOptions extends CallOptions {
  signal?: AbortSignal;
}

/**
 * Every client balances its calls over all the addresses its target resolves to (`round_robin`),
 * not only the first one (grpc-js's default, `pick_first`): a headless Service's name
 * (`dns:///tally-ingest-headless:50051`) or a list (`ipv4:10.0.0.1:50051,10.0.0.2:50051`) spreads the
 * calls over every server, and one address is the same as before. An address whose connection drops
 * leaves the rotation at once (its calls not yet sent go to the others) and a `dns:` name is resolved
 * again; the service config given here is the only one (none is looked up in DNS TXT records).
 */
const BALANCING_OPTIONS: grpc.ChannelOptions = {
  'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
  'grpc.service_config_disable_resolution': 1,
  // A dropped connection asks for the name again, at most this often (grpc-js's default, 30 s, lets a
  // rolling update replace every pod the client knows before it learns of the new ones).
  'grpc.dns_min_time_between_resolutions_ms': 5_000,
};

/**
 * Keepalive pings on every connection, idle ones too: a server that vanished without closing its
 * connections (a node powered off, a partition) answers none, and after `timeoutMs` the connection
 * is dropped, so round_robin stops sending it calls that would wait for their deadline.
 */
export const KEEPALIVE = { timeMs: 15_000, timeoutMs: 5_000 } as const;

/**
 * A client of `service` at `address`, plaintext unless `credentials` say TLS (grpc-tls.ts): `host:port`, or a gRPC target such as
 * `dns:///name:port` or `ipv4:host:port,host:port`, its calls balanced over every address
 * ({@link BALANCING_OPTIONS}). Errors arrive as AppError with the status code. With `tracer`, each
 * call is a CLIENT span, child of the active context, sent as `traceparent`.
 */
export function createGrpcClient<T extends GenServiceMethods>(
  service: GenService<T>,
  address: string,
  options: {
    maxMessageBytes?: number;
    defaultTimeoutMs?: number;
    tracer?: Tracer;
    keepalive?: { timeMs: number; timeoutMs: number };
    credentials?: grpc.ChannelCredentials | undefined;
  } = {},
): ServiceClient<T> {
  const keepalive = options.keepalive ?? KEEPALIVE;
  const client = new grpc.Client(address, options.credentials ?? grpc.credentials.createInsecure(), {
    ...BALANCING_OPTIONS,
    'grpc.keepalive_time_ms': keepalive.timeMs,
    'grpc.keepalive_timeout_ms': keepalive.timeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.enable_channelz': 0,
    'grpc.max_receive_message_length': options.maxMessageBytes ?? 4 * 1024 * 1024,
    'grpc.max_send_message_length': options.maxMessageBytes ?? 4 * 1024 * 1024,
  });
  const out: Record<string, unknown> = { close: () => client.close() };
  for (const method of service.methods) {
    const path = `/${service.typeName}/${method.name}`;
    const serialize = (init: MessageInitShape<DescMessage>) =>
      Buffer.from(toBinary(method.input, create(method.input, init)));
    const deserialize = (bytes: Buffer) => fromBinary(method.output, bytes);
    const spanName = `${service.typeName}/${method.name}`;
    const spanAttributes = rpcAttributes(service.typeName, method.name);
    const setup = (callOptions?: CallOptions) => {
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(callOptions?.metadata ?? {})) metadata.set(k, v);
      const timeoutMs = callOptions?.timeoutMs ?? options.defaultTimeoutMs;
      return { metadata, grpcOptions: timeoutMs ? { deadline: Date.now() + timeoutMs } : {} };
    };
    /** Runs the call in a CLIENT span whose context travels in `metadata`, when tracing. */
    const traced = (tracer: Tracer, metadata: grpc.Metadata, call: () => Promise<unknown>) => {
      const parent = context.active();
      const span = tracer.startSpan(spanName, { kind: SpanKind.CLIENT, attributes: spanAttributes }, parent);
      propagation.inject(trace.setSpan(parent, span), metadata, metadataSetter);
      return call().then(
        (value) => {
          endRpcSpan(span, Code.OK);
          return value;
        },
        (error: unknown) => {
          endRpcSpan(span, toAppError(error).code);
          throw error;
        },
      );
    };
    const settle =
      (resolve: (v: unknown) => void, reject: (e: unknown) => void) =>
      (error: grpc.ServiceError | null, value?: unknown) =>
        error ? reject(fromServiceError(error)) : resolve(value);
    if (method.methodKind === 'unary') {
      const unary = (
        request: MessageInitShape<DescMessage>,
        metadata: grpc.Metadata,
        grpcOptions: grpc.CallOptions,
      ) =>
        new Promise((resolve, reject) => {
          client.makeUnaryRequest(
            path,
            serialize,
            deserialize,
            request,
            metadata,
            grpcOptions,
            settle(resolve, reject),
          );
        });
      out[method.localName] = (request: MessageInitShape<DescMessage>, callOptions?: CallOptions) => {
        const { metadata, grpcOptions } = setup(callOptions);
        return options.tracer
          ? traced(options.tracer, metadata, () => unary(request, metadata, grpcOptions))
          : unary(request, metadata, grpcOptions);
      };
    } else if (method.methodKind === 'client_streaming') {
      const stream = (
        requests: AsyncIterable<MessageInitShape<DescMessage>> | Iterable<MessageInitShape<DescMessage>>,
        metadata: grpc.Metadata,
        grpcOptions: grpc.CallOptions,
      ) =>
        new Promise((resolve, reject) => {
          const call = client.makeClientStreamRequest(
            path,
            serialize,
            deserialize,
            metadata,
            grpcOptions,
            settle(resolve, reject),
          );
          (async () => {
            for await (const request of requests) {
              if (!call.write(request)) await new Promise((r) => call.once('drain', r));
            }
            call.end();
          })().catch((error: unknown) => {
            call.cancel();
            reject(error);
          });
        });
      out[method.localName] = (
        requests: AsyncIterable<MessageInitShape<DescMessage>> | Iterable<MessageInitShape<DescMessage>>,
        callOptions?: CallOptions,
      ) => {
        const { metadata, grpcOptions } = setup(callOptions);
        return options.tracer
          ? traced(options.tracer, metadata, () => stream(requests, metadata, grpcOptions))
          : stream(requests, metadata, grpcOptions);
      };
    } else if (method.methodKind === 'server_streaming') {
      out[method.localName] = (request: MessageInitShape<DescMessage>, callOptions?: StreamCallOptions) => {
        const { metadata, grpcOptions } = setup(callOptions);
        let span: Span | undefined;
        if (options.tracer) {
          const parent = context.active();
          span = options.tracer.startSpan(
            spanName,
            { kind: SpanKind.CLIENT, attributes: spanAttributes },
            parent,
          );
          propagation.inject(trace.setSpan(parent, span), metadata, metadataSetter);
        }
        return serverStream(
          () => client.makeServerStreamRequest(path, serialize, deserialize, request, metadata, grpcOptions),
          callOptions?.signal,
          (code) => span && endRpcSpan(span, code),
        );
      };
    } else if (method.methodKind === 'bidi_streaming') {
      out[method.localName] = (callOptions?: CallOptions) => {
        const { metadata, grpcOptions } = setup(callOptions);
        if (options.tracer) {
          // The call's context travels with it; its CLIENT span lasts until the answers end.
          const parent = context.active();
          const span = options.tracer.startSpan(
            spanName,
            { kind: SpanKind.CLIENT, attributes: spanAttributes },
            parent,
          );
          propagation.inject(trace.setSpan(parent, span), metadata, metadataSetter);
          return bidiCall(
            client.makeBidiStreamRequest(path, serialize, deserialize, metadata, grpcOptions),
            (code) => endRpcSpan(span, code),
          );
        }
        return bidiCall(client.makeBidiStreamRequest(path, serialize, deserialize, metadata, grpcOptions));
      };
    }
  }
  return out as ServiceClient<T>;
}

/** The answers of a server stream as an async iterable; leaving the loop or `signal` cancels the call. */
async function* serverStream<O>(
  open: () => grpc.ClientReadableStream<O>,
  signal: AbortSignal | undefined,
  ended: (code: Code) => void,
): AsyncGenerator<O> {
  if (signal?.aborted) return;
  const call = open();
  const cancel = () => call.cancel();
  signal?.addEventListener('abort', cancel);
  let code: Code = Code.CANCELLED;
  try {
    for await (const answer of call) yield answer as O;
    code = Code.OK;
  } catch (error) {
    if (signal?.aborted) return; // cancelled by its caller: the end it asked for
    const appError = isServiceError(error) ? fromServiceError(error) : toAppError(error);
    code = appError.code;
    throw appError;
  } finally {
    signal?.removeEventListener('abort', cancel);
    if (code === Code.CANCELLED) call.cancel();
    ended(code);
  }
}

function bidiCall<I, O>(call: grpc.ClientDuplexStream<I, O>, ended?: (code: Code) => void): BidiCall<I, O> {
  let closed = false;
  const settle = (code: Code) => {
    if (closed) return;
    closed = true;
    ended?.(code);
  };
  // Answers arrive whether or not anyone iterates yet: none is lost before the first `for await`.
  const answers = (async function* () {
    try {
      for await (const answer of call) yield answer as O;
      settle(Code.OK);
    } catch (error) {
      const appError = isServiceError(error) ? fromServiceError(error) : toAppError(error);
      settle(appError.code);
      throw appError;
    }
  })();
  return {
    write: (request) => call.write(request),
    drained: () =>
      new Promise<void>((resolve) => {
        if (call.writableNeedDrain === false || call.destroyed) return resolve();
        const done = () => {
          call.off('drain', done);
          call.off('close', done);
          resolve();
        };
        call.on('drain', done);
        call.on('close', done);
      }),
    end: () => call.end(),
    cancel: () => call.cancel(),
    [Symbol.asyncIterator]: () => answers,
  };
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return (
    error instanceof Error &&
    typeof (error as Partial<grpc.ServiceError>).code === 'number' &&
    'metadata' in error
  );
}

/**
 * A failed call as an AppError: from its google.rpc.Status details when the server sent them
 * (fields at fault, retry delay, reason and metadata), else from its code and the deprecated
 * `tally-field` metadata.
 */
function fromServiceError(error: grpc.ServiceError): AppError {
  const fallback = {
    code: error.code as number as Code,
    message: error.details || error.message,
    cause: error,
  };
  const status = error.metadata?.get(STATUS_DETAILS_KEY)[0];
  const decoded = Buffer.isBuffer(status) ? decodeStatus(status, fallback) : undefined;
  if (decoded) return decoded;
  const field = error.metadata?.get('tally-field')[0] ?? error.metadata?.get('tally-field-bin')[0];
  const name =
    typeof field === 'string' ? field : Buffer.isBuffer(field) ? field.toString('utf8') : undefined;
  const prefix = `${name}: `;
  return new AppError(fallback.code, fallback.message, {
    cause: error,
    fieldViolations:
      name === undefined
        ? undefined
        : [
            {
              field: name,
              description: fallback.message.startsWith(prefix)
                ? fallback.message.slice(prefix.length)
                : fallback.message,
            },
          ],
  });
}
