/**
 * Test support: the access-control contract every deployment shape passes (real servers and
 * embedded mode run it alike). An authorization matrix over every REST route (the /v1 routes from
 * the proto's http rules, the seed's routes), every gRPC method of the served services and the
 * WebSocket: each refused credential gets its 401/403 with the right reason, nothing reaches the
 * event log, and the right credential is let in. Routes and methods are enumerated, so one added
 * without a sample request here, or without a `required_scope`, fails the matrix.
 */

import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DescMethod } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { exportJWK, SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { formatApiKey, type Scope } from './domain/api-keys.ts';
import { REST_SERVICES } from './gateway/gateway.ts';
import { LEGACY_ROUTES } from './gateway/route-docs.ts';
import { AlertService } from './gen/tally/v1/alerts_pb.js';
import { DestinationService } from './gen/tally/v1/destinations_pb.js';
import { EntityService, ProjectionService } from './gen/tally/v1/entities_pb.js';
import { IngestService } from './gen/tally/v1/ingest_pb.js';
import { KeysService } from './gen/tally/v1/keys_pb.js';
import { type AppError, Code } from './infra/app-error.ts';
import { requiredScope } from './infra/auth/access-control.ts';
import { createGrpcClient } from './infra/grpc/grpc-service.ts';
import { httpRoutes } from './infra/http/http-rules.ts';

export const JWT_ISSUER = 'https://issuer.test';
export const JWT_AUDIENCE = 'tally-test';

/** A JWKS served on loopback by the test, whose keys can be rotated while Tally uses it. */
export interface TestJwks {
  url: string;
  /** How many times the JWKS was fetched. */
  readonly fetches: number;
  /** A token signed with the current key (or `kid`'s), claims over sane defaults. */
  sign(claims?: Record<string, unknown>, options?: { kid?: string; key?: KeyObject }): Promise<string>;
  /** Publishes a new key (`kid`) beside the old ones; later tokens are signed with it. */
  rotate(kid: string): void;
  /** The current public key, in PEM (for the HS256-with-the-public-key attack). */
  publicPem(): string;
  close(): Promise<void>;
}

export async function startTestJwks(): Promise<TestJwks> {
  const keys = new Map<string, { privateKey: KeyObject; publicKey: KeyObject }>();
  let current = 'k1';
  keys.set(current, generateKeyPairSync('rsa', { modulusLength: 2048 }));
  let fetches = 0;
  const server: Server = createServer(async (_request, response) => {
    fetches++;
    const jwks = {
      keys: await Promise.all(
        [...keys].map(async ([kid, k]) => ({
          ...(await exportJWK(k.publicKey)),
          kid,
          alg: 'RS256',
          use: 'sig',
        })),
      ),
    };
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get fetches() {
      return fetches;
    },
    async sign(claims = {}, options = {}) {
      const kid = options.kid ?? current;
      const key = options.key ?? keys.get(kid)?.privateKey ?? keys.get(current)!.privateKey;
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ scope: 'ingest read', ...claims })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setIssuer((claims.iss as string) ?? JWT_ISSUER)
        .setAudience((claims.aud as string) ?? JWT_AUDIENCE)
        .setSubject((claims.sub as string) ?? 'user-1')
        .setIssuedAt(now)
        .setExpirationTime((claims.exp as number) ?? now + 600)
        .sign(key);
    },
    rotate(kid) {
      keys.set(kid, generateKeyPairSync('rsa', { modulusLength: 2048 }));
      current = kid;
    },
    publicPem: () => keys.get(current)!.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The environment that turns JWTs on against `jwks`. */
export function jwtEnv(jwks: TestJwks): Record<string, string> {
  return { TALLY_JWT_JWKS_URL: jwks.url, TALLY_JWT_ISSUER: JWT_ISSUER, TALLY_JWT_AUDIENCE: JWT_AUDIENCE };
}

/** A fresh secret key in the key format (for TALLY_BOOTSTRAP_ADMIN_KEY and unknown keys). */
export function newSecretKey(kind: 'secret' | 'ingest' = 'secret'): string {
  return formatApiKey(kind, new Uint8Array(randomBytes(32)));
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** What the contract runs against: one running Tally with access control on. */
export interface AccessTarget {
  httpPort: number;
  grpcPort: number;
  /** The bootstrap admin key. */
  adminKey: string;
  jwks: TestJwks;
  /** Events the log holds (all partitions of the events topic), for "nothing reached it". */
  logEnd(): Promise<bigint>;
}

/** Keys the matrix uses, made through the admin API. */
export interface MatrixKeys {
  read: string;
  ingest: string;
  admin: string;
  /** An ingest key (tly_ik_) held to origin https://shop.test and types like, view. */
  browser: string;
  revoked: string;
  expired: string;
}

export async function rest(
  port: number,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<{
  status: number;
  json: { error?: { status?: string; details?: { reason?: string }[] } } & Record<string, unknown>;
  headers: Headers;
}> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...options.headers },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let json = {};
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: response.status, json, headers: response.headers };
}

/** The ErrorInfo reason of a REST error body. */
export function reasonOf(json: { error?: { details?: { reason?: string }[] } }): string | undefined {
  return json.error?.details?.find((d) => d.reason !== undefined)?.reason;
}

const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });

/** Makes the matrix's keys through `POST /v1/keys` with the admin key. */
export async function makeKeys(target: AccessTarget): Promise<MatrixKeys> {
  const create = async (body: Record<string, unknown>) => {
    const answer = await rest(target.httpPort, 'POST', '/v1/keys', {
      body,
      headers: bearer(target.adminKey),
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    return answer.json as { key: string; record: { id: string } };
  };
  const read = await create({ name: 'reader', scopes: ['read'] });
  const ingest = await create({ name: 'writer', scopes: ['ingest'] });
  const admin = await create({ name: 'admin 2', scopes: ['admin'] });
  const browser = await create({
    name: 'browser',
    kind: 'ingest',
    allowedOrigins: ['https://shop.test'],
    allowedTypes: ['like', 'view'],
  });
  const revoked = await create({ name: 'revoked', scopes: ['ingest', 'read', 'admin'] });
  const revoke = await rest(target.httpPort, 'POST', `/v1/keys/${revoked.record.id}:revoke`, {
    headers: bearer(target.adminKey),
  });
  assert.equal(revoke.status, 200);
  const expired = await create({
    name: 'expired',
    scopes: ['ingest', 'read', 'admin'],
    expiresInSeconds: '1',
  });
  await new Promise((r) => setTimeout(r, 1_200));
  return {
    read: read.key,
    ingest: ingest.key,
    admin: admin.key,
    browser: browser.key,
    revoked: revoked.key,
    expired: expired.key,
  };
}

/** A valid alert rule (AlertService's samples). */
const SAMPLE_RULE = {
  name: 'matrix',
  eventType: 'like',
  recipients: { dashboard: true },
  milestone: { subject: { target: 'auth/a' }, thresholds: [10, 100] },
};

/** A valid destination (DestinationService's samples): its topic is deleted after the matrix. */
const SAMPLE_DESTINATION = {
  name: 'matrix',
  webhook: { url: 'https://hooks.example.com/matrix' },
  filter: { eventTypes: ['like'] },
};

/** A valid projection (ProjectionService's samples). */
const SAMPLE_PROJECTION = {
  idAttribute: 'matrix_id',
  states: ['open', 'closed'],
  events: [
    { type: 'matrix.opened', state: 'open' },
    { type: 'matrix.closed', state: 'closed' },
  ],
  transitions: [{ from: 'open', to: 'closed' }],
  terminalStates: ['closed'],
};

/** A valid request of each REST route, by route template (`PUT /event_generate/`, `GET /v1/counters`…). */
const SAMPLES: Record<string, { path?: string; body?: unknown }> = {
  'POST /v1/events': { body: { type: 'like', target: 'auth/a', userId: 'user-1' } },
  'POST /v1/events:batch': { body: { events: [{ type: 'like', target: 'auth/a', userId: 'user-1' }] } },
  'GET /v1/counters': { path: '/v1/counters?target=auth/a' },
  'GET /v1/report': { path: '/v1/report?target=auth/a&date=2026-01-01' },
  'GET /v1/top': { path: '/v1/top?limit=3' },
  'GET /v1/uniques': { path: '/v1/uniques?target=auth/a' },
  'GET /v1/users/{user_id}/aggregates': { path: '/v1/users/user-1/aggregates?type=like&windows=1h' },
  'GET /v1/targets/{target}/aggregates': { path: '/v1/targets/auth%2Fa/aggregates?type=like&windows=1h,7d' },
  'GET /v1/aggregates/top': { path: '/v1/aggregates/top?type=like&window=6h&of=target' },
  'POST /v1/keys': { body: { name: 'matrix', scopes: ['read'] } },
  'GET /v1/keys': {},
  'POST /v1/keys/{id}:revoke': { path: '/v1/keys/NOSUCHID:revoke' },
  'POST /v1/keys/{id}:rotate': { path: '/v1/keys/NOSUCHID:rotate', body: {} },
  'GET /v1/whoami': {},
  'POST /v1/alert-rules': { body: SAMPLE_RULE },
  'GET /v1/alert-rules': {},
  'GET /v1/alert-rules/{id}': { path: '/v1/alert-rules/NOSUCHID' },
  'PUT /v1/alert-rules/{id}': { path: '/v1/alert-rules/NOSUCHID', body: SAMPLE_RULE },
  'DELETE /v1/alert-rules/{id}': { path: '/v1/alert-rules/NOSUCHID' },
  'POST /v1/destinations': { body: SAMPLE_DESTINATION },
  'GET /v1/destinations': {},
  'GET /v1/destinations/{id}': { path: '/v1/destinations/NOSUCHID' },
  'PUT /v1/destinations/{id}': { path: '/v1/destinations/NOSUCHID', body: SAMPLE_DESTINATION },
  'DELETE /v1/destinations/{id}': { path: '/v1/destinations/NOSUCHID' },
  'POST /v1/destinations/{id}:rotate-secret': { path: '/v1/destinations/NOSUCHID:rotate-secret', body: {} },
  'GET /v1/deliveries': { path: '/v1/deliveries?state=dead' },
  'GET /v1/deliveries/{id}/attempts': { path: '/v1/deliveries/NOSUCHID/attempts' },
  'POST /v1/deliveries/{id}:redeliver': { path: '/v1/deliveries/NOSUCHID:redeliver', body: {} },
  'POST /v1/destinations/{id}:recover': {
    path: '/v1/destinations/NOSUCHID:recover',
    body: { since: '2026-01-01T00:00:00Z' },
  },
  'GET /v1/notifications': { path: '/v1/notifications?recipient=dashboard' },
  'POST /v1/notifications:read': { body: { recipient: 'dashboard', ids: ['NOSUCHID'] } },
  'GET /v1/events': { path: '/v1/events?user=user-1&pageSize=10' },
  'GET /v1/projections': {},
  'GET /v1/projections/{kind}': { path: '/v1/projections/order' },
  'PUT /v1/projections/{kind}': { path: '/v1/projections/matrix', body: SAMPLE_PROJECTION },
  'DELETE /v1/projections/{kind}': { path: '/v1/projections/NOSUCHID' },
  'GET /v1/entities/{kind}/counts': { path: '/v1/entities/order/counts?by=city' },
  'GET /v1/entities/{kind}/{id}': { path: '/v1/entities/order/NOSUCHID' },
  'GET /v1/entities/{kind}': { path: '/v1/entities/order?state=preparing' },
  'PUT /event_generate/': { body: { type: 'like', url: 'auth/a' } },
  'POST /event_track/': { body: { url: 'auth/a' } },
  'POST /event_report/': { body: { url: 'auth/a', date: '2026-01-01' } },
};

/** Every REST route with the scope it needs, enumerated from the router's sources. */
export function restRoutes(): {
  name: string;
  verb: string;
  path: string;
  body?: unknown;
  scope: Scope | 'authenticated' | undefined;
  writes: boolean;
}[] {
  const routes = httpRoutes(REST_SERVICES).map((r) => ({
    name: `${r.verb} ${r.template}`,
    verb: r.verb,
    scope: requiredScope(r.method),
    writes: r.service.typeName === IngestService.typeName,
  }));
  const legacy = Object.values(LEGACY_ROUTES).map((r) => ({
    name: `${r.verb} ${r.path}`,
    verb: r.verb,
    scope: (r.path === LEGACY_ROUTES.generate.path ? 'ingest' : 'read') as Scope,
    writes: r.path === LEGACY_ROUTES.generate.path,
  }));
  return [...routes, ...legacy].map((r) => {
    const sample = SAMPLES[r.name];
    assert.ok(sample, `no sample request for ${r.name}: add one to access-control.contract.ts`);
    return { ...r, path: sample.path ?? r.name.split(' ')[1]!, body: sample.body };
  });
}

/** Every gRPC method of the served services with the scope it needs. */
export function grpcMethods(): {
  service: (typeof REST_SERVICES)[number];
  method: DescMethod;
  scope: ReturnType<typeof requiredScope>;
}[] {
  return REST_SERVICES.flatMap((service) =>
    service.methods.map((method) => ({ service, method, scope: requiredScope(method) })),
  );
}

/** A sample gRPC request for each method (client streams: one message; a server stream is read to its first answer). */
function grpcSample(method: DescMethod): unknown {
  const event = { type: 'like', target: 'auth/g', userId: 'user-1' };
  const grpcRule = {
    name: 'matrix grpc',
    eventType: 'like',
    recipients: { dashboard: true },
    condition: {
      case: 'milestone',
      value: { subject: { subject: { case: 'target', value: 'auth/g' } }, thresholds: [10n] },
    },
  };
  const grpcDestination = {
    name: 'matrix grpc',
    endpoint: { case: 'kafka', value: { topic: 'matrix.copy', brokers: ['other-cluster:9092'] } },
  };
  switch (method.name) {
    case 'Publish':
      return { event };
    case 'PublishBatch':
      return { events: [event] };
    case 'PublishStream':
      return [{ event }];
    case 'PublishStreamAcked':
      return { events: [event] };
    case 'GetCounters':
      return { target: 'auth/g' };
    case 'GetReport':
      return { target: 'auth/g', date: '2026-01-01' };
    case 'TopTargets':
      return { limit: 3 };
    case 'GetUniques':
      return { target: 'auth/g' };
    case 'GetWindows':
      return { target: 'auth/g', type: 'like', windows: ['1h'] };
    case 'TopByWindow':
      return { type: 'like', window: '1h' };
    case 'CreateKey':
      return { name: 'matrix grpc', scopes: ['read'] };
    case 'ListKeys':
    case 'WhoAmI':
      return {};
    case 'RevokeKey':
    case 'RotateKey':
    case 'GetAlertRule':
    case 'DeleteAlertRule':
      return { id: 'NOSUCHID' };
    case 'ListAlertRules':
      return {};
    case 'CreateAlertRule':
      return { rule: grpcRule };
    case 'UpdateAlertRule':
      return { id: 'NOSUCHID', rule: grpcRule };
    case 'ListNotifications':
    case 'WatchNotifications':
      return { recipient: 'dashboard' };
    case 'GetDestination':
    case 'DeleteDestination':
    case 'RotateDestinationSecret':
    case 'ListAttempts':
    case 'Redeliver':
      return { id: 'NOSUCHID' };
    case 'Recover':
      return { id: 'NOSUCHID', since: timestampFromMs(Date.UTC(2026, 0, 1)) };
    case 'ListDestinations':
    case 'ListDeliveries':
      return {};
    case 'CreateDestination':
      return { destination: grpcDestination };
    case 'UpdateDestination':
      return { id: 'NOSUCHID', destination: grpcDestination };
    case 'MarkNotificationsRead':
      return { recipient: 'dashboard', ids: ['NOSUCHID'] };
    case 'ListEvents':
      return { target: 'auth/g', pageSize: 10 };
    case 'ListProjections':
      return {};
    case 'GetProjection':
    case 'ListEntities':
      return { kind: 'order' };
    case 'PutProjection':
      return { kind: 'matrix_grpc', projection: SAMPLE_PROJECTION };
    case 'DeleteProjection':
      return { kind: 'NOSUCHID' };
    case 'GetEntity':
      return { kind: 'order', id: 'NOSUCHID' };
    case 'CountEntities':
      return { kind: 'order', by: 'city' };
    default:
      assert.fail(`no sample gRPC request for ${method.parent.typeName}/${method.name}: add one`);
  }
}

/** Calls `method` over gRPC with `authorization` (when given); resolves with the status code. */
export async function callGrpc(
  grpcPort: number,
  service: (typeof REST_SERVICES)[number],
  method: DescMethod,
  metadata: Record<string, string>,
): Promise<{ code: Code; reason?: string }> {
  const client = createGrpcClient(service as never, `127.0.0.1:${grpcPort}`) as unknown as Record<
    string,
    (...args: unknown[]) => unknown
  > & { close(): void };
  try {
    const request = grpcSample(method);
    if (method.methodKind === 'bidi_streaming') {
      const call = client[method.localName]!({ metadata, timeoutMs: 10_000 }) as {
        write(r: unknown): boolean;
        end(): void;
      } & AsyncIterable<unknown>;
      call.write(request);
      call.end();
      for await (const _ of call) {
      }
    } else if (method.methodKind === 'server_streaming') {
      const answers = client[method.localName]!(request, {
        metadata,
        timeoutMs: 10_000,
      }) as AsyncIterable<unknown>;
      for await (const _ of answers) break; // let in: it answered (a watch would go on)
    } else await client[method.localName]!(request, { metadata, timeoutMs: 10_000 });
    return { code: Code.OK };
  } catch (error) {
    const e = error as AppError;
    return { code: e.code, reason: e.reason };
  } finally {
    client.close();
  }
}

/** A credential case of the matrix: what is sent, and what it is refused with (undefined: its scopes decide). */
interface Case {
  name: string;
  authorization: (keys: MatrixKeys) => Promise<string | undefined> | string | undefined;
  /** The refusal whatever the route: 401 with this reason. */
  unauthenticated?: string;
  /** The scopes the credential has, when it authenticates. */
  scopes?: readonly Scope[];
  /** Only for routes that write events: the refusal's reason. */
  writeRefusal?: string;
}

/** The refused credentials of the matrix (the right ones are checked separately). */
export function refusedCases(target: AccessTarget): Case[] {
  const { jwks } = target;
  const now = Math.floor(Date.now() / 1000);
  return [
    { name: 'no credential', authorization: () => undefined, unauthenticated: 'MISSING_CREDENTIAL' },
    {
      name: 'malformed',
      authorization: () => 'Bearer tly_sk_notakey',
      unauthenticated: 'INVALID_CREDENTIAL',
    },
    { name: 'not a scheme', authorization: () => 'Token abc', unauthenticated: 'INVALID_CREDENTIAL' },
    {
      name: 'unknown key',
      authorization: () => `Bearer ${newSecretKey()}`,
      unauthenticated: 'INVALID_CREDENTIAL',
    },
    {
      name: 'revoked key',
      authorization: (k) => `Bearer ${k.revoked}`,
      unauthenticated: 'INVALID_CREDENTIAL',
    },
    {
      name: 'expired key',
      authorization: (k) => `Bearer ${k.expired}`,
      unauthenticated: 'INVALID_CREDENTIAL',
    },
    { name: 'read key', authorization: (k) => `Bearer ${k.read}`, scopes: ['read'] },
    { name: 'ingest secret key', authorization: (k) => `Bearer ${k.ingest}`, scopes: ['ingest'] },
    { name: 'admin key', authorization: (k) => `Bearer ${k.admin}`, scopes: ['admin'] },
    { name: 'ingest key (tly_ik_)', authorization: (k) => `Bearer ${k.browser}`, scopes: ['ingest'] },
    {
      name: 'JWT alg none',
      authorization: () =>
        `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: JWT_ISSUER, aud: JWT_AUDIENCE, sub: 'user-1', exp: now + 600, scope: 'ingest read admin' })}.`,
      unauthenticated: 'INVALID_TOKEN',
    },
    {
      name: 'JWT HS256 signed with the RS256 public key',
      authorization: () => {
        const head = `${b64url({ alg: 'HS256', typ: 'JWT', kid: 'k1' })}.${b64url({ iss: JWT_ISSUER, aud: JWT_AUDIENCE, sub: 'user-1', exp: now + 600, scope: 'ingest read admin' })}`;
        const mac = createHmac('sha256', jwks.publicPem()).update(head).digest('base64url');
        return `Bearer ${head}.${mac}`;
      },
      unauthenticated: 'INVALID_TOKEN',
    },
    {
      name: 'JWT wrong aud',
      authorization: async () =>
        `Bearer ${await jwks.sign({ aud: 'someone-else', scope: 'ingest read admin' })}`,
      unauthenticated: 'INVALID_TOKEN',
    },
    {
      name: 'JWT wrong iss',
      authorization: async () =>
        `Bearer ${await jwks.sign({ iss: 'https://evil.test', scope: 'ingest read admin' })}`,
      unauthenticated: 'INVALID_TOKEN',
    },
    {
      name: 'JWT expired',
      authorization: async () => `Bearer ${await jwks.sign({ exp: now - 120, scope: 'ingest read admin' })}`,
      unauthenticated: 'INVALID_TOKEN',
    },
    {
      name: 'JWT not yet valid',
      authorization: async () => `Bearer ${await jwks.sign({ nbf: now + 600, scope: 'ingest read admin' })}`,
      unauthenticated: 'INVALID_TOKEN',
    },
    {
      name: 'JWT unknown kid',
      authorization: async () =>
        `Bearer ${await jwks.sign({ scope: 'ingest read admin' }, { kid: 'unknown', key: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey })}`,
      unauthenticated: 'INVALID_TOKEN',
    },
    {
      name: "JWT writing another user's events",
      authorization: async () => `Bearer ${await jwks.sign({ sub: 'user-2', scope: 'ingest read' })}`,
      scopes: ['ingest', 'read'],
      writeRefusal: 'OTHER_USER',
    },
  ];
}

/** What `c` must get on a route needing `scope` (undefined: it is let in). */
function expected(
  c: Case,
  scope: Scope | 'authenticated' | undefined,
  writes: boolean,
): { status: number; reason: string } | undefined {
  if (c.unauthenticated) return { status: 401, reason: c.unauthenticated };
  if (scope === undefined) return { status: 403, reason: 'INSUFFICIENT_SCOPE' };
  if (scope !== 'authenticated' && !c.scopes!.includes(scope))
    return { status: 403, reason: 'INSUFFICIENT_SCOPE' };
  if (writes && c.writeRefusal) return { status: 403, reason: c.writeRefusal };
  return undefined;
}

const GRPC_STATUS: Record<number, Code> = { 401: Code.UNAUTHENTICATED, 403: Code.PERMISSION_DENIED };

/**
 * The matrix: every refused case on every REST route, gRPC method and the WebSocket; then the log
 * holds no event more than before, and the right credentials are let in.
 */
export async function runAccessMatrix(target: AccessTarget, keys: MatrixKeys): Promise<void> {
  const cases = refusedCases(target);
  const before = await target.logEnd();
  const problems: string[] = [];
  for (const c of cases) {
    for (const route of restRoutes()) {
      const namesUser = JSON.stringify(route.body ?? '').includes('user-1');
      const want = expected(c, route.scope, route.writes && namesUser);
      if (!want) continue; // let in: the positive cases below write on purpose
      const authorization = await c.authorization(keys);
      const body =
        c.writeRefusal && route.body !== undefined
          ? JSON.parse(JSON.stringify(route.body).replaceAll('user-1', 'user-3'))
          : route.body;
      const answer = await rest(target.httpPort, route.verb, route.path, {
        body,
        headers: authorization ? { authorization } : {},
      });
      const reason = reasonOf(answer.json);
      if (answer.status !== want.status || reason !== want.reason)
        problems.push(
          `REST ${route.name} with ${c.name}: ${answer.status} ${reason}, want ${want.status} ${want.reason}`,
        );
      if (answer.status === 401 && answer.headers.get('www-authenticate')?.startsWith('Bearer') !== true)
        problems.push(`REST ${route.name} with ${c.name}: 401 without WWW-Authenticate: Bearer`);
      const text = JSON.stringify(answer.json);
      const secret = authorization?.split(' ')[1];
      if (secret && secret.length > 8 && text.includes(secret))
        problems.push(`REST ${route.name} with ${c.name}: the answer repeats the credential`);
    }
    for (const { service, method, scope } of grpcMethods()) {
      const writes = service.typeName === IngestService.typeName;
      const want = expected(c, scope, writes);
      if (!want) continue;
      const authorization = await c.authorization(keys);
      const answer = await callGrpc(target.grpcPort, service, method, authorization ? { authorization } : {});
      if (c.writeRefusal && writes) continue; // its sample names user-1: see the dedicated case below
      if (answer.code !== GRPC_STATUS[want.status] || answer.reason !== want.reason)
        problems.push(
          `gRPC ${service.typeName}/${method.name} with ${c.name}: ${answer.code} ${answer.reason}, want ${GRPC_STATUS[want.status]} ${want.reason}`,
        );
    }
    const ws = await openStream(target.httpPort, await c.authorization(keys));
    const wsWant = expected(c, 'read', false);
    if (wsWant && ws.status !== wsWant.status)
      problems.push(
        `WebSocket with ${c.name}: ${ws.status ?? `close ${ws.closeCode}`}, want ${wsWant.status}`,
      );
    if (!wsWant && ws.status !== 101) problems.push(`WebSocket with ${c.name}: ${ws.status}, want 101`);
  }
  // A token writing another user's events over gRPC.
  const other = `Bearer ${await target.jwks.sign({ sub: 'user-2', scope: 'ingest' })}`;
  for (const method of IngestService.methods) {
    const answer = await callGrpc(target.grpcPort, IngestService, method, { authorization: other });
    if (answer.code !== Code.PERMISSION_DENIED || answer.reason !== 'OTHER_USER')
      problems.push(
        `gRPC ${method.name} for another user: ${answer.code} ${answer.reason}, want PERMISSION_DENIED OTHER_USER`,
      );
  }
  // The browser key: another origin, another type.
  const browser = { authorization: `Bearer ${keys.browser}` };
  for (const [what, headers, body, reason] of [
    [
      'another origin',
      { ...browser, origin: 'https://evil.test' },
      { type: 'like', target: 'auth/b' },
      'ORIGIN_NOT_ALLOWED',
    ],
    [
      'another type',
      { ...browser, origin: 'https://shop.test' },
      { type: 'purchase', target: 'auth/b' },
      'EVENT_TYPE_NOT_ALLOWED',
    ],
  ] as const) {
    const answer = await rest(target.httpPort, 'POST', '/v1/events', { body, headers });
    if (answer.status !== 403 || reasonOf(answer.json) !== reason)
      problems.push(`ingest key from ${what}: ${answer.status} ${reasonOf(answer.json)}, want 403 ${reason}`);
  }
  assert.deepEqual(problems, [], problems.join('\n'));
  assert.equal(await target.logEnd(), before, 'a refused request reached the event log');

  // The right credentials are let in, on every route and method.
  const right: Record<string, string> = {
    ingest: keys.ingest,
    read: keys.read,
    admin: target.adminKey,
    authenticated: keys.read,
  };
  for (const route of restRoutes()) {
    const answer = await rest(target.httpPort, route.verb, route.path, {
      body: route.body,
      headers: bearer(right[route.scope!]!),
    });
    const ok = answer.status === 200 || (answer.status === 404 && route.path.includes('NOSUCHID'));
    assert.ok(ok, `REST ${route.name} with its scope: ${answer.status} ${JSON.stringify(answer.json)}`);
  }
  for (const { service, method, scope } of grpcMethods()) {
    const answer = await callGrpc(target.grpcPort, service, method, bearer(right[scope!]!));
    const ok =
      answer.code === Code.OK ||
      (answer.code === Code.NOT_FOUND &&
        (service === KeysService ||
          service === AlertService ||
          service === DestinationService ||
          service === ProjectionService ||
          service === EntityService));
    assert.ok(ok, `gRPC ${method.name} with its scope: ${answer.code} ${answer.reason}`);
  }
  // The destinations the samples made, deleted with their topics.
  const listed = await rest(target.httpPort, 'GET', '/v1/destinations', { headers: bearer(target.adminKey) });
  for (const { id } of (listed.json.destinations ?? []) as { id: string }[]) {
    const gone = await rest(target.httpPort, 'DELETE', `/v1/destinations/${id}`, {
      headers: bearer(target.adminKey),
    });
    assert.equal(gone.status, 200, JSON.stringify(gone.json));
  }
  // Basic authentication (the key as user name), the body's api_key, a JWT with its own user.
  const basic = `Basic ${Buffer.from(`${keys.ingest}:`).toString('base64')}`;
  const event = { type: 'like', target: 'auth/ok' };
  assert.equal(
    (await rest(target.httpPort, 'POST', '/v1/events', { body: event, headers: { authorization: basic } }))
      .status,
    200,
  );
  assert.equal(
    (await rest(target.httpPort, 'POST', '/v1/events', { body: { ...event, api_key: keys.browser } })).status,
    200,
  );
  assert.equal(
    (
      await rest(target.httpPort, 'POST', '/v1/events', {
        body: { ...event, type: 'view', api_key: keys.browser },
        headers: { origin: 'https://shop.test' },
      })
    ).status,
    200,
  );
  const token = await target.jwks.sign({ sub: 'user-9', scope: 'ingest read' });
  assert.equal(
    (await rest(target.httpPort, 'POST', '/v1/events', { body: event, headers: bearer(token) })).status,
    200,
  );
  // An end user's token lists its own events only (domain/event-access.ts).
  for (const [path, status, field] of [
    ['/v1/events?user=me', 200, undefined],
    ['/v1/events?user=user-9', 200, undefined],
    ['/v1/events?user=user-1', 403, 'user'],
    ['/v1/events?target=auth/ok', 403, 'target'],
  ] as const) {
    const answer = await rest(target.httpPort, 'GET', path, { headers: bearer(token) });
    assert.equal(answer.status, status, `${path}: ${JSON.stringify(answer.json)}`);
    if (field) {
      assert.equal(reasonOf(answer.json), 'OTHER_USER', path);
      assert.equal((answer.json as { error?: { field?: string } }).error?.field, field, path);
    }
  }
  // An end user's token reads its own user's aggregates, not another's; a target's, as its counters.
  const aggregates = (path: string) =>
    rest(target.httpPort, 'GET', `${path}/aggregates?type=like&windows=1h`, { headers: bearer(token) });
  assert.equal((await aggregates('/v1/users/user-9')).status, 200);
  const otherUser = await aggregates('/v1/users/user-2');
  assert.equal(otherUser.status, 403, JSON.stringify(otherUser.json));
  assert.match(JSON.stringify(otherUser.json), /user-9/);
  assert.equal((await aggregates('/v1/targets/auth%2Fok')).status, 200);
  // It ranks targets, not users.
  const top = (of: string) =>
    rest(target.httpPort, 'GET', `/v1/aggregates/top?type=like&window=1h&of=${of}`, {
      headers: bearer(token),
    });
  assert.equal((await top('target')).status, 200);
  const users = await top('user');
  assert.equal(users.status, 403, JSON.stringify(users.json));
  assert.match(JSON.stringify(users.json), /may not rank other users/);
  const ws = await openStream(target.httpPort, `Bearer ${token}`);
  assert.equal(ws.status, 101);
  assert.ok(ws.hello, 'an accepted socket gets its hello');
  assert.ok((await target.logEnd()) > before, 'the accepted events reached the log');
}

/**
 * Opens `/v1/stream` with `authorization` as the subprotocol `bearer.<credential>` (none: no
 * credential, then waits for the server to close the socket); resolves with the handshake's status,
 * whether a hello came, and the close code if the server closed it.
 */
export function openStream(
  httpPort: number,
  authorization: string | undefined,
  options: { firstMessage?: boolean; keepOpen?: boolean } = {},
): Promise<{ status?: number; hello: boolean; closeCode?: number; ws?: WebSocket }> {
  const credential = authorization?.replace(/^Bearer /, '');
  const useProtocol =
    credential !== undefined && !options.firstMessage && /^[A-Za-z0-9._~-]+$/.test(credential);
  const protocols = useProtocol ? ['tally.v1', `bearer.${credential}`] : undefined;
  const headers =
    credential !== undefined && !useProtocol && !options.firstMessage
      ? { authorization: authorization! }
      : undefined;
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/v1/stream`, protocols, { headers });
    let hello = false;
    let status: number | undefined;
    ws.on('unexpected-response', (_request, response) => {
      resolve({ status: response.statusCode, hello });
      response.resume();
      ws.terminate();
    });
    ws.on('upgrade', () => {
      status = 101;
    });
    ws.on('open', () => {
      if (options.firstMessage && credential) ws.send(JSON.stringify({ channel: 'auth', token: credential }));
    });
    ws.on('message', (data) => {
      if (String(data).includes('"hello"')) {
        hello = true;
        if (options.keepOpen) resolve({ status, hello, ws });
        else ws.close();
      }
    });
    ws.on('close', (code) =>
      resolve({ status: code === 4401 ? 401 : code === 4403 ? 403 : status, hello, closeCode: code }),
    );
    ws.on('error', () => {});
  });
}
