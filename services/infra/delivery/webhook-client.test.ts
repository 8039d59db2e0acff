import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { selfSignedCertificate } from '../../testing/self-signed.ts';
import { breakerSignalOf, createWebhookClient, type WebhookClientOptions } from './webhook-client.ts';
import { generateSecret } from './webhook-signature.ts';

interface Received {
  method: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A receiver on 127.0.0.1 answering with `respond`, keeping what it received. */
async function receiver(
  t: { after(fn: () => unknown): void },
  respond: (req: IncomingMessage, res: ServerResponse, body: string) => void,
) {
  const received: Received[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      received.push({ method: req.method!, headers: req.headers, body });
      respond(req, res, body);
    });
  });
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/T0SECRET/B0TOKEN?sig=QUERYTOKEN`,
    received,
    connections: () => connections,
  };
}

function client(t: { after(fn: () => unknown): void }, options: Partial<WebhookClientOptions> = {}) {
  const c = createWebhookClient({ version: '9.8.7', allowList: ['127.0.0.1/32'], ...options });
  t.after(() => c.close());
  return c;
}

const body = JSON.stringify({ id: 'ev-1', type: 'like', user_id: 'u-1', target: 'post/1' });

describe('webhook client', () => {
  test('delivers a signed JSON POST the standardwebhooks library verifies, with every secret of a rotation', async (t) => {
    const server = await receiver(t, (_req, res) => res.writeHead(204).end());
    const secrets = [generateSecret(), generateSecret()];
    const outcome = await client(t).deliver({
      url: server.url,
      secrets,
      id: 'msg_ev-1',
      body,
      allowPlainHttp: true,
    });
    assert.equal(outcome.kind, 'delivered');
    assert.equal(outcome.kind === 'delivered' && outcome.status, 204);
    assert.ok(outcome.latencyMs >= 0);
    const [got] = server.received;
    assert.equal(got?.method, 'POST');
    assert.equal(got?.headers['content-type'], 'application/json');
    assert.equal(got?.headers['user-agent'], 'Tally-Webhooks/9.8.7');
    assert.equal(got?.headers['webhook-id'], 'msg_ev-1');
    assert.equal(got?.body, body);
    for (const secret of secrets)
      assert.deepEqual(
        new Webhook(secret).verify(got!.body, got!.headers as Record<string, string>),
        JSON.parse(body),
      );
  });

  test('statuses become outcomes: retry, dead, gone; Retry-After seconds and dates honoured', async (t) => {
    const now = new Date('2026-03-01T12:00:00Z');
    const server = await receiver(t, (req, res) => {
      const status = Number(new URL(req.url!, 'http://x').searchParams.get('status'));
      const headers: Record<string, string> = {};
      if (status === 429) headers['retry-after'] = '120';
      if (status === 503) headers['retry-after'] = new Date(now.getTime() + 90_000).toUTCString();
      if (status === 301) headers.location = 'http://169.254.169.254/';
      res.writeHead(status, headers).end(status === 500 ? 'database is down\n  try later' : '');
    });
    const c = client(t, { now: () => now });
    const secrets = [generateSecret()];
    const deliver = (status: number) =>
      c.deliver({
        url: `${server.url.split('?')[0]}?status=${status}`,
        secrets,
        id: 'msg_1',
        body,
        allowPlainHttp: true,
      });
    const summary = async (status: number) => {
      const o = await deliver(status);
      const { latencyMs: _, ...rest } = o;
      return rest;
    };
    assert.deepEqual(await summary(200), { kind: 'delivered', status: 200 });
    assert.deepEqual(await summary(202), { kind: 'delivered', status: 202 });
    assert.deepEqual(await summary(500), {
      kind: 'retry',
      status: 500,
      error: 'HTTP 500: "database is down try later"',
    });
    assert.deepEqual(await summary(429), {
      kind: 'retry',
      status: 429,
      error: 'HTTP 429',
      retryAfterMs: 120_000,
    });
    assert.deepEqual(await summary(503), {
      kind: 'retry',
      status: 503,
      error: 'HTTP 503',
      retryAfterMs: 90_000,
    });
    for (const status of [408, 425, 502, 504])
      assert.equal((await deliver(status)).kind, 'retry', String(status));
    assert.deepEqual(await summary(410), { kind: 'gone', status: 410, error: 'HTTP 410' });
    assert.deepEqual(await summary(301), {
      kind: 'dead',
      status: 301,
      error: 'HTTP 301: redirects are not followed',
    });
    for (const status of [400, 401, 403, 404, 413, 422])
      assert.equal((await deliver(status)).kind, 'dead', String(status));
    assert.equal(server.received.filter((r) => r.headers.host?.startsWith('169.254')).length, 0);
  });

  test('timeouts and refused connections are retried; a refused address is dead; errors hold no secrets', async (t) => {
    const silent = await receiver(t, () => {});
    const secret = generateSecret();
    const c = client(t, { headersTimeoutMs: 200 });
    const timeout = await c.deliver({
      url: silent.url,
      secrets: [secret],
      id: 'msg_1',
      body,
      allowPlainHttp: true,
    });
    assert.equal(timeout.kind, 'retry');
    assert.equal(timeout.kind === 'retry' && timeout.failure, 'timeout');
    assert.equal(breakerSignalOf(timeout), 'timeout');

    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    probe.close();
    await once(probe, 'close');
    const down = await c.deliver({
      url: `http://127.0.0.1:${port}/hooks/T0SECRET?sig=QUERYTOKEN`,
      secrets: [secret],
      id: 'msg_1',
      body,
      allowPlainHttp: true,
    });
    assert.equal(down.kind, 'retry');
    assert.equal(down.kind === 'retry' && down.failure, 'connect');
    assert.equal(breakerSignalOf(down), 'failure');

    const refused = await client(t, { allowList: [] }).deliver({
      url: silent.url,
      secrets: [secret],
      id: 'msg_1',
      body,
      allowPlainHttp: true,
    });
    assert.equal(refused.kind, 'dead');
    assert.equal(refused.kind === 'dead' && refused.refused, true);
    assert.match(refused.error!, /^refused: address 127\.0\.0\.1 is loopback/);

    for (const outcome of [timeout, down, refused]) {
      const text = JSON.stringify(outcome);
      for (const secretPart of [secret, secret.slice(6), 'T0SECRET', 'B0TOKEN', 'QUERYTOKEN', 'v1,'])
        assert.ok(!text.includes(secretPart), `${text} holds ${secretPart}`);
    }
  });

  test('keeps connections alive across deliveries to one origin; each delivery signs afresh', async (t) => {
    const server = await receiver(t, (_req, res) => res.end('ok'));
    const c = client(t);
    const secrets = [generateSecret()];
    for (let i = 0; i < 20; i++)
      assert.equal(
        (await c.deliver({ url: server.url, secrets, id: `msg_${i}`, body, allowPlainHttp: true })).kind,
        'delivered',
      );
    assert.ok(server.connections() <= 2, `${server.connections()} connections for 20 deliveries`);
    assert.deepEqual(
      server.received.map((r) => r.headers['webhook-id']),
      Array.from({ length: 20 }, (_, i) => `msg_${i}`),
    );
  });

  test('over HTTPS: delivered when the certificate is trusted, retried on a TLS failure', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-webhook-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const certFile = await selfSignedCertificate(dir);
    const ca = readFileSync(certFile, 'utf8');
    const received: string[] = [];
    const server = createHttpsServer({ cert: ca, key: readFileSync(join(dir, 'key.pem')) }, (req, res) => {
      let text = '';
      req.on('data', (c) => {
        text += c;
      });
      req.on('end', () => {
        received.push(text);
        res.writeHead(200).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => {
      server.closeAllConnections();
      server.close();
    });
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const secrets = [generateSecret()];
    const trusted = await client(t, { ca }).deliver({ url, secrets, id: 'msg_tls', body });
    assert.equal(trusted.kind, 'delivered');
    const untrusted = await client(t).deliver({ url, secrets, id: 'msg_tls', body });
    assert.equal(untrusted.kind, 'retry');
    assert.equal(untrusted.kind === 'retry' && untrusted.failure, 'tls');
    const refused = await client(t, { ca, allowList: [] }).deliver({ url, secrets, id: 'msg_tls', body });
    assert.equal(refused.kind, 'dead');
    assert.deepEqual(received, [body]);
  });

  test('breaker signals: responses the receiver chose count for it, 5xx and network failures against', () => {
    assert.equal(breakerSignalOf({ kind: 'delivered', status: 200, latencyMs: 1 }), 'success');
    assert.equal(breakerSignalOf({ kind: 'dead', status: 404, latencyMs: 1 }), 'success');
    assert.equal(breakerSignalOf({ kind: 'retry', status: 503, latencyMs: 1 }), 'failure');
    assert.equal(breakerSignalOf({ kind: 'gone', status: 410, latencyMs: 1 }), 'failure');
  });
});
