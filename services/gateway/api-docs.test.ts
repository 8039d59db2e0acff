/**
 * The gateway serves the API description: /openapi.json is the committed
 * document (ETag, 304, gzip), /docs is a page whose every file comes from the
 * gateway itself, and each operation of the document reaches a handler (no
 * "no route" 404, no 405), while a path outside it does not.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { create, type DescService } from '@bufbuild/protobuf';
import { AlertService } from '../gen/tally/v1/alerts_pb.js';
import { DestinationService } from '../gen/tally/v1/destinations_pb.js';
import { EntityService, ProjectionService } from '../gen/tally/v1/entities_pb.js';
import { EventLogService } from '../gen/tally/v1/event_log_pb.js';
import { IngestService } from '../gen/tally/v1/ingest_pb.js';
import { KeysService } from '../gen/tally/v1/keys_pb.js';
import { NotificationService } from '../gen/tally/v1/notifications_pb.js';
import { QueryService } from '../gen/tally/v1/query_pb.js';
import { createLogger } from '../infra/logger.ts';
import { OPENAPI_FILE } from './api-docs.ts';
import { type Gateway, type GatewayDeps, start } from './gateway.ts';

/** A client of `service` that answers every call with an empty response. */
function emptyClient(service: DescService): never {
  const methods = new Map(service.methods.map((m) => [m.localName, m]));
  return new Proxy({}, { get: (_, name) => async () => create(methods.get(String(name))!.output) }) as never;
}

async function startGateway() {
  const deps: GatewayDeps = {
    ingest: emptyClient(IngestService),
    query: emptyClient(QueryService),
    keys: emptyClient(KeysService),
    alerts: emptyClient(AlertService),
    notifications: emptyClient(NotificationService),
    destinations: emptyClient(DestinationService),
    projections: emptyClient(ProjectionService),
    entities: emptyClient(EntityService),
    events: emptyClient(EventLogService),
    logger: createLogger('error'),
  };
  const gateway: Gateway = await start(deps, {
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1024 * 1024,
    requestTimeoutMs: 5_000,
    drainTimeoutMs: 2_000,
  });
  return { gateway, base: `http://127.0.0.1:${gateway.port}` };
}

const committed = readFileSync(OPENAPI_FILE);

test('/openapi.json: the committed document, revalidated by ETag, gzipped on request', async (t) => {
  const { gateway, base } = await startGateway();
  t.after(() => gateway.stop());

  const plain = await fetch(`${base}/openapi.json`, { headers: { 'accept-encoding': 'identity' } });
  assert.equal(plain.status, 200);
  assert.equal(plain.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(plain.headers.get('cache-control'), 'no-cache');
  assert.equal(plain.headers.get('content-encoding'), null);
  assert.deepEqual(Buffer.from(await plain.arrayBuffer()), committed);
  const etag = plain.headers.get('etag')!;
  assert.match(etag, /^"[\w-]{22}"$/);

  const again = await fetch(`${base}/openapi.json`, {
    headers: { 'accept-encoding': 'identity', 'if-none-match': etag },
  });
  assert.equal(again.status, 304);
  assert.equal((await again.arrayBuffer()).byteLength, 0);

  // node's fetch would decompress silently: read the raw bytes with a plain request.
  const { request } = await import('node:http');
  const raw = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
    request(`${base}/openapi.json`, { headers: { 'accept-encoding': 'gzip' } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => resolve({ headers: response.headers, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
  assert.equal(raw.headers['content-encoding'], 'gzip');
  assert.equal(raw.headers.vary, 'accept-encoding');
  assert.notEqual(raw.headers.etag, etag, 'each encoding has its own ETag');
  assert.deepEqual(gunzipSync(raw.body), committed);

  const head = await fetch(`${base}/openapi.json`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  const post = await fetch(`${base}/openapi.json`, { method: 'POST', body: '{}' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
});

test('/docs: a page that loads only the gateway’s own files, under a self-only policy', async (t) => {
  const { gateway, base } = await startGateway();
  t.after(() => gateway.stop());

  const page = await fetch(`${base}/docs`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  const csp = page.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/);
  for (const directive of csp.split(';').map((d) => d.trim())) {
    const sources = directive.split(/\s+/).slice(1);
    assert.ok(
      sources.every((s) => ["'self'", "'none'", 'data:'].includes(s)),
      `${directive} allows only this origin`,
    );
  }
  const html = await page.text();
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'no remote file');
  const links = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  assert.ok(links.some((l) => l.startsWith('/docs/assets/swagger-ui-bundle.js?v=')));
  for (const link of links) {
    const asset = await fetch(`${base}${link}`);
    assert.equal(asset.status, 200, link);
    assert.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable', link);
    await asset.arrayBuffer();
  }
  const init = await (await fetch(`${base}/docs/assets/api-docs.js`)).text();
  assert.match(init, /url: '\/openapi\.json'/);
  assert.match(init, /validatorUrl: null/);
  assert.equal((await fetch(`${base}/docs/`)).status, 200);
  const missing = await fetch(`${base}/docs/assets/nothing.js`);
  assert.equal(missing.status, 404);
});

test('every operation of the document reaches a handler; a path outside it is 404', async (t) => {
  const { gateway, base } = await startGateway();
  t.after(() => gateway.stop());
  const document = JSON.parse(committed.toString('utf8')) as {
    paths: Record<string, Record<string, { requestBody?: unknown }>>;
  };
  let checked = 0;
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [verb, operation] of Object.entries(item)) {
      const response = await fetch(`${base}${path}`, {
        method: verb.toUpperCase(),
        ...(operation.requestBody ? { body: '{}', headers: { 'content-type': 'application/json' } } : {}),
      });
      const text = await response.text();
      assert.ok(
        response.status < 500 || path === '/v1/stream',
        `${verb} ${path}: ${response.status} ${text}`,
      );
      assert.notEqual(response.status, 405, `${verb} ${path}: ${text}`);
      assert.doesNotMatch(text, /no route for/, `${verb} ${path}`);
      checked++;
    }
  }
  assert.ok(checked >= 14, `${checked} operations`);
  const outside = await fetch(`${base}/v1/not-documented`);
  assert.equal(outside.status, 404);
  assert.match(await outside.text(), /no route for GET \/v1\/not-documented/);
});
