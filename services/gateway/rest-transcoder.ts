/**
 * REST to gRPC for the /v1 routes, generated from the proto's google.api.http rules: a request's
 * JSON body, query parameters and path variables become the method's protobuf request
 * (the protobuf JSON mapping, unknown fields refused), the call goes to ingest or query, and its
 * answer goes back as JSON with every field, defaults included. A `Publish` of one event goes
 * through the request's `publish` (the shared `PublishCoalescer`) instead of a call of its own.
 */
import { type DescMethod, fromJson, type JsonValue, ScalarType, toJson } from '@bufbuild/protobuf';
import { AlertService } from '../gen/tally/v1/alerts_pb.js';
import { DestinationService } from '../gen/tally/v1/destinations_pb.js';
import { EntityService, ProjectionService } from '../gen/tally/v1/entities_pb.js';
import { EventLogService } from '../gen/tally/v1/event_log_pb.js';
import type { PublishRequest } from '../gen/tally/v1/ingest_pb.js';
import { IngestService } from '../gen/tally/v1/ingest_pb.js';
import { KeysService } from '../gen/tally/v1/keys_pb.js';
import { NotificationService } from '../gen/tally/v1/notifications_pb.js';
import { QueryService } from '../gen/tally/v1/query_pb.js';
import { AppError, Code } from '../infra/app-error.ts';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import type { HttpRoute } from '../infra/http/http-rules.ts';
import { sendJson } from '../infra/http/http-server.ts';
import type { RequestContext } from './request-context.ts';

/** The services whose http rules the gateway serves (scripts/openapi.test.ts checks the document lists each route). */
export const REST_SERVICES = [
  IngestService,
  QueryService,
  KeysService,
  AlertService,
  NotificationService,
  DestinationService,
  EventLogService,
  ProjectionService,
  EntityService,
] as const;

/**
 * A route that answers in its own way (HAL and caching headers, say) rather than as the method's
 * JSON: it gets the decoded request, and the request's query keys by field name (`page_token` →
 * `pageToken` when the client wrote that), to name fields as the client did.
 */
export type DedicatedRoute = (
  request: unknown,
  ctx: RequestContext,
  url: URL,
  keys: ReadonlyMap<string, string>,
) => Promise<void>;

/** Where the transcoded requests go. */
export interface RestTranscoderOptions {
  ingest: ServiceClient<(typeof IngestService)['method']>;
  query: ServiceClient<(typeof QueryService)['method']>;
  /** Absent: the key routes answer UNIMPLEMENTED. */
  keys?: ServiceClient<(typeof KeysService)['method']>;
  /** Absent: the alert rule routes answer UNIMPLEMENTED. */
  alerts?: ServiceClient<(typeof AlertService)['method']>;
  /** Absent: the notification routes answer UNIMPLEMENTED. */
  notifications?: ServiceClient<(typeof NotificationService)['method']>;
  /** Absent: the destination routes answer UNIMPLEMENTED. */
  destinations?: ServiceClient<(typeof DestinationService)['method']>;
  /** Absent: the projection routes answer UNIMPLEMENTED. */
  projections?: ServiceClient<(typeof ProjectionService)['method']>;
  /** Absent: the entity routes answer UNIMPLEMENTED. */
  entities?: ServiceClient<(typeof EntityService)['method']>;
  /** Each call's deadline. */
  requestTimeoutMs: number;
  /** Methods whose routes answer in their own way. */
  dedicated?: ReadonlyMap<DescMethod, DedicatedRoute>;
}

/**
 * Serves a request that matched `route` (`match` is its path's match): answers 200 with the
 * method's answer as JSON, or throws an AppError (INVALID_ARGUMENT naming the field for a request
 * that does not decode, UNIMPLEMENTED for a method of neither service, the call's own error);
 * the caller sends it.
 */
export type RestHandler = (
  route: HttpRoute,
  match: RegExpExecArray,
  ctx: RequestContext,
  url: URL,
) => Promise<void>;

/** The handler of the /v1 routes, calling `options.ingest` and `options.query`. */
export function createRestTranscoder(options: RestTranscoderOptions): RestHandler {
  const clients: Record<string, Record<string, (request: unknown, options?: unknown) => Promise<unknown>>> = {
    [IngestService.typeName]: options.ingest as never,
    [QueryService.typeName]: options.query as never,
    [KeysService.typeName]: options.keys as never,
    [AlertService.typeName]: options.alerts as never,
    [NotificationService.typeName]: options.notifications as never,
    [DestinationService.typeName]: options.destinations as never,
    [ProjectionService.typeName]: options.projections as never,
    [EntityService.typeName]: options.entities as never,
  };
  const publishMethod = IngestService.method.publish;
  return async (route, match, ctx, url) => {
    const request = decodeRequest(route, match, await requestJson(route, ctx, url));
    const dedicated = options.dedicated?.get(route.method);
    if (dedicated) return dedicated(request, ctx, url, queryKeys(route, url));
    if (route.method === publishMethod && (request as PublishRequest).event) {
      const id = await ctx.publish((request as PublishRequest).event);
      return sendJson(ctx.response, 200, { id });
    }
    const call = clients[route.service.typeName]?.[route.method.localName];
    if (!call) throw new AppError(Code.UNIMPLEMENTED, `${route.method.name} is not served here`);
    const result = await call(request, {
      metadata: { ...ctx.callMetadata(), 'x-forwarded-for': ctx.clientIp },
      timeoutMs: options.requestTimeoutMs,
    });
    sendJson(ctx.response, 200, toJson(route.method.output, result as never, { alwaysEmitImplicit: true }));
  };
}

/**
 * The request's JSON before its path variables: the body's fields (`body: "*"`), or the body as
 * the rule's one field (none for `body: ""`) plus the query parameters (a repeated field may be
 * given more than once, any other only once).
 */
async function requestJson(
  route: HttpRoute,
  ctx: RequestContext,
  url: URL,
): Promise<Record<string, JsonValue>> {
  const json: Record<string, JsonValue> = {};
  // Ingest routes take a key in the body too, for navigator.sendBeacon (which sets no headers).
  const body = route.body === '' ? undefined : await ctx.json();
  if (route.service.typeName === IngestService.typeName) ctx.takeBodyKey(body);
  if (route.body === '*') {
    if (!isObject(body)) throw AppError.invalidField('body', 'must be a JSON object');
    Object.assign(json, body);
    return json;
  }
  if (route.body !== '') json[route.body] = body as JsonValue;
  for (const key of new Set(url.searchParams.keys())) {
    const values = url.searchParams.getAll(key);
    const field = route.method.input.fields.find((f) => f.name === key || f.jsonName === key);
    if (field?.fieldKind === 'list') json[key] = values;
    else if (values.length > 1) throw AppError.invalidField(key, 'is given more than once');
    else json[key] = values[0] ?? '';
    // A query string holds text: `?estimate=true` is the boolean (JSON would need `true`).
    if (
      field?.fieldKind === 'scalar' &&
      field.scalar === ScalarType.BOOL &&
      /^(true|false)$/.test(values[0] ?? '')
    )
      json[key] = values[0] === 'true';
    // protobuf-es's error for an enum name it does not know names the enum, not the field.
    if (field?.fieldKind === 'enum' && !field.enum.values.some((v) => v.name === json[key]))
      throw AppError.invalidField(
        field.name,
        `must be one of ${field.enum.values.map((v) => v.name).join(', ')}`,
      );
  }
  return json;
}

/** The query keys of `url` by the name of the request field each sets. */
function queryKeys(route: HttpRoute, url: URL): Map<string, string> {
  const keys = new Map<string, string>();
  for (const key of url.searchParams.keys()) {
    const field = route.method.input.fields.find((f) => f.name === key || f.jsonName === key);
    if (field) keys.set(field.name, key);
  }
  return keys;
}

/** `json` with the path variables of `match` set (over any field of the same name), as the method's request. */
function decodeRequest(route: HttpRoute, match: RegExpExecArray, json: Record<string, JsonValue>): unknown {
  route.pathFields.forEach((field, i) => {
    const text = match[i + 1] ?? '';
    try {
      json[field] = decodeURIComponent(text);
    } catch {
      throw AppError.invalidField(
        field,
        `is not valid percent-encoding: ${JSON.stringify(text.slice(0, 100))}`,
      );
    }
  });
  try {
    return fromJson(route.method.input, json, { ignoreUnknownFields: false });
  } catch (error) {
    throw jsonError(error, route.body, culprit(route, json));
  }
}

/**
 * The first top-level field of `json` that does not decode alone: protobuf-es's message for a
 * well-known type (a Timestamp's `invalid RFC 3339 string`) does not say which field it was.
 */
function culprit(route: HttpRoute, json: Record<string, JsonValue>): string | undefined {
  return Object.keys(json).find((key) => {
    try {
      fromJson(route.method.input, { [key]: json[key]! }, { ignoreUnknownFields: false });
      return false;
    } catch {
      return true;
    }
  });
}

function isObject(value: unknown): value is Record<string, JsonValue> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** protobuf-es JSON errors → INVALID_ARGUMENT naming the field where the message allows it. */
function jsonError(error: unknown, bodyField: string, culprit?: string): AppError {
  const message = error instanceof Error ? error.message : String(error);
  const unknownKey = /key "([^"]+)" is unknown/.exec(message);
  const badField = /cannot decode field [\w.]*\.(\w+) from JSON/.exec(message);
  const field = unknownKey?.[1] ?? badField?.[1] ?? (bodyField === '' ? culprit : undefined);
  const prefix = bodyField !== '' && bodyField !== '*' ? `${bodyField}.` : '';
  const detail = message.replace(/^cannot decode (message|field) [\w.]+ from JSON: /, '');
  return field
    ? AppError.invalidField(prefix + field, unknownKey ? 'is not a known field' : detail)
    : AppError.invalidField('body', detail);
}
