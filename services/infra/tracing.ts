/**
 * OpenTelemetry tracing (docs/tracing.md). Off unless the standard OTEL_*
 * variables ask for traces (see {@link tracingRequested}); then main.ts starts
 * the Node SDK once per process and hands its tracer to the components through
 * their deps. A component given no tracer does no tracing work at all: no
 * spans, no context look-ups, no record headers.
 */
import {
  type Attributes,
  type Context,
  context,
  DiagLogLevel,
  diag,
  isSpanContextValid,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanStatusCode,
  type TextMapGetter,
  TraceFlags,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { AppError, codeName } from './app-error.ts';
import type { Logger } from './logger.ts';

export type { Context, Span, Tracer };

type Env = Readonly<Record<string, string | undefined>>;

const value = (env: Env, name: string): string | undefined => env[name]?.trim() || undefined;

/** The names listed in a comma-separated OTEL_* variable. */
const list = (env: Env, name: string): string[] =>
  (value(env, name) ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

/**
 * Whether `env` asks for traces: `OTEL_TRACES_EXPORTER` names an exporter
 * (`otlp`, `console`, `zipkin`; a list starting with `none` is off), or it is
 * unset and an OTLP endpoint is given (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). `OTEL_SDK_DISABLED=true` turns it off.
 */
export function tracingRequested(env: Env = process.env): boolean {
  if (value(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return false;
  const exporters = list(env, 'OTEL_TRACES_EXPORTER');
  if (exporters.length > 0) return exporters[0] !== 'none'; // as the SDK reads it
  return (
    value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined ||
    value(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined
  );
}

/** True when `env` names the service itself (`OTEL_SERVICE_NAME`, or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`). */
export function serviceNamedByEnv(env: Env = process.env): boolean {
  return (
    value(env, 'OTEL_SERVICE_NAME') !== undefined ||
    list(env, 'OTEL_RESOURCE_ATTRIBUTES').some((pair) => pair.split('=')[0]!.trim() === 'service.name')
  );
}

/** A process's tracing: its tracer, or none when tracing is off. */
export interface Tracing {
  /** What instrumentation points use; undefined when tracing is off (they then do nothing). */
  readonly tracer: Tracer | undefined;
  /** Exports the spans still buffered and stops, waiting at most `timeoutMs` (default 5 s). */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Tracing off: no SDK, no tracer. */
export const TRACING_OFF: Tracing = Object.freeze({ tracer: undefined, shutdown: async () => {} });

export interface TracingOptions {
  /** `service.name` unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES gives one. */
  serviceName: string;
  /** Where the SDK's own warnings and errors go (an exporter that cannot reach its collector). */
  logger: Logger;
}

/**
 * Starts the OpenTelemetry Node SDK for traces only (no metrics, no logs: the
 * process serves Prometheus metrics and writes JSON logs) when the environment
 * asks for traces, else returns {@link TRACING_OFF} without even loading the
 * SDK (about 40 MB and 0.4 s). The SDK reads its settings from the OTEL_*
 * variables itself. Manual instrumentation only: nothing is patched. Call
 * once per process.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  const env = process.env;
  if (!tracingRequested(env)) return TRACING_OFF;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({
    serviceName: serviceNamedByEnv(env) ? undefined : options.serviceName,
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  // After the SDK's constructor, which installs a console logger when OTEL_LOG_LEVEL is set.
  diag.setLogger(diagLogger(options.logger.child({ component: 'opentelemetry' })), {
    logLevel: diagLevel(value(env, 'OTEL_LOG_LEVEL')),
    suppressOverrideMessage: true,
  });
  sdk.start();
  const tracer = trace.getTracer('tally');
  let stopping: Promise<void> | undefined;
  return {
    tracer,
    shutdown(timeoutMs = 5_000) {
      stopping ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        let late = false;
        const flushed = await Promise.race([
          sdk.shutdown().then(
            () => true,
            (error: unknown) => {
              if (!late) options.logger.warn('exporting the last spans failed', { error });
              return true;
            },
          ),
          new Promise<false>((resolve) => {
            timer = setTimeout(() => resolve(false), timeoutMs);
          }),
        ]);
        clearTimeout(timer);
        if (!flushed) {
          late = true;
          options.logger.warn('spans not exported before the shutdown deadline', { timeoutMs });
        }
        trace.disable();
        propagation.disable();
        context.disable();
        diag.disable();
      })();
      return stopping;
    },
  };
}

function diagLevel(name: string | undefined): DiagLogLevel {
  const level =
    name === undefined ? undefined : DiagLogLevel[name.toUpperCase() as keyof typeof DiagLogLevel];
  return level ?? DiagLogLevel.WARN;
}

function diagLogger(logger: Logger) {
  const fields = (args: unknown[]) =>
    args.length === 0
      ? undefined
      : { details: args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : a)) };
  return {
    error: (message: string, ...args: unknown[]) => logger.error(message, fields(args)),
    warn: (message: string, ...args: unknown[]) => logger.warn(message, fields(args)),
    info: (message: string, ...args: unknown[]) => logger.info(message, fields(args)),
    debug: (message: string, ...args: unknown[]) => logger.debug(message, fields(args)),
    verbose: (message: string, ...args: unknown[]) => logger.debug(message, fields(args)),
  };
}

/**
 * The trace context carried by `carrier` (request headers, gRPC metadata, a
 * record's headers) through the configured propagators, over the root
 * context. Baggage is dropped: Tally neither uses nor forwards it, so a
 * client's baggage never reaches the log.
 */
export function extractContext<C>(carrier: C, getter?: TextMapGetter<C>): Context {
  return propagation.deleteBaggage(propagation.extract(ROOT_CONTEXT, carrier, getter));
}

/**
 * The headers that carry `ctx`'s span to a log record (`traceparent`, and
 * `tracestate` when set, with the default propagators); undefined when there
 * is no span to carry. Baggage is never written.
 */
export function recordTraceHeaders(ctx: Context = context.active()): Record<string, string> | undefined {
  const headers: Record<string, string> = {};
  propagation.inject(propagation.deleteBaggage(ctx), headers);
  for (const _ in headers) return headers;
  return undefined;
}

const DEFAULT_LINK_LIMIT = 128;
let linkLimit: number | undefined;

/**
 * Links to a span's sources: each distinct sampled span context once, in the
 * order given, at most OTEL_SPAN_LINK_COUNT_LIMIT (default 128) of them, the
 * SDK's own limit, so that it never has to drop (and warn about) the rest.
 */
export class SpanLinks {
  readonly links: Link[] = [];
  /** Distinct sampled contexts left out past the limit. */
  dropped = 0;
  readonly #seen = new Set<string>();
  readonly #limit: number;

  constructor() {
    linkLimit ??= Number(value(process.env, 'OTEL_SPAN_LINK_COUNT_LIMIT') ?? DEFAULT_LINK_LIMIT);
    this.#limit = Number.isInteger(linkLimit) && linkLimit >= 0 ? linkLimit : DEFAULT_LINK_LIMIT;
  }

  /** Adds a link to `spanContext` unless it is missing, invalid, not sampled or already there. */
  add(spanContext: SpanContext | undefined): void {
    if (!spanContext || (spanContext.traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (!isSpanContextValid(spanContext) || this.#seen.has(spanContext.spanId)) return;
    this.#seen.add(spanContext.spanId);
    if (this.links.length < this.#limit) this.links.push({ context: spanContext });
    else this.dropped++;
  }

  /** `tally.links.dropped` when some were left out. */
  attributes(): Attributes {
    return this.dropped > 0 ? { 'tally.links.dropped': this.dropped } : {};
  }
}

/**
 * A bounded name for what failed: the status code name of an AppError, else
 * the error's class name. Never the message, which may quote user data.
 */
export function errorType(error: unknown): string {
  if (error instanceof AppError) return codeName(error.code);
  if (error instanceof Error) return error.name || 'Error';
  return typeof error;
}

/** Marks `span` failed with `type` (attribute `error.type` and the status message). */
export function failSpan(span: Span, type: string): void {
  span.setAttribute('error.type', type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/** Runs `fn` as `span`'s child work (in its context) and ends the span, failed when `fn` throws. */
export async function inSpan<T>(span: Span, parent: Context, fn: () => Promise<T>): Promise<T> {
  try {
    return await context.with(trace.setSpan(parent, span), fn);
  } catch (error) {
    failSpan(span, errorType(error));
    throw error;
  } finally {
    span.end();
  }
}
