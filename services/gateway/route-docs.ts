/**
 * The gateway's hand-written routes as data: the seed's legacy routes and the
 * edge's own (probes, metrics, the API description, the stream). The gateway
 * serves these verbs and paths, and scripts/openapi.ts describes them in the
 * OpenAPI document from the same rows, so a route cannot be served undocumented.
 * The /v1 routes are not here: they come from the proto's google.api.http rules.
 */

/** A JSON Schema (2020-12, the dialect of OpenAPI 3.1). */
export type JsonSchema = { [key: string]: unknown };

export interface RouteResponseDoc {
  description: string;
  /** Content type → schema; none for an empty body. */
  content?: Record<string, JsonSchema>;
  /** Header name → description; `required` when every such response carries it. */
  headers?: Record<string, { description: string; schema: JsonSchema; required?: boolean }>;
}

export interface RouteDoc {
  verb: 'GET' | 'POST' | 'PUT';
  /** The path as documented. */
  path: string;
  /** Other paths that serve the same operation (the seed's routes work without the trailing slash). */
  aliases: string[];
  operationId: string;
  tag: string;
  summary: string;
  description: string;
  /** A JSON body, when the route reads one. */
  requestSchema?: JsonSchema;
  /** Non-error answers by status. */
  responses: Record<string, RouteResponseDoc>;
  /** HTTP statuses answered with the common error body (`{"error":{…}}`). */
  errors: number[];
}

/** Tag of the seed's routes. */
export const SEED_TAG = 'Seed routes';
/** Tag of the probes, metrics and API description routes. */
export const EDGE_TAG = 'Operations';

export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PATH = '/docs';
/** The WebSocket endpoint (docs/stream.md). */
export const STREAM_PATH = '/v1/stream';

const typeCounts: JsonSchema = {
  type: 'array',
  description: 'Every type counted, ordered by type.',
  items: {
    type: 'object',
    required: ['type', 'count'],
    properties: { type: { type: 'string' }, count: { type: 'integer', minimum: 0 } },
  },
};

/** The seed event counter's routes, with exactly its request and response shapes. */
export const LEGACY_ROUTES = {
  generate: {
    verb: 'PUT',
    path: '/event_generate/',
    aliases: ['/event_generate'],
    operationId: 'seedEventGenerate',
    tag: SEED_TAG,
    summary: 'Record one event (the seed’s shape).',
    description:
      'Publishes one event; answers `OK` once Kafka acknowledged it, like `POST /v1/events`. ' +
      '`uuid` becomes the event id (generated when absent), `url` its target. Errors name the ' +
      'seed’s fields (`url: is required`). Also served without the trailing slash.',
    requestSchema: {
      type: 'object',
      properties: {
        uuid: { type: 'string', description: 'The event id (idempotency key); generated when absent.' },
        type: { type: 'string', description: 'What happened: CLICK, VIEW, …' },
        ip: { type: 'string', description: 'Client address; taken from the request when absent.' },
        url: { type: 'string', description: 'What it happened to (the event’s target).' },
      },
    },
    responses: {
      '200': {
        description: 'Kafka acknowledged the event.',
        content: { 'text/plain': { type: 'string', const: 'OK' } },
      },
    },
    errors: [400, 413, 503, 504],
  },
  track: {
    verb: 'POST',
    path: '/event_track/',
    aliases: ['/event_track'],
    operationId: 'seedEventTrack',
    tag: SEED_TAG,
    summary: 'The live counters of one url (the seed’s shape).',
    description:
      'Every type counted for `url`, as `GET /v1/counters` with the seed’s field names and counts as ' +
      'JSON numbers. Also served without the trailing slash.',
    requestSchema: {
      type: 'object',
      required: ['url'],
      properties: { url: { type: 'string', minLength: 1, description: 'The target.' } },
    },
    responses: {
      '200': {
        description: 'The counters.',
        content: {
          'application/json': {
            type: 'object',
            required: ['url', 'events'],
            properties: { url: { type: 'string' }, events: typeCounts },
          },
        },
      },
    },
    errors: [400, 413, 503, 504],
  },
  report: {
    verb: 'POST',
    path: '/event_report/',
    aliases: ['/event_report'],
    operationId: 'seedEventReport',
    tag: SEED_TAG,
    summary: 'The hourly report of one url and date (the seed’s shape).',
    description:
      'The 24 UTC hours of `date`, zero-filled, as `GET /v1/report` with the seed’s field names. ' +
      'Also served without the trailing slash.',
    requestSchema: {
      type: 'object',
      required: ['url', 'date'],
      properties: {
        url: { type: 'string', minLength: 1, description: 'The target.' },
        date: { type: 'string', format: 'date', description: 'YYYY-MM-DD.' },
      },
    },
    responses: {
      '200': {
        description: 'The report: always 24 hours, ascending.',
        content: {
          'application/json': {
            type: 'object',
            required: ['url', 'date', 'dateHourEventCounts'],
            properties: {
              url: { type: 'string' },
              date: { type: 'string', format: 'date' },
              dateHourEventCounts: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['datehour', 'eventCounts'],
                  properties: {
                    datehour: { type: 'integer', minimum: 0, maximum: 23, description: 'The UTC hour.' },
                    eventCounts: typeCounts,
                  },
                },
              },
            },
          },
        },
      },
    },
    errors: [400, 413, 503, 504],
  },
} as const satisfies Record<string, RouteDoc>;

/** The edge's own routes (the stream's protocol is in docs/stream.md). */
export const EDGE_ROUTES: readonly RouteDoc[] = [
  {
    verb: 'GET',
    path: '/healthz',
    aliases: [],
    operationId: 'healthz',
    tag: EDGE_TAG,
    summary: 'Liveness.',
    description: 'Answers while the process runs, draining included.',
    responses: {
      '200': {
        description: 'Alive.',
        content: { 'application/json': { type: 'object', properties: { status: { const: 'ok' } } } },
      },
    },
    errors: [],
  },
  {
    verb: 'GET',
    path: '/readyz',
    aliases: [],
    operationId: 'readyz',
    tag: EDGE_TAG,
    summary: 'Readiness.',
    description: 'Ready to take requests; 503 from the first moment of a drain.',
    responses: {
      '200': {
        description: 'Ready.',
        content: { 'application/json': { type: 'object', properties: { status: { const: 'ready' } } } },
      },
      '503': {
        description: 'Draining: send requests elsewhere.',
        content: { 'application/json': { type: 'object', properties: { status: { const: 'draining' } } } },
      },
    },
    errors: [],
  },
  {
    verb: 'GET',
    path: '/metrics',
    aliases: [],
    operationId: 'metrics',
    tag: EDGE_TAG,
    summary: 'Prometheus metrics.',
    description: 'Every metric of the process in the Prometheus text format (docs/metrics.md).',
    responses: {
      '200': {
        description: 'The metrics.',
        content: { 'text/plain': { type: 'string' } },
      },
    },
    errors: [],
  },
  {
    verb: 'GET',
    path: OPENAPI_PATH,
    aliases: [],
    operationId: 'openapi',
    tag: EDGE_TAG,
    summary: 'This document.',
    description:
      'The OpenAPI 3.1 description of the REST API, generated from the proto at `make generate`. ' +
      'Revalidate with `If-None-Match`: an unchanged document answers 304.',
    responses: {
      '200': {
        description: 'The document.',
        content: { 'application/json': { type: 'object' } },
        headers: {
          etag: { description: 'The document’s digest.', schema: { type: 'string' }, required: true },
        },
      },
      '304': { description: 'Not modified since the ETag given in `If-None-Match`.' },
    },
    errors: [],
  },
  {
    verb: 'GET',
    path: DOCS_PATH,
    aliases: [`${DOCS_PATH}/`],
    operationId: 'docs',
    tag: EDGE_TAG,
    summary: 'The API reference page.',
    description: `A browsable reference of this document (Swagger UI, served from the gateway's own files, under \`${DOCS_PATH}/assets/\`).`,
    responses: {
      '200': { description: 'The page.', content: { 'text/html': { type: 'string' } } },
      '304': { description: 'Not modified since the ETag given in `If-None-Match`.' },
    },
    errors: [],
  },
  {
    verb: 'GET',
    path: STREAM_PATH,
    aliases: [],
    operationId: 'stream',
    tag: 'Stream',
    summary: 'The live stream (WebSocket).',
    description:
      'A WebSocket: subscribe to the dashboard’s snapshots or to targets’ live counters. Messages are ' +
      'JSON text frames; the protocol is described in docs/stream.md. A plain request without ' +
      '`Upgrade: websocket` answers 426.',
    responses: {
      '101': { description: 'Switched to the WebSocket protocol.' },
      '426': {
        description: 'Not a WebSocket handshake.',
        content: { 'application/json': { $ref: '#/components/schemas/Error' } },
      },
      '503': {
        description:
          'Draining (a JSON error), or the gateway holds its maximum of sockets (plain text, with `Retry-After`).',
        content: {
          'application/json': { $ref: '#/components/schemas/Error' },
          'text/plain': { type: 'string' },
        },
        headers: {
          'retry-after': { description: 'Seconds to wait before trying again.', schema: { type: 'integer' } },
        },
      },
    },
    errors: [],
  },
];
