/**
 * gRPC over TLS on a GrpcRegistry's server, asked by plain grpc-js clients: served with the
 * configured certificate, plaintext and untrusting clients refused, client certificates required
 * when a client CA is set, a renewed certificate served to new connections without a restart,
 * and the gateway's client credentials (grpcChannelCredentials) against it.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../../gen/grpc/health/v1/health_pb.js';
import { issueCertificate, type TestCa, type TestCertificate, testCa } from '../../testing/self-signed.ts';
import {
  fingerprintOf,
  healthCheck,
  servedFingerprint,
  trustingCredentials,
  untilServed,
} from '../../testing/tls-probe.ts';
import { AppError, Code } from '../app-error.ts';
import { createLogger } from '../logger.ts';
import { readTlsMaterial, type TlsFiles } from '../tls/tls-files.ts';
import { type ReloadingTls, watchTlsFiles } from '../tls/tls-reloader.ts';
import { GrpcRegistry } from './grpc-registry.ts';
import { createGrpcClient, type GrpcServer } from './grpc-service.ts';
import { grpcChannelCredentials, grpcServerCredentials } from './grpc-tls.ts';

const logger = createLogger('error');
let dir: string;
let ca: TestCa;
let otherCa: TestCa;
let server1: TestCertificate;
let server2: TestCertificate;
let client: TestCertificate;
let stranger: TestCertificate;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tally-grpc-tls-'));
  ca = await testCa(dir, 'trusted');
  otherCa = await testCa(dir, 'other');
  server1 = await issueCertificate(ca, dir, 'server1');
  server2 = await issueCertificate(ca, dir, 'server2');
  client = await issueCertificate(ca, dir, 'client', { client: true });
  stranger = await issueCertificate(otherCa, dir, 'stranger', { client: true });
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A health-only gRPC server on TLS files in a directory of its own, serving `cert` at first. */
async function tlsServer(
  cert: TestCertificate,
  options: { clientCa?: boolean } = {},
): Promise<{ port: number; files: TlsFiles; tls: ReloadingTls; stop(): Promise<void> }> {
  const live = mkdtempSync(join(dir, 'live-'));
  const files: TlsFiles = { certFile: join(live, 'tls.crt'), keyFile: join(live, 'tls.key') };
  copyFileSync(cert.certFile, files.certFile!);
  copyFileSync(cert.keyFile, files.keyFile!);
  if (options.clientCa) {
    files.caFile = join(live, 'ca.crt');
    copyFileSync(ca.certFile, files.caFile);
  }
  const tls = watchTlsFiles(files, readTlsMaterial(files), { logger, name: 'test', pollMs: 600_000 });
  const registry = new GrpcRegistry(logger);
  registry.setServing(true);
  const server: GrpcServer = await registry.listen({
    host: '127.0.0.1',
    port: 0,
    maxMessageBytes: 1024 * 1024,
    credentials: grpcServerCredentials(tls, { requireClientCertificate: options.clientCa === true }),
  });
  return {
    port: server.port,
    files,
    tls,
    stop: async () => {
      await server.shutdown(1_000);
      tls.close();
    },
  };
}

/** `work` fails with UNAVAILABLE (the connection could not be made, or its handshake failed). */
async function assertRefused(work: Promise<unknown>): Promise<void> {
  await assert.rejects(work, (error: grpc.ServiceError) => {
    assert.equal(error.code, grpc.status.UNAVAILABLE, String(error));
    return true;
  });
}

describe('gRPC over TLS', () => {
  test('a client trusting the CA is served the configured certificate; plaintext and untrusting clients are refused', async () => {
    const server = await tlsServer(server1);
    try {
      assert.equal(await servedFingerprint(server.port, ca.certFile, 'h2'), fingerprintOf(server1.certFile));
      assert.equal(await healthCheck(server.port, trustingCredentials(ca.certFile)), ServingStatus.SERVING);
      await assertRefused(healthCheck(server.port, grpc.credentials.createInsecure(), 2_000));
      await assertRefused(healthCheck(server.port, trustingCredentials(otherCa.certFile), 2_000));
      await assertRefused(healthCheck(server.port, grpc.credentials.createSsl(), 2_000)); // system CAs
    } finally {
      await server.stop();
    }
  });

  test('a renewed certificate is served to new connections while an open channel keeps working', async () => {
    const server = await tlsServer(server1);
    const channel = createGrpcClient(Health, `127.0.0.1:${server.port}`, {
      credentials: trustingCredentials(ca.certFile),
    });
    try {
      assert.equal((await channel.check({ service: '' })).status, ServingStatus.SERVING);
      for (const [from, to] of [
        [server2.keyFile, server.files.keyFile!],
        [server2.certFile, server.files.certFile!],
      ] as const) {
        copyFileSync(from, `${to}.new`);
        renameSync(`${to}.new`, to);
      }
      await untilServed(server.port, ca.certFile, fingerprintOf(server2.certFile), { alpn: 'h2', ms: 5_000 });
      assert.equal(await healthCheck(server.port, trustingCredentials(ca.certFile)), ServingStatus.SERVING);
      assert.equal((await channel.check({ service: '' })).status, ServingStatus.SERVING);
    } finally {
      channel.close();
      await server.stop();
    }
  });

  test('with a client CA: no client certificate, or one of another CA, is refused; one it signed is served', async () => {
    const server = await tlsServer(server1, { clientCa: true });
    try {
      await assertRefused(healthCheck(server.port, trustingCredentials(ca.certFile), 2_000));
      await assertRefused(healthCheck(server.port, trustingCredentials(ca.certFile, stranger), 2_000));
      assert.equal(
        await healthCheck(server.port, trustingCredentials(ca.certFile, client)),
        ServingStatus.SERVING,
      );
    } finally {
      await server.stop();
    }
  });

  test("the gateway's client credentials: the CA file trusted, its certificate presented", async () => {
    const server = await tlsServer(server1, { clientCa: true });
    const clientFiles: TlsFiles = { caFile: ca.certFile, certFile: client.certFile, keyFile: client.keyFile };
    const clientTls = watchTlsFiles(clientFiles, readTlsMaterial(clientFiles), { logger, name: 'client' });
    const withCertificate = createGrpcClient(Health, `127.0.0.1:${server.port}`, {
      credentials: grpcChannelCredentials(clientTls),
      defaultTimeoutMs: 5_000,
    });
    const caOnlyFiles: TlsFiles = { caFile: ca.certFile };
    const caOnly = watchTlsFiles(caOnlyFiles, readTlsMaterial(caOnlyFiles), { logger, name: 'client' });
    const withoutCertificate = createGrpcClient(Health, `127.0.0.1:${server.port}`, {
      credentials: grpcChannelCredentials(caOnly),
      defaultTimeoutMs: 2_000,
    });
    const systemCas = createGrpcClient(Health, `127.0.0.1:${server.port}`, {
      credentials: grpcChannelCredentials(undefined),
      defaultTimeoutMs: 2_000,
    });
    try {
      assert.equal((await withCertificate.check({ service: '' })).status, ServingStatus.SERVING);
      for (const refused of [withoutCertificate, systemCas])
        await assert.rejects(refused.check({ service: '' }), (error: unknown) => {
          assert.ok(error instanceof AppError, String(error));
          assert.equal(error.code, Code.UNAVAILABLE);
          return true;
        });
    } finally {
      withCertificate.close();
      withoutCertificate.close();
      systemCas.close();
      clientTls.close();
      caOnly.close();
      await server.stop();
    }
  });
});
