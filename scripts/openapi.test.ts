/**
 * services/gen/openapi.json: fresh (rebuilt in memory from the protos, it is the
 * committed file byte for byte), valid OpenAPI 3.1 (two validators), and listing
 * exactly the routes the gateway serves: its services' http rules, the seed's
 * routes and the edge's own.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import {
  clone,
  create,
  createFileRegistry,
  type FileRegistry,
  fromBinary,
  setExtension,
} from '@bufbuild/protobuf';
import {
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  MethodDescriptorProtoSchema,
  type ServiceDescriptorProto,
} from '@bufbuild/protobuf/wkt';
import { Validator } from '@seriousme/openapi-schema-validator';
import { OPENAPI_FILE } from '../services/gateway/api-docs.ts';
import { REST_SERVICES } from '../services/gateway/gateway.ts';
import { EDGE_ROUTES, LEGACY_ROUTES } from '../services/gateway/route-docs.ts';
import { http } from '../services/gen/google/api/annotations_pb.js';
import { HttpRuleSchema } from '../services/gen/google/api/http_pb.js';
import { httpRoutes } from '../services/infra/http/http-rules.ts';
import { openApiDocument, openApiJson } from './openapi.ts';

const root = join(import.meta.dirname, '..');

/** The protos as buf compiles them (comments included), as the plugin receives them. */
function protoRegistry(): FileRegistry {
  const image = execFileSync(
    join(root, 'node_modules', '.bin', 'buf'),
    ['build', 'proto', '-o', '-#format=binpb'],
    {
      cwd: root,
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  // A buf image is a FileDescriptorSet with buf's own fields added (read as unknown fields).
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, image));
}

const registry = protoRegistry();
const committed = readFileSync(OPENAPI_FILE, 'utf8');
const document = JSON.parse(committed) as {
  paths: Record<string, Record<string, { summary?: string; description?: string; operationId?: string }>>;
  components: { schemas: Record<string, { description?: string; properties?: Record<string, unknown> }> };
};

/** `VERB /path` of every operation in a document. */
function operations(doc: typeof document): string[] {
  return Object.entries(doc.paths)
    .flatMap(([path, item]) => Object.keys(item).map((verb) => `${verb.toUpperCase()} ${path}`))
    .sort();
}

test('the committed document is what the protos make now', () => {
  assert.equal(
    committed,
    openApiJson(registry),
    'services/gen/openapi.json is stale: run `npm run generate`',
  );
});

test('the document is valid OpenAPI 3.1 (the official schema, and swagger-parser with its references)', async () => {
  const validator = new Validator();
  const result = await validator.validate(JSON.parse(committed));
  assert.deepEqual(result.errors ?? [], []);
  assert.equal(result.valid, true);
  assert.equal(validator.version, '3.1');
  const parsed = await SwaggerParser.validate(JSON.parse(committed));
  assert.equal((parsed as { openapi: string }).openapi, '3.1.0');
});

test('a document that breaks the schema is refused by the validator', async () => {
  // The check above can fail: a response without a description is not OpenAPI 3.1.
  const broken = JSON.parse(committed);
  delete broken.paths['/v1/events'].post.responses['200'].description;
  const result = await new Validator().validate(broken);
  assert.equal(result.valid, false);
});

test('every route the gateway serves is in the document, and nothing else', () => {
  const served = [
    ...httpRoutes(REST_SERVICES).map(
      (r) => `${r.verb} ${r.template.replace(/\{([^}=]+)(=[^}]*)?\}/g, '{$1}')}`,
    ),
    ...Object.values(LEGACY_ROUTES).map((r) => `${r.verb} ${r.path}`),
    ...EDGE_ROUTES.map((r) => `${r.verb} ${r.path}`),
  ].sort();
  assert.deepEqual(operations(document), served);
  // The seed routes are there, and their aliases are named in the text.
  for (const route of Object.values(LEGACY_ROUTES)) {
    const operation = document.paths[route.path]?.[route.verb.toLowerCase()];
    assert.ok(operation, `${route.verb} ${route.path}`);
  }
});

/** The protos with `change` applied to a copy of query.proto's QueryService. */
function withQueryService(change: (service: ServiceDescriptorProto) => void): FileRegistry {
  const protoFiles = [...registry.files].map((f) => f.proto);
  const query = protoFiles.find((f) => f.name === 'tally/v1/query.proto')!;
  const changed = clone(FileDescriptorProtoSchema, query);
  change(changed.service[0]!);
  return createFileRegistry(
    create(FileDescriptorSetSchema, { file: protoFiles.map((f) => (f === query ? changed : f)) }),
  );
}

test('a new http rule is documented: one the gateway does not serve fails the check above', () => {
  const doc = openApiDocument(
    withQueryService((service) => {
      const method = clone(MethodDescriptorProtoSchema, service.method[0]!);
      method.name = 'CountAgain';
      setExtension(
        method.options!,
        http,
        create(HttpRuleSchema, { pattern: { case: 'get', value: '/v1/again' } }),
      );
      service.method.push(method);
    }),
  ) as typeof document;
  assert.ok(operations(doc).includes('GET /v1/again'));
  assert.notDeepEqual(operations(doc), operations(document));
});

test('RPCs without an http rule (a bidirectional stream, say) are left out', () => {
  const doc = openApiDocument(
    withQueryService((service) => {
      const method = clone(MethodDescriptorProtoSchema, service.method[0]!);
      method.name = 'WatchCounters';
      method.clientStreaming = true;
      method.serverStreaming = true;
      method.options = undefined;
      service.method.push(method);
    }),
  );
  assert.equal(`${JSON.stringify(doc, null, 2)}\n`, committed);
});

test('the proto comments are the summaries and descriptions', () => {
  const publish = document.paths['/v1/events']?.post;
  assert.equal(publish?.summary, 'One event.');
  assert.match(publish?.description ?? '', /gRPC: `tally\.v1\.IngestService\/Publish`/);
  const batch = document.paths['/v1/events:batch']?.post;
  assert.match(batch?.description ?? '', /one invalid event rejects the batch/);
  const event = document.components.schemas['tally.v1.Event'];
  assert.match(event?.description ?? '', /single source of truth/);
  assert.equal(
    (event?.properties?.userId as { description?: string } | undefined)?.description,
    "Who did it; the partition key, so one user's events stay in order.",
  );
});

test('schemas follow the protobuf JSON mapping as the gateway writes it', () => {
  const schemas = document.components.schemas as Record<string, Record<string, unknown>>;
  const event = schemas['tally.v1.Event']!.properties as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(event), [
    'id',
    'type',
    'target',
    'userId',
    'ip',
    'value',
    'occurredAt',
    'receivedAt',
    'attributes',
  ]);
  assert.equal(event.occurredAt!.type, 'string');
  assert.equal(event.occurredAt!.format, 'date-time');
  assert.deepEqual(event.attributes!.additionalProperties, { type: 'string' });
  assert.equal(event.value!.type, 'number');
  // uint64 counts are decimal strings; answers always carry implicit fields (required), requests need none.
  const typeCount = schemas['tally.v1.TypeCount']!;
  const count = (typeCount.properties as Record<string, Record<string, unknown>>).count!;
  assert.equal(count.type, 'string');
  assert.equal(count.pattern, '^[0-9]+$');
  assert.deepEqual(typeCount.required, ['type', 'count', 'sum']);
  assert.equal(schemas['tally.v1.Event']!.required, undefined);
  // A GET's fields are query parameters by their JSON names; a list repeats its parameter.
  const top = document.paths['/v1/top']!.get as {
    parameters: { name: string; in: string; schema: unknown }[];
  };
  assert.deepEqual(
    top.parameters.map((p) => [p.name, p.in, p.schema]),
    [
      ['types', 'query', { type: 'array', items: { type: 'string' } }],
      ['limit', 'query', { type: 'integer', format: 'int32', minimum: 0, maximum: 4_294_967_295 }],
      // An enum by its schema, as a body field would be.
      ['window', 'query', { $ref: '#/components/schemas/tally.v1.Window' }],
      ['timeZone', 'query', { type: 'string' }],
      ['date', 'query', { type: 'string' }],
      ['month', 'query', { type: 'string' }],
    ],
  );
});

test('errors: the common body with google.rpc details, Retry-After on 503 (and 429 when known)', () => {
  const doc = JSON.parse(committed);
  const publish = doc.paths['/v1/events'].post.responses;
  for (const status of ['400', '413', '429', '503']) assert.ok(publish[status], status);
  const unavailable = doc.components.responses.Unavailable;
  assert.equal(unavailable.headers['retry-after'].required, true);
  assert.equal(doc.components.responses.TooManyRequests.headers['retry-after'].required, false);
  const error = doc.components.schemas.Error.properties.error;
  assert.deepEqual(error.required, ['code', 'status', 'message']);
  const details = error.properties.details.items.anyOf.map((r: { $ref: string }) => r.$ref);
  assert.deepEqual(details, [
    '#/components/schemas/google.rpc.BadRequest',
    '#/components/schemas/google.rpc.RetryInfo',
    '#/components/schemas/google.rpc.ErrorInfo',
  ]);
  assert.equal(
    doc.components.schemas['google.rpc.BadRequest'].properties['@type'].const,
    'type.googleapis.com/google.rpc.BadRequest',
  );
  // The seed's routes answer in their own shapes: text/plain OK.
  assert.deepEqual(doc.paths['/event_generate/'].put.responses['200'].content['text/plain'].schema, {
    type: 'string',
    const: 'OK',
  });
});
