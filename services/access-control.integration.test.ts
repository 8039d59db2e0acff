/**
 * Access control on the real servers: the contract's matrix (access-control.contract.ts) over
 * every REST route, gRPC method and the WebSocket of a `tally all` with access control on; a JWKS
 * rotated while Tally uses it; a key revoked through the admin API refused by two gateways sharing
 * Redis and PostgreSQL within 5 s, its open WebSocket closed with 4401; and no key or token in
 * any process's log or in the spans the matrix's process exported.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import {
  type AccessTarget,
  jwtEnv,
  type MatrixKeys,
  makeKeys,
  newSecretKey,
  openStream,
  reasonOf,
  rest,
  runAccessMatrix,
  startTestJwks,
  type TestJwks,
} from './access-control.contract.ts';
import {
  realServers,
  requireRealServers,
  type TestNamespace,
  testNamespace,
} from './testing/real-servers.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

/** An OTLP/HTTP JSON receiver keeping each export's body as received, for the credential grep. */
async function startSpanReceiver() {
  const bodies: string[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => {
      bodies.push(body);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { bodies, port: (server.address() as AddressInfo).port, close: () => server.close() };
}

let spans: Awaited<ReturnType<typeof startSpanReceiver>>;
let ns: TestNamespace;
let jwks: TestJwks;
let adminKey: string;
const processes: TallyProcess[] = [];
const secrets: string[] = [];

async function logEnd(): Promise<bigint> {
  const admin = new Kafka({
    brokers: realServers.kafkaBrokers.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(ns.eventsTopic);
    return offsets.reduce((sum, o) => sum + BigInt(o.high), 0n);
  } finally {
    await admin.disconnect();
  }
}

function env(): Record<string, string> {
  return { ...ns.env, TALLY_AUTH: 'on', TALLY_BOOTSTRAP_ADMIN_KEY: adminKey, ...jwtEnv(jwks) };
}

before(async () => {
  await requireRealServers();
  ns = testNamespace(2);
  jwks = await startTestJwks();
  spans = await startSpanReceiver();
  adminKey = newSecretKey();
  secrets.push(adminKey);
});

after(async () => {
  await Promise.all(processes.map((p) => p.kill('SIGTERM')));
  await jwks?.close();
  spans?.close();
});

let keys: MatrixKeys;

test('the authorization matrix: every route, method and the stream, refused and let in as the credential says', async () => {
  // Traced, every span exported soon: the grep below reads what the matrix's calls exported.
  const tally = await startTally(['all'], {
    ...env(),
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${spans.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_TRACES_SAMPLER: 'always_on',
    OTEL_BSP_SCHEDULE_DELAY: '200',
  });
  processes.push(tally);
  const target: AccessTarget = {
    httpPort: tally.httpPort!,
    grpcPort: tally.grpcPort!,
    adminKey,
    jwks,
    logEnd,
  };
  keys = await makeKeys(target);
  secrets.push(...Object.values(keys));
  await runAccessMatrix(target, keys);
});

test('a JWKS rotated while Tally uses it: the new key is fetched once; an unknown kid after that is 401', async () => {
  const tally = processes[0]!;
  const fetchesBefore = jwks.fetches;
  // jose fetches again for an unknown kid at most every 30 s (docs/security.md).
  await new Promise((r) => setTimeout(r, 31_000));
  jwks.rotate('k2');
  const token = await jwks.sign({ sub: 'rotated-user', scope: 'read' });
  secrets.push(token);
  const ok = await rest(tally.httpPort!, 'GET', '/v1/whoami', {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.equal(jwks.fetches, fetchesBefore + 1, 'the rotated JWKS was fetched once');
  const unknown = await jwks.sign(
    { scope: 'read' },
    {
      kid: 'k3',
      key: (await import('node:crypto')).generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
    },
  );
  const refused = await rest(tally.httpPort!, 'GET', '/v1/whoami', {
    headers: { authorization: `Bearer ${unknown}` },
  });
  assert.equal(refused.status, 401);
  assert.equal(reasonOf(refused.json), 'INVALID_TOKEN');
  assert.ok(jwks.fetches <= fetchesBefore + 2, 'an unknown kid costs at most one more fetch');
});

test('a key revoked through the admin API is refused by every gateway within 5 s, and its open stream is closed with 4401', async () => {
  const [one, two] = await Promise.all([
    startTally(['gateway', 'ingest', 'query'], env(), 60_000, { untilServing: true }),
    startTally(['gateway', 'ingest', 'query'], env(), 60_000, { untilServing: true }),
  ]);
  processes.push(one, two);
  const created = await rest(one.httpPort!, 'POST', '/v1/keys', {
    body: { name: 'to revoke', scopes: ['read'] },
    headers: { authorization: `Bearer ${adminKey}` },
  });
  assert.equal(created.status, 200);
  const { key, record } = created.json as { key: string; record: { id: string } };
  secrets.push(key);
  const headers = { authorization: `Bearer ${key}` };
  for (const p of [one, two])
    assert.equal((await rest(p.httpPort!, 'GET', '/v1/counters?target=x', { headers })).status, 200);
  const stream = await openStream(two.httpPort!, `Bearer ${key}`, { keepOpen: true });
  assert.ok(stream.hello);
  const closed = new Promise<number>((resolve) => stream.ws!.on('close', (code) => resolve(code)));

  const revokedAt = Date.now();
  const revoke = await rest(one.httpPort!, 'POST', `/v1/keys/${record.id}:revoke`, {
    headers: { authorization: `Bearer ${adminKey}` },
  });
  assert.equal(revoke.status, 200);
  for (const p of [one, two]) {
    for (;;) {
      const answer = await rest(p.httpPort!, 'GET', '/v1/counters?target=x', { headers });
      if (answer.status === 401) break;
      assert.ok(Date.now() - revokedAt < 5_000, 'a gateway still accepts the key 5 s after its revocation');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const code = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5_000))]);
  assert.equal(code, 4401, 'the stream of the revoked key is closed with 4401');
  assert.ok(Date.now() - revokedAt < 6_000);
});

test('no key and no token appears in any process log or exported span', async () => {
  assert.ok(processes.length >= 3);
  for (const p of processes)
    for (const secret of secrets) {
      const line = p.lines.find((l) => l.includes(secret) || l.includes(secret.slice(7, 40)));
      assert.equal(line, undefined, `a credential in the log: ${line?.slice(0, 80)}…`);
    }
  // The matrix's process exported its spans (REST, gRPC, refusals included) every 200 ms.
  const deadline = Date.now() + 10_000;
  while (!spans.bodies.some((b) => b.includes('"spans"')) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  const exported = spans.bodies.join('\n');
  assert.ok(exported.includes('"spans"'), 'the traced process exported spans');
  for (const secret of secrets)
    assert.ok(
      !exported.includes(secret) && !exported.includes(secret.slice(7, 40)),
      'a credential in an exported span',
    );
});

test('the metrics count the refusals by surface and reason; TALLY_METRICS_TOKEN guards /metrics', async () => {
  const token = newSecretKey().slice(7);
  const tally = await startTally(
    ['gateway', 'ingest', 'query'],
    { ...env(), TALLY_METRICS_TOKEN: token },
    60_000,
    {
      untilServing: true,
    },
  );
  processes.push(tally);
  assert.equal((await rest(tally.httpPort!, 'GET', '/metrics')).status, 401);
  assert.equal((await rest(tally.httpPort!, 'GET', '/v1/counters?target=x')).status, 401);
  const scrape = await fetch(`http://127.0.0.1:${tally.httpPort}/metrics`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(scrape.status, 200);
  const text = await scrape.text();
  assert.match(text, /tally_auth_failures_total\{surface="metrics",reason="MISSING_CREDENTIAL"\} 1/);
  assert.match(text, /tally_auth_failures_total\{surface="rest",reason="MISSING_CREDENTIAL"\} 1/);
  assert.equal((await rest(tally.httpPort!, 'GET', '/healthz')).status, 200, 'health stays open');
});
