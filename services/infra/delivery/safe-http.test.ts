import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { createSafeHttp, type SafeHttpOptions } from './safe-http.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A server on 127.0.0.1 that counts requests and connections. */
async function localServer(t: { after(fn: () => unknown): void }, handler: Handler) {
  const seen = { requests: 0, connections: 0, closed: 0 };
  const server: Server = createServer((req, res) => {
    seen.requests++;
    handler(req, res);
  });
  server.on('connection', (socket) => {
    seen.connections++;
    socket.on('close', () => seen.closed++);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function client(t: { after(fn: () => unknown): void }, options: SafeHttpOptions = {}) {
  const http = createSafeHttp(options);
  t.after(() => http.close());
  return http;
}

/** A resolver answering from a table, as dns.lookup does. */
function fakeDns(table: Record<string, string[]>) {
  return ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    const addresses = table[hostname];
    if (!addresses) {
      const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
      return callback(error);
    }
    const all = addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    if (options.all) callback(null, all);
    else callback(null, all[0]!.address, all[0]!.family);
  }) as never;
}

const ok: Handler = (_req, res) => res.end('ok');
const LOOPBACK = ['127.0.0.1/32'];

describe('safe HTTP: the allow-list and the connect-time check', () => {
  test('a local server is refused without the allow-list and reached with it', async (t) => {
    const { url, seen } = await localServer(t, ok);
    const refused = await client(t).send({ url, allowPlainHttp: true });
    assert.equal(refused.kind, 'refused');
    assert.match((refused as { reason: string }).reason, /127\.0\.0\.1 is loopback/);
    const allowed = await client(t, { allowList: LOOPBACK }).send({ url, allowPlainHttp: true, body: '{}' });
    assert.equal(allowed.kind, 'response');
    assert.equal((allowed as { status: number }).status, 200);
    assert.equal(seen.requests, 1, 'only the allowed request reached the server');
  });

  test('plain http is refused unless the destination allows it', async (t) => {
    const { url, seen } = await localServer(t, ok);
    const result = await client(t, { allowList: LOOPBACK }).send({ url });
    assert.deepEqual(
      { kind: result.kind, reason: (result as { reason: string }).reason },
      { kind: 'refused', reason: 'plain http is not allowed for this destination (use https)' },
    );
    assert.equal(seen.requests, 0);
  });

  test('the legacy forms of 127.0.0.1 all reach the server only with the allow-list', async (t) => {
    const { url, seen } = await localServer(t, ok);
    const port = new URL(url).port;
    const forms = [
      '2130706433',
      '0177.0.0.1',
      '0x7f.1',
      '127.1',
      '127.0.0.1.',
      '[::ffff:127.0.0.1]',
      '[::ffff:7f00:1]',
    ];
    const denied = client(t);
    const allowed = client(t, { allowList: LOOPBACK });
    for (const form of forms) {
      const target = `http://${form}:${port}/`;
      assert.equal((await denied.send({ url: target, allowPlainHttp: true })).kind, 'refused', form);
    }
    assert.equal(seen.connections, 0, 'nothing connected');
    // IPv4-mapped forms reach 127.0.0.1 over IPv6 when the host has it; the IPv4 forms always do.
    for (const form of forms.slice(0, 5)) {
      const result = await allowed.send({ url: `http://${form}:${port}/`, allowPlainHttp: true });
      assert.equal(result.kind, 'response', form);
    }
  });

  test('a name is checked on every address it resolves to, at connect time', async (t) => {
    const { url, seen } = await localServer(t, ok);
    const port = new URL(url).port;
    const lookup = fakeDns({
      'hooks.example.test': ['127.0.0.1'],
      'mixed.example.test': ['8.8.8.8', '10.1.2.3'],
      'mapped.example.test': ['::ffff:169.254.169.254'],
      'metadata.example.test': ['169.254.169.254'],
    });
    const http = client(t, { lookup });
    // The URL names no address: only the resolved one tells, and it is refused before connecting.
    for (const [name, address] of [
      ['hooks.example.test', '127.0.0.1'],
      ['mixed.example.test', '10.1.2.3'],
      ['mapped.example.test', '::ffff:169.254.169.254'],
      ['metadata.example.test', '169.254.169.254'],
    ]) {
      const result = await http.send({ url: `https://${name}:${port}/`, allowPlainHttp: true });
      assert.equal(result.kind, 'refused', name);
      assert.ok((result as { reason: string }).reason.startsWith(`${name} resolves to ${address}: `), name);
    }
    // With the allow-list, the same name reaches the server.
    const allowed = client(t, { lookup, allowList: LOOPBACK });
    const result = await allowed.send({ url: `http://hooks.example.test:${port}/`, allowPlainHttp: true });
    assert.equal(result.kind, 'response');
    assert.equal(seen.requests, 1);
  });

  test('DNS rebinding: a name public when checked and loopback when dialled is refused when dialled', async (t) => {
    const { url, seen } = await localServer(t, ok);
    const port = new URL(url).port;
    let answers = 0;
    // The first resolution (e.g. when the destination was saved) says public, the next loopback.
    const lookup = ((
      _hostname: string,
      options: { all?: boolean },
      callback: (...args: unknown[]) => void,
    ) => {
      const address = answers++ === 0 ? '93.184.216.34' : '127.0.0.1';
      if (options.all) callback(null, [{ address, family: 4 }]);
      else callback(null, address, 4);
    }) as never;
    (lookup as (h: string, o: object, cb: () => void) => void)('rebind.example.test', {}, () => {});
    const result = await client(t, { lookup }).send({
      url: `http://rebind.example.test:${port}/`,
      allowPlainHttp: true,
    });
    assert.equal(result.kind, 'refused');
    assert.match((result as { reason: string }).reason, /resolves to 127\.0\.0\.1/);
    assert.equal(seen.connections, 0);
  });

  test('localhost and *.localhost are refused without asking the resolver', async (t) => {
    let asked = 0;
    const lookup = ((_h: string, _o: object, callback: (...args: unknown[]) => void) => {
      asked++;
      callback(null, [{ address: '8.8.8.8', family: 4 }]);
    }) as never;
    const http = client(t, { lookup, allowList: LOOPBACK });
    for (const url of ['http://localhost:1/', 'http://api.localhost:1/', 'http://LOCALHOST.:1/']) {
      const result = await http.send({ url, allowPlainHttp: true });
      assert.equal(result.kind, 'refused', url);
    }
    assert.equal(asked, 0);
  });
});

describe('safe HTTP: responses', () => {
  test('a redirect to the metadata service is answered as it is, not followed', async (t) => {
    let metadataAsked = 0;
    const { url } = await localServer(t, (req, res) => {
      if (req.url === '/latest/meta-data/') metadataAsked++;
      res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
    });
    const result = await client(t, { allowList: LOOPBACK }).send({
      url: `${url}/hook`,
      allowPlainHttp: true,
    });
    assert.equal(result.kind, 'response');
    assert.equal((result as { status: number }).status, 302);
    assert.equal(
      (result as { headers: Record<string, unknown> }).headers.location,
      'http://169.254.169.254/latest/meta-data/',
    );
    assert.equal(metadataAsked, 0);
  });

  test('a large body is read up to the bound, then the connection is dropped', async (t) => {
    let serverSawClose = false;
    const { url } = await localServer(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      // An endless body: without the bound the read would never end.
      const chunk = Buffer.alloc(16 * 1024, 'x');
      const pump = () => {
        while (res.write(chunk));
      };
      res.on('drain', pump);
      res.on('close', () => {
        serverSawClose = true;
      });
      pump();
    });
    const result = await client(t, { allowList: LOOPBACK, maxResponseBytes: 64 * 1024 }).send({
      url,
      allowPlainHttp: true,
    });
    assert.equal(result.kind, 'response');
    if (result.kind !== 'response') return;
    assert.equal(result.body.length, 64 * 1024);
    assert.equal(result.truncated, true);
    const until = Date.now() + 5_000;
    while (!serverSawClose && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.ok(serverSawClose, 'the server saw the connection closed');
  });

  test('a small body is kept whole; connections are reused per origin', async (t) => {
    const { url, seen } = await localServer(t, (req, res) => {
      let text = '';
      req.on('data', (c) => {
        text += c;
      });
      req.on('end', () => res.end(`got ${text}`));
    });
    const http = client(t, { allowList: LOOPBACK });
    for (let i = 0; i < 20; i++) {
      const result = await http.send({ url, allowPlainHttp: true, body: `n${i}` });
      assert.equal(result.kind === 'response' && result.body.toString(), `got n${i}`);
      assert.equal(result.kind === 'response' && result.truncated, false);
    }
    assert.equal(seen.requests, 20);
    // The pool may open a second connection while the first finishes a response; no more.
    assert.ok(seen.connections <= 2, `${seen.connections} connections for 20 requests`);
  });

  test('a server that never answers times out on headers; a refused port fails to connect', async (t) => {
    const { url } = await localServer(t, () => {});
    const http = client(t, { allowList: LOOPBACK, headersTimeoutMs: 200 });
    const slow = await http.send({ url, allowPlainHttp: true });
    assert.equal(slow.kind, 'failed');
    assert.equal((slow as { failure: string }).failure, 'timeout');
    // Nothing listens on a port once its server has closed.
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const freePort = (probe.address() as AddressInfo).port;
    probe.close();
    await once(probe, 'close');
    const refused = await http.send({ url: `http://127.0.0.1:${freePort}/`, allowPlainHttp: true });
    assert.equal(refused.kind, 'failed');
    assert.equal((refused as { failure: string }).failure, 'connect');
    assert.match((refused as { message: string }).message, /ECONNREFUSED/);
  });

  test('the total deadline bounds a body that trickles in', async (t) => {
    const { url } = await localServer(t, (_req, res) => {
      res.writeHead(200);
      const timer = setInterval(() => res.write('.'), 20);
      res.on('close', () => clearInterval(timer));
    });
    const http = client(t, { allowList: LOOPBACK, totalTimeoutMs: 300 });
    const result = await http.send({ url, allowPlainHttp: true });
    // The status came before the deadline: it stands, and the body is cut short.
    assert.equal(result.kind, 'response');
    assert.equal(result.kind === 'response' && result.truncated, true);
  });
});
