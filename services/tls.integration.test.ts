/**
 * TLS on the listeners of running `tally` processes (TALLY_TLS_*, TALLY_GRPC_TLS*), on the real
 * servers: the gateway's HTTPS (REST, /healthz, wss) and gRPC served with the configured
 * certificate, client certificates required on gRPC with a client CA, a renewed pair served to
 * new connections while the process keeps running, a bad pair logged and the old one kept, the
 * metrics server on HTTPS, a gateway dialling a TLS ingest and query with its client certificate,
 * and start-up refused with a message naming the variable.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus as ServingStatus } from './gen/grpc/health/v1/health_pb.js';
import { requireRealServers, type TestNamespace, testNamespace, waitFor } from './testing/real-servers.ts';
import { issueCertificate, type TestCa, type TestCertificate, testCa } from './testing/self-signed.ts';
import { StreamClient } from './testing/stream-client.ts';
import { Backends } from './testing/tally-client.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';
import {
  fingerprintOf,
  healthCheck,
  httpsRequest,
  servedFingerprint,
  trustingCredentials,
  untilServed,
} from './testing/tls-probe.ts';

await requireRealServers();

let dir: string;
let ca: TestCa;
let first: TestCertificate;
let second: TestCertificate;
let third: TestCertificate;
let client: TestCertificate;
let ns: TestNamespace;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tally-tls-it-'));
  ca = await testCa(dir);
  first = await issueCertificate(ca, dir, 'first');
  second = await issueCertificate(ca, dir, 'second');
  third = await issueCertificate(ca, dir, 'third');
  client = await issueCertificate(ca, dir, 'gateway', { client: true });
  ns = testNamespace(2);
});
after(async () => {
  await new Backends(ns).cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** A directory of its own holding `cert` as tls.crt / tls.key, and the CA as ca.crt. */
function tlsDir(cert: TestCertificate): { certFile: string; keyFile: string; caFile: string } {
  const live = mkdtempSync(join(dir, 'live-'));
  const files = {
    certFile: join(live, 'tls.crt'),
    keyFile: join(live, 'tls.key'),
    caFile: join(live, 'ca.crt'),
  };
  copyFileSync(cert.certFile, files.certFile);
  copyFileSync(cert.keyFile, files.keyFile);
  copyFileSync(ca.certFile, files.caFile);
  return files;
}

/** Writes `from` over `to` as a deployment would: a new file renamed into place. */
function replace(from: string, to: string): void {
  copyFileSync(from, `${to}.new`);
  renameSync(`${to}.new`, to);
}

/** The parsed JSON log lines of `proc` whose msg is `msg`. */
function logged(proc: TallyProcess, msg: string): Record<string, unknown>[] {
  return proc.lines.flatMap((line) => {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      return entry.msg === msg ? [entry] : [];
    } catch {
      return [];
    }
  });
}

describe('TLS on the listeners of a running process', () => {
  let tally: TallyProcess;
  let files: ReturnType<typeof tlsDir>;
  before(async () => {
    files = tlsDir(first);
    tally = await startTally(['gateway', 'ingest', 'query'], {
      ...ns.env,
      TALLY_TLS_CERT_FILE: files.certFile,
      TALLY_TLS_KEY_FILE: files.keyFile,
      TALLY_TLS_CLIENT_CA_FILE: files.caFile,
    });
  });
  after(() => tally?.kill('SIGTERM'));

  test('HTTPS: /healthz and REST answer with the configured certificate; plain HTTP gets no answer', async () => {
    const health = await httpsRequest(tally.httpPort!, 'GET', '/healthz', ca.certFile);
    assert.equal(health.status, 200, health.text);
    assert.equal(health.fingerprint, fingerprintOf(first.certFile));
    const posted = await httpsRequest(tally.httpPort!, 'POST', '/v1/events', ca.certFile, {
      id: `${ns.id}-https`,
      type: 'CLICK',
      target: `https://tls.example/${ns.id}`,
    });
    assert.equal(posted.status, 200, posted.text);
    await assert.rejects(fetch(`http://127.0.0.1:${tally.httpPort}/healthz`));
    assert.deepEqual(logged(tally, 'gateway listening')[0]?.tls, true);
  });

  test('wss: the stream answers over TLS', async () => {
    const stream = await StreamClient.connect(tally.httpPort!, '/v1/stream', {
      ca: readFileSync(ca.certFile),
    });
    try {
      const target = `https://tls.example/${ns.id}/stream`;
      stream.send({ op: 'subscribe', channel: 'counters', targets: [target], id: 's1' });
      const subscribed = await stream.next((m) => m.channel === 'subscribed');
      assert.equal(subscribed.id, 's1');
    } finally {
      stream.close();
    }
  });

  test('gRPC: TLS with a client certificate the CA signed; none, or plaintext, refused', async () => {
    const port = tally.grpcPort!;
    assert.equal(await servedFingerprint(port, ca.certFile, 'h2'), fingerprintOf(first.certFile));
    assert.equal(await healthCheck(port, trustingCredentials(ca.certFile, client)), ServingStatus.SERVING);
    for (const credentials of [trustingCredentials(ca.certFile), grpc.credentials.createInsecure()])
      await assert.rejects(healthCheck(port, credentials, 3_000), (error: grpc.ServiceError) => {
        assert.equal(error.code, grpc.status.UNAVAILABLE, String(error));
        return true;
      });
  });

  test('a renewed pair is served to new connections within seconds; the process keeps running', async () => {
    const stream = await StreamClient.connect(tally.httpPort!, '/v1/stream', {
      ca: readFileSync(ca.certFile),
    });
    try {
      replace(second.keyFile, files.keyFile);
      replace(second.certFile, files.certFile);
      const renewed = fingerprintOf(second.certFile);
      await untilServed(tally.httpPort!, ca.certFile, renewed, { ms: 5_000 });
      await untilServed(tally.grpcPort!, ca.certFile, renewed, { alpn: 'h2', ms: 5_000 });
      assert.equal(tally.child.exitCode, null);
      assert.equal((await httpsRequest(tally.httpPort!, 'GET', '/healthz', ca.certFile)).status, 200);
      assert.equal(
        await healthCheck(tally.grpcPort!, trustingCredentials(ca.certFile, client)),
        ServingStatus.SERVING,
      );
      // The stream opened before the renewal carries on on its connection.
      stream.send({ op: 'subscribe', channel: 'counters', targets: ['https://tls.example/'], id: 'after' });
      assert.equal((await stream.next((m) => m.channel === 'subscribed' && m.id === 'after')).id, 'after');
      assert.equal(stream.closed, undefined);
      assert.equal(logged(tally, 'tls files reloaded').at(-1)?.fingerprint256, renewed);
    } finally {
      stream.close();
    }
  });

  test('a bad pair is logged and the certificate in use kept', async () => {
    const inUse = fingerprintOf(second.certFile);
    replace(third.certFile, files.certFile); // its key is not beside it
    await waitFor(
      () => logged(tally, 'tls files not reloaded: keeping the certificate in use').length > 0,
      () => tally.lines.slice(-5).join('\n'),
      5_000,
    );
    const [warning] = logged(tally, 'tls files not reloaded: keeping the certificate in use');
    assert.equal(warning?.level, 'warn');
    assert.match(String(warning?.error), /private key in .*tls\.key does not match the certificate/);
    assert.equal(warning?.fingerprint256, inUse);
    assert.equal((await httpsRequest(tally.httpPort!, 'GET', '/healthz', ca.certFile)).fingerprint, inUse);
    assert.equal(await servedFingerprint(tally.grpcPort!, ca.certFile, 'h2'), inUse);
    assert.equal(tally.child.exitCode, null);
  });
});

describe('a gateway dialling a TLS ingest and query', () => {
  let services: TallyProcess;
  const edges: TallyProcess[] = [];
  let files: ReturnType<typeof tlsDir>;
  before(async () => {
    files = tlsDir(first);
    services = await startTally(['ingest', 'query'], {
      ...ns.env,
      TALLY_TLS_CERT_FILE: files.certFile,
      TALLY_TLS_KEY_FILE: files.keyFile,
      TALLY_TLS_CLIENT_CA_FILE: files.caFile,
    });
  });
  after(async () => {
    for (const edge of edges) await edge.kill('SIGTERM');
    await services?.kill('SIGTERM');
  });

  const gateway = async (env: Record<string, string>) => {
    const edge = await startTally(['gateway'], {
      ...ns.env,
      TALLY_INGEST_ADDR: `127.0.0.1:${services.grpcPort}`,
      TALLY_QUERY_ADDR: `127.0.0.1:${services.grpcPort}`,
      TALLY_HTTP_REQUEST_TIMEOUT_MS: '5000',
      ...env,
    });
    edges.push(edge);
    return edge;
  };
  const post = (edge: TallyProcess) =>
    fetch(`http://127.0.0.1:${edge.httpPort}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'VIEW', target: `https://tls.example/${ns.id}/dial` }),
    });

  test('the metrics server of a process without a gateway serves HTTPS', async () => {
    const ready = await httpsRequest(services.metricsPort!, 'GET', '/healthz', ca.certFile);
    assert.equal(ready.status, 200, ready.text);
    assert.equal(ready.fingerprint, fingerprintOf(first.certFile));
    const metrics = await httpsRequest(services.metricsPort!, 'GET', '/metrics', ca.certFile);
    assert.match(metrics.text, /tally_grpc_/);
  });

  test('with TALLY_GRPC_TLS, the CA and its client certificate: calls go through', async () => {
    const edge = await gateway({
      TALLY_GRPC_TLS: 'true',
      TALLY_GRPC_TLS_CA_FILE: ca.certFile,
      TALLY_GRPC_TLS_CLIENT_CERT_FILE: client.certFile,
      TALLY_GRPC_TLS_CLIENT_KEY_FILE: client.keyFile,
    });
    const response = await post(edge);
    assert.equal(response.status, 200, await response.text());
  });

  test('without a client certificate, or plaintext, calls fail UNAVAILABLE', async () => {
    const envs: Record<string, string>[] = [
      { TALLY_GRPC_TLS: 'true', TALLY_GRPC_TLS_CA_FILE: ca.certFile },
      {},
    ];
    for (const env of envs) {
      const edge = await gateway(env);
      const response = await post(edge);
      const body = (await response.json()) as { error: { status: string } };
      assert.equal(response.status, 503, JSON.stringify(body));
      assert.equal(body.error.status, 'UNAVAILABLE');
    }
  });
});

describe('start-up refused, naming the variable', () => {
  const refused = async (env: Record<string, string>, message: RegExp) => {
    const { spawnSync } = await import('node:child_process');
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_')),
    );
    const run = spawnSync(join(import.meta.dirname, '..', 'bin', 'tally'), ['gateway'], {
      env: { ...inherited, ...ns.env, ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.status, 2, run.stderr + run.stdout);
    assert.match(run.stderr, message);
  };

  test('a certificate without its key', () =>
    refused(
      { TALLY_TLS_CERT_FILE: first.certFile },
      /TALLY_TLS_KEY_FILE: required with TALLY_TLS_CERT_FILE/,
    ));

  test('a key that does not match the certificate', () =>
    refused(
      { TALLY_TLS_CERT_FILE: first.certFile, TALLY_TLS_KEY_FILE: second.keyFile },
      /TALLY_TLS_KEY_FILE: the private key in .*second-key\.pem does not match the certificate in .*first\.pem/,
    ));

  test('a missing client CA file', () =>
    refused(
      {
        TALLY_TLS_CERT_FILE: first.certFile,
        TALLY_TLS_KEY_FILE: first.keyFile,
        TALLY_TLS_CLIENT_CA_FILE: join(dir, 'absent-ca.pem'),
      },
      /TALLY_TLS_CLIENT_CA_FILE: cannot read .*absent-ca\.pem \(ENOENT/,
    ));
});
