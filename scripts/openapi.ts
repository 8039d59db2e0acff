/**
 * Builds the OpenAPI 3.1 document of the gateway's REST API from proto
 * descriptors (with their comments) and the gateway's own tables: the /v1 routes
 * from `httpRoutes` — the function the gateway routes with, so path, query and
 * body bindings are the ones served — and the hand-written routes from
 * services/gateway/route-docs.ts. Schemas follow the protobuf JSON mapping as
 * protobuf-es applies it (64-bit integers as strings, Timestamps as RFC 3339,
 * enums by name, lowerCamelCase names). Run by buf as a plugin
 * (scripts/protoc-gen-openapi.ts) at `npm run generate`.
 */
import {
  type DescEnum,
  type DescEnumValue,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  type FileRegistry,
  ScalarType,
} from '@bufbuild/protobuf';
import { FeatureSet_FieldPresence } from '@bufbuild/protobuf/wkt';
import {
  EDGE_ROUTES,
  type JsonSchema,
  LEGACY_ROUTES,
  type RouteDoc,
  SEED_TAG,
  STREAM_PATH,
} from '../services/gateway/route-docs.ts';
import { type HttpRoute, httpRoutes } from '../services/infra/http/http-rules.ts';

/** The gRPC code names an error's `status` may hold, and the two HTTP-only ones the gateway uses. */
const STATUS_NAMES = [
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
  'METHOD_NOT_ALLOWED',
  'UPGRADE_REQUIRED',
];

/** What each error status means, as the gateway answers it. */
const ERROR_RESPONSES: Record<
  number,
  { name: string; description: string; retryAfter?: 'always' | 'maybe' }
> = {
  400: {
    name: 'BadRequest',
    description: 'Invalid input (`INVALID_ARGUMENT`): `field` names the field at fault.',
  },
  404: { name: 'NotFound', description: 'Not found (`NOT_FOUND`).' },
  413: {
    name: 'PayloadTooLarge',
    description: 'The body is over the limit (`RESOURCE_EXHAUSTED`, `field` is `body`).',
  },
  429: {
    name: 'TooManyRequests',
    description: 'A limit was reached (`RESOURCE_EXHAUSTED`); `Retry-After` when the wait is known.',
    retryAfter: 'maybe',
  },
  500: {
    name: 'Internal',
    description: 'An unexpected failure (`INTERNAL`, `UNKNOWN`); the cause is logged.',
  },
  503: {
    name: 'Unavailable',
    description: 'Unavailable (`UNAVAILABLE`): a backend did not answer in time, or the gateway is draining.',
    retryAfter: 'always',
  },
  504: {
    name: 'DeadlineExceeded',
    description: 'The request timed out (`DEADLINE_EXCEEDED`); nothing was written.',
  },
};

/** Statuses every /v1 operation may answer besides its own. */
const RULE_ERRORS = [400, 429, 500, 503, 504];

export type OpenApiDocument = Record<string, unknown>;

/** The document for every service with http rules in `registry`; `openApiJson` renders it. */
export function openApiDocument(registry: FileRegistry): OpenApiDocument {
  const services: DescService[] = [];
  for (const file of registry.files) services.push(...file.services);
  const routes = httpRoutes(services);
  const schemas = new SchemaBuilder(routes);

  const paths: Record<string, Record<string, unknown>> = {};
  const add = (path: string, verb: string, operation: unknown) => {
    paths[path] ??= {};
    const item = paths[path];
    const key = verb.toLowerCase();
    if (item[key]) throw new Error(`${verb} ${path} is bound twice`);
    item[key] = operation;
  };
  for (const route of routes) add(openApiPath(route.template), route.verb, ruleOperation(route, schemas));
  for (const route of Object.values(LEGACY_ROUTES)) add(route.path, route.verb, docOperation(route));
  for (const route of EDGE_ROUTES) add(route.path, route.verb, docOperation(route));

  const tags = [...new Set(routes.map((r) => r.service))].map((service) => ({
    name: service.name,
    description: `${comments(service) ?? ''}\n\ngRPC: \`${service.typeName}\`.`.trim(),
  }));
  tags.push(
    { name: SEED_TAG, description: 'The seed event counter’s routes, kept in their original shapes.' },
    { name: 'Stream', description: `The WebSocket \`${STREAM_PATH}\` (docs/stream.md).` },
    { name: 'Operations', description: 'Probes, metrics and this document.' },
  );

  return {
    openapi: '3.1.0',
    info: {
      title: 'Tally',
      version: [...new Set(services.filter((s) => routes.some((r) => r.service === s)).map(packageOf))].join(
        ', ',
      ),
      description: [
        'Real-time event counting. The `/v1` routes are the gRPC methods of the services below, bound by',
        'their `google.api.http` rules; bodies and answers are the protobuf JSON mapping: 64-bit integers',
        'are strings, Timestamps RFC 3339 strings, Durations strings such as `"1.5s"`, enums their names.',
        'Requests may use the proto field names (`user_id`) as well as the JSON names (`userId`); an',
        'unknown field is refused. Answers carry every field, default values included, except unset',
        '`optional` and message fields.',
        '',
        'Every error is `{"error":{"code","status","message","field","details"}}` (schema `Error`). An',
        'unknown path answers 404, a known path with another method 405 with `Allow`.',
      ].join('\n'),
    },
    tags,
    paths,
    components: { schemas: { ...schemas.components(), ...errorSchemas() }, responses: errorResponses() },
  };
}

/** The document as committed: two-space JSON and a final newline. */
export function openApiJson(registry: FileRegistry): string {
  return `${JSON.stringify(openApiDocument(registry), null, 2)}\n`;
}

function packageOf(service: DescService): string {
  return service.file.proto.package;
}

/** `/v1/things/{name=shelves/*}` → `/v1/things/{name}`: OpenAPI names a variable, not its pattern. */
function openApiPath(template: string): string {
  return template.replace(/\{([^}=]+)(=[^}]*)?\}/g, '{$1}');
}

function ruleOperation(route: HttpRoute, schemas: SchemaBuilder): unknown {
  const { method } = route;
  const text = comments(method);
  const input = method.input;
  const parameters: unknown[] = route.pathFields.map((name) => ({
    name,
    in: 'path',
    required: true,
    description: comments(fieldByPath(input, name)) ?? `The request's \`${name}\`.`,
    schema: { type: 'string' },
  }));
  let requestBody: unknown;
  if (route.body === '*') {
    requestBody = {
      required: true,
      content: { 'application/json': { schema: schemas.bodyOf(input, route.pathFields) } },
    };
  } else {
    const bodyField = route.body === '' ? undefined : input.fields.find((f) => f.name === route.body);
    if (route.body !== '' && !bodyField)
      throw new Error(`${method.name}: no field ${route.body} for the body`);
    if (bodyField)
      requestBody = {
        required: true,
        description: comments(bodyField),
        content: { 'application/json': { schema: schemas.fieldSchema(bodyField) } },
      };
    // Fields bound neither by the path nor by the body are query parameters, as the gateway reads them.
    for (const field of input.fields) {
      if (field === bodyField || route.pathFields.includes(field.name)) continue;
      const schema = schemas.querySchema(field);
      if (!schema) continue;
      parameters.push({
        name: field.jsonName,
        in: 'query',
        description: comments(field),
        schema,
        ...(field.fieldKind === 'list' ? { style: 'form', explode: true } : {}),
      });
    }
  }
  const errors = [...RULE_ERRORS, ...(requestBody ? [413] : []), ...(route.pathFields.length ? [404] : [])];
  return clean({
    tags: [route.service.name],
    operationId: `${route.service.name}_${method.name}`,
    summary: summaryOf(text) ?? method.name,
    description: `${text ?? ''}\n\ngRPC: \`${route.service.typeName}/${method.name}\`.`.trim(),
    parameters: parameters.length > 0 ? parameters : undefined,
    requestBody,
    responses: {
      '200': {
        description: `\`${method.output.typeName}\`.`,
        content: { 'application/json': { schema: schemas.ref(method.output) } },
      },
      ...errorRefs(errors),
    },
  });
}

function docOperation(route: RouteDoc): unknown {
  const responses: Record<string, unknown> = {};
  for (const [status, response] of Object.entries(route.responses)) {
    responses[status] = clean({
      description: response.description,
      headers: response.headers
        ? Object.fromEntries(
            Object.entries(response.headers).map(([name, h]) => [
              name,
              clean({ description: h.description, schema: h.schema, required: h.required }),
            ]),
          )
        : undefined,
      content: response.content
        ? Object.fromEntries(Object.entries(response.content).map(([type, schema]) => [type, { schema }]))
        : undefined,
    });
  }
  return clean({
    tags: [route.tag],
    operationId: route.operationId,
    summary: route.summary,
    description: route.description,
    requestBody: route.requestSchema
      ? { required: true, content: { 'application/json': { schema: route.requestSchema } } }
      : undefined,
    responses: { ...responses, ...errorRefs(route.errors) },
  });
}

function errorRefs(statuses: number[]): Record<string, unknown> {
  return Object.fromEntries(
    [...new Set(statuses)]
      .sort((a, b) => a - b)
      .map((status) => {
        const known = ERROR_RESPONSES[status];
        if (!known) throw new Error(`no error response described for ${status}`);
        return [String(status), { $ref: `#/components/responses/${known.name}` }];
      }),
  );
}

function errorResponses(): Record<string, unknown> {
  const retryAfter = (required: boolean) => ({
    'retry-after': {
      description: 'Seconds to wait before trying again.',
      required,
      schema: { type: 'integer', minimum: 0 },
    },
  });
  return Object.fromEntries(
    Object.values(ERROR_RESPONSES).map((r) => [
      r.name,
      clean({
        description: r.description,
        headers: r.retryAfter ? retryAfter(r.retryAfter === 'always') : undefined,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      }),
    ]),
  );
}

/** The error body and the google.rpc details it may carry (protobuf JSON mapping, with `@type`). */
function errorSchemas(): Record<string, JsonSchema> {
  const detail = (name: string, description: string, properties: Record<string, JsonSchema>) => ({
    type: 'object',
    description,
    required: ['@type'],
    properties: { '@type': { const: `type.googleapis.com/google.rpc.${name}` }, ...properties },
  });
  return {
    Error: {
      type: 'object',
      description: 'Every error answer.',
      required: ['error'],
      properties: {
        error: {
          type: 'object',
          required: ['code', 'status', 'message'],
          properties: {
            code: { type: 'integer', description: 'The HTTP status.' },
            status: {
              type: 'string',
              enum: STATUS_NAMES,
              description:
                'The gRPC status code name (`METHOD_NOT_ALLOWED` and `UPGRADE_REQUIRED` for the HTTP-only 405 and 426).',
            },
            message: {
              type: 'string',
              description:
                'What went wrong, for a person: stable and precise (`events[3].type: is required`).',
            },
            field: {
              type: 'string',
              description: 'The request field at fault, as a path (`events[3].type`).',
            },
            details: {
              type: 'array',
              description:
                'google.rpc error details, the same as a gRPC client reads in `grpc-status-details-bin`.',
              items: {
                anyOf: [
                  { $ref: '#/components/schemas/google.rpc.BadRequest' },
                  { $ref: '#/components/schemas/google.rpc.RetryInfo' },
                  { $ref: '#/components/schemas/google.rpc.ErrorInfo' },
                ],
              },
            },
          },
        },
      },
    },
    'google.rpc.BadRequest': detail('BadRequest', 'The fields at fault in invalid input.', {
      fieldViolations: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            field: { type: 'string', description: 'The field path (`events[3].type`).' },
            description: { type: 'string', description: 'What is wrong with it.' },
          },
        },
      },
    }),
    'google.rpc.RetryInfo': detail('RetryInfo', 'When to try again.', {
      retryDelay: {
        type: 'string',
        pattern: '^-?[0-9]+(\\.[0-9]{1,9})?s$',
        description: 'A Duration in the JSON mapping: seconds with an `s` suffix (`"1.5s"`).',
      },
    }),
    'google.rpc.ErrorInfo': detail('ErrorInfo', 'The reason of an error, as a constant a program can test.', {
      reason: { type: 'string', description: 'UPPER_SNAKE_CASE, stable.' },
      domain: { type: 'string', description: 'Who defines the reason.' },
      metadata: { type: 'object', additionalProperties: { type: 'string' } },
    }),
  };
}

type Direction = 'request' | 'response';

/**
 * Component schemas of the messages and enums the routes reach, each named by
 * its full proto name. A message reached only by answers lists its implicit-presence
 * fields as `required` (the gateway always writes them); one a request may hold does not.
 */
class SchemaBuilder {
  private readonly reached = new Map<string, DescMessage | DescEnum>();
  private readonly inRequests = new Set<string>();

  constructor(routes: readonly HttpRoute[]) {
    // Only what the document refers to: a GET's request message is its query parameters, not a schema.
    for (const route of routes) {
      const input = route.method.input;
      for (const field of input.fields) {
        if (route.pathFields.includes(field.name)) continue;
        const target = field.message ?? field.enum;
        if (route.body === '*' || field.name === route.body) {
          if (target && route.body !== '*') this.reach(target, 'request');
        } else if (field.enum) this.reach(field.enum, 'request');
      }
      if (route.body === '*') this.reach(input, 'request');
      this.reach(route.method.output, 'response');
    }
  }

  private reach(desc: DescMessage | DescEnum, direction: Direction): void {
    const seen =
      this.reached.has(desc.typeName) && (direction === 'response' || this.inRequests.has(desc.typeName));
    if (seen || (desc.kind === 'message' && wellKnown(desc))) return;
    this.reached.set(desc.typeName, desc);
    if (direction === 'request') this.inRequests.add(desc.typeName);
    if (desc.kind === 'enum') return;
    for (const field of desc.fields) {
      const target = field.message ?? field.enum;
      if (target) this.reach(target, direction);
    }
  }

  components(): Record<string, JsonSchema> {
    const out: Record<string, JsonSchema> = {};
    for (const name of [...this.reached.keys()].sort()) {
      const desc = this.reached.get(name)!;
      out[name] = desc.kind === 'enum' ? enumSchema(desc) : this.messageSchema(desc);
    }
    return out;
  }

  /** A `$ref` to a message's schema, or the inline schema of a well-known type. */
  ref(message: DescMessage): JsonSchema {
    return wellKnown(message) ?? { $ref: `#/components/schemas/${message.typeName}` };
  }

  /** The request body of `body: "*"`: the message, less the fields bound by the path. */
  bodyOf(message: DescMessage, pathFields: readonly string[]): JsonSchema {
    if (pathFields.length === 0) return this.ref(message);
    const schema = this.messageSchema(message);
    const properties = { ...(schema.properties as Record<string, JsonSchema>) };
    for (const field of message.fields)
      if (pathFields.includes(field.name)) delete properties[field.jsonName];
    return { ...schema, properties };
  }

  private messageSchema(message: DescMessage): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const field of message.fields) {
      properties[field.jsonName] = withDescription(this.fieldSchema(field), comments(field));
      if (!this.inRequests.has(message.typeName) && alwaysWritten(field)) required.push(field.jsonName);
    }
    return clean({
      type: 'object',
      description: comments(message),
      properties,
      required: required.length > 0 ? required : undefined,
    });
  }

  fieldSchema(field: DescField): JsonSchema {
    switch (field.fieldKind) {
      case 'scalar':
        return scalarSchema(field.scalar);
      case 'enum':
        return enumRef(field.enum);
      case 'message':
        return this.ref(field.message);
      case 'list':
        return {
          type: 'array',
          items:
            field.listKind === 'scalar'
              ? scalarSchema(field.scalar)
              : field.listKind === 'enum'
                ? enumRef(field.enum)
                : this.ref(field.message),
        };
      case 'map':
        return {
          type: 'object',
          additionalProperties:
            field.mapKind === 'scalar'
              ? scalarSchema(field.scalar)
              : field.mapKind === 'enum'
                ? enumRef(field.enum)
                : this.ref(field.message),
        };
    }
  }

  /**
   * The schema of a field read from the query string, or undefined when the
   * gateway cannot read it there: the value of each `key=value` becomes the
   * field's JSON, so only fields whose JSON is a scalar (or a list of them) fit.
   */
  querySchema(field: DescField): JsonSchema | undefined {
    const single = (kind: 'scalar' | 'enum' | 'message', f: DescField): JsonSchema | undefined => {
      if (kind === 'scalar' && f.scalar !== undefined) return scalarSchema(f.scalar);
      if (kind === 'enum' && f.enum) return enumRef(f.enum);
      if (kind === 'message' && f.message) {
        const wkt = wellKnown(f.message);
        return wkt && typeof wkt.type === 'string' && wkt.type !== 'object' && wkt.type !== 'array'
          ? wkt
          : undefined;
      }
      return undefined;
    };
    if (field.fieldKind === 'map') return undefined;
    if (field.fieldKind === 'list') {
      const items = single(field.listKind, field);
      return items ? { type: 'array', items } : undefined;
    }
    return single(field.fieldKind, field);
  }
}

/** Fields the gateway always writes in an answer (`alwaysEmitImplicit`): implicit presence. */
function alwaysWritten(field: DescField): boolean {
  if (field.fieldKind === 'list' || field.fieldKind === 'map') return true;
  if (field.fieldKind === 'message') return false;
  return field.presence === FeatureSet_FieldPresence.IMPLICIT && field.oneof === undefined;
}

function scalarSchema(scalar: ScalarType): JsonSchema {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: 'string' };
    case ScalarType.BYTES:
      return { type: 'string', contentEncoding: 'base64' };
    case ScalarType.BOOL:
      return { type: 'boolean' };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: 'number', format: scalar === ScalarType.DOUBLE ? 'double' : 'float' };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: 'integer', format: 'int32' };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: 'integer', format: 'int32', minimum: 0, maximum: 4_294_967_295 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return {
        type: 'string',
        format: 'int64',
        pattern: '^-?[0-9]+$',
        description: 'A 64-bit integer as a decimal string.',
      };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return {
        type: 'string',
        format: 'uint64',
        pattern: '^[0-9]+$',
        description: 'A 64-bit integer as a decimal string.',
      };
  }
}

/** The JSON mapping's special forms of the well-known types; undefined for any other message. */
function wellKnown(message: DescMessage): JsonSchema | undefined {
  switch (message.typeName) {
    case 'google.protobuf.Timestamp':
      return {
        type: 'string',
        format: 'date-time',
        description: 'RFC 3339, UTC (`2026-01-02T15:04:05.123Z`).',
      };
    case 'google.protobuf.Duration':
      return {
        type: 'string',
        pattern: '^-?[0-9]+(\\.[0-9]{1,9})?s$',
        description: 'Seconds, e.g. `"1.5s"`.',
      };
    case 'google.protobuf.FieldMask':
      return { type: 'string', description: 'Comma-separated lowerCamelCase field paths.' };
    case 'google.protobuf.Struct':
      return { type: 'object' };
    case 'google.protobuf.Value':
      return {};
    case 'google.protobuf.ListValue':
      return { type: 'array' };
    case 'google.protobuf.Empty':
      return { type: 'object', maxProperties: 0 };
    case 'google.protobuf.Any':
      return { type: 'object', required: ['@type'], properties: { '@type': { type: 'string' } } };
    case 'google.protobuf.DoubleValue':
      return scalarSchema(ScalarType.DOUBLE);
    case 'google.protobuf.FloatValue':
      return scalarSchema(ScalarType.FLOAT);
    case 'google.protobuf.Int64Value':
      return scalarSchema(ScalarType.INT64);
    case 'google.protobuf.UInt64Value':
      return scalarSchema(ScalarType.UINT64);
    case 'google.protobuf.Int32Value':
      return scalarSchema(ScalarType.INT32);
    case 'google.protobuf.UInt32Value':
      return scalarSchema(ScalarType.UINT32);
    case 'google.protobuf.BoolValue':
      return scalarSchema(ScalarType.BOOL);
    case 'google.protobuf.StringValue':
      return scalarSchema(ScalarType.STRING);
    case 'google.protobuf.BytesValue':
      return scalarSchema(ScalarType.BYTES);
    default:
      return undefined;
  }
}

function enumRef(desc: DescEnum): JsonSchema {
  return desc.typeName === 'google.protobuf.NullValue'
    ? { type: 'null' }
    : { $ref: `#/components/schemas/${desc.typeName}` };
}

/** Enums are written by name; requests may also give the number. */
function enumSchema(desc: DescEnum): JsonSchema {
  const described = desc.values
    .map((v) => [v.name, comments(v)] as const)
    .filter(([, text]) => text)
    .map(([name, text]) => `- \`${name}\`: ${text}`);
  return clean({
    type: 'string',
    enum: desc.values.map((v) => v.name),
    description: [comments(desc), ...described].filter(Boolean).join('\n') || undefined,
  });
}

function fieldByPath(message: DescMessage, path: string): DescField | undefined {
  const [head, ...rest] = path.split('.');
  const field = message.fields.find((f) => f.name === head);
  if (!field || rest.length === 0) return field;
  return field.message ? fieldByPath(field.message, rest.join('.')) : undefined;
}

/** `$ref` with a sibling description is valid in 3.1; a schema's own description stays when the field has none. */
function withDescription(schema: JsonSchema, description: string | undefined): JsonSchema {
  return description ? { ...schema, description } : schema;
}

/** The first sentence of a comment. */
function summaryOf(text: string | undefined): string | undefined {
  if (!text) return undefined;
  const flat = text.replace(/\s*\n\s*/g, ' ');
  const end = flat.search(/[.:;](\s|$)/);
  return end === -1 ? flat : flat.slice(0, end + 1).replace(/[:;]$/, '.');
}

type Commented = DescService | DescMethod | DescMessage | DescField | DescEnum | DescEnumValue;

/** The leading comment of a declaration (else its trailing one), or undefined. */
function comments(desc: Commented | undefined): string | undefined {
  if (!desc) return undefined;
  const file =
    desc.kind === 'field' || desc.kind === 'rpc' || desc.kind === 'enum_value' ? desc.parent.file : desc.file;
  const path = sourcePath(desc);
  const location = file.proto.sourceCodeInfo?.location.find(
    (l) => l.path.length === path.length && l.path.every((n, i) => n === path[i]),
  );
  const raw = location?.leadingComments || location?.trailingComments;
  if (!raw) return undefined;
  const text = raw
    .split('\n')
    .map((line) => line.replace(/^ /, '').trimEnd())
    .join('\n')
    .trim();
  return text === '' ? undefined : text;
}

/** The declaration's path in its file's source code info (descriptor.proto's field numbers). */
function sourcePath(desc: Commented): number[] {
  switch (desc.kind) {
    case 'service':
      return [6, desc.file.proto.service.indexOf(desc.proto)];
    case 'rpc':
      return [...sourcePath(desc.parent), 2, desc.parent.proto.method.indexOf(desc.proto)];
    case 'message':
      return desc.parent
        ? [...sourcePath(desc.parent), 3, desc.parent.proto.nestedType.indexOf(desc.proto)]
        : [4, desc.file.proto.messageType.indexOf(desc.proto)];
    case 'field':
      return [...sourcePath(desc.parent), 2, desc.parent.proto.field.indexOf(desc.proto)];
    case 'enum':
      return desc.parent
        ? [...sourcePath(desc.parent), 4, desc.parent.proto.enumType.indexOf(desc.proto)]
        : [5, desc.file.proto.enumType.indexOf(desc.proto)];
    case 'enum_value':
      return [...sourcePath(desc.parent), 2, desc.parent.proto.value.indexOf(desc.proto)];
  }
}

/** Drops undefined properties, so that the JSON has no `null`s and reads the same every time. */
function clean<T extends Record<string, unknown>>(object: T): T {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as T;
}
