/**
 * The TLS variables: which go together, and the precise error for each file that cannot be used
 * (missing, not PEM, encrypted, a key that does not match the certificate), through loadConfig and
 * listenerTls / grpcClientTls as run-roles.ts calls them.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { issueCertificate, type TestCa, type TestCertificate, testCa } from '../../testing/self-signed.ts';
import { ConfigError, grpcClientTls, listenerTls, loadConfig } from '../config.ts';

let dir: string;
let ca: TestCa;
let server: TestCertificate;
let other: TestCertificate;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tally-tls-files-'));
  ca = await testCa(dir);
  server = await issueCertificate(ca, dir, 'server');
  other = await issueCertificate(ca, dir, 'other');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** loadConfig(env) throws a ConfigError whose message matches `message`. */
function assertConfigError(env: Record<string, string>, message: RegExp): void {
  assert.throws(
    () => loadConfig(env),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, message);
      return true;
    },
  );
}

/** listenerTls on `env`'s configuration throws a ConfigError whose message matches `message`. */
function assertFileError(env: Record<string, string>, message: RegExp): void {
  const config = loadConfig(env);
  assert.throws(
    () => (config.tls ? listenerTls(config.tls) : grpcClientTls(config.grpcClientTls!)),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, message);
      return true;
    },
  );
}

describe('TLS configuration', () => {
  test('none set: plaintext listeners and gRPC client', () => {
    const config = loadConfig({});
    assert.equal(config.tls, undefined);
    assert.equal(config.grpcClientTls, undefined);
  });

  test('a certificate without its key, and a key without its certificate, name the missing one', () => {
    assertConfigError(
      { TALLY_TLS_CERT_FILE: server.certFile },
      /TALLY_TLS_KEY_FILE: required with TALLY_TLS_CERT_FILE/,
    );
    assertConfigError(
      { TALLY_TLS_KEY_FILE: server.keyFile },
      /TALLY_TLS_CERT_FILE: required with TALLY_TLS_KEY_FILE/,
    );
    assertConfigError(
      { TALLY_GRPC_TLS: 'true', TALLY_GRPC_TLS_CLIENT_CERT_FILE: server.certFile },
      /TALLY_GRPC_TLS_CLIENT_KEY_FILE: required with TALLY_GRPC_TLS_CLIENT_CERT_FILE/,
    );
  });

  test('a client CA without listener TLS, and gRPC client files without TALLY_GRPC_TLS, are refused', () => {
    assertConfigError(
      { TALLY_TLS_CLIENT_CA_FILE: ca.certFile },
      /TALLY_TLS_CLIENT_CA_FILE: set without TLS on the listeners/,
    );
    assertConfigError(
      { TALLY_GRPC_TLS_CA_FILE: ca.certFile },
      /TALLY_GRPC_TLS_CA_FILE: set without TLS to ingest and query: set TALLY_GRPC_TLS=true/,
    );
    assertConfigError({ TALLY_GRPC_TLS: 'yes' }, /TALLY_GRPC_TLS: /);
  });

  test('a good pair and client CA: the material, with the certificate fingerprint', () => {
    const config = loadConfig({
      TALLY_TLS_CERT_FILE: server.certFile,
      TALLY_TLS_KEY_FILE: server.keyFile,
      TALLY_TLS_CLIENT_CA_FILE: ca.certFile,
    });
    const { material } = listenerTls(config.tls!);
    const expected = new X509Certificate(readFileSync(server.certFile)).fingerprint256;
    assert.equal(material.leaf?.fingerprint256, expected);
    assert.ok(material.ca?.equals(readFileSync(ca.certFile)));
  });

  test('TALLY_GRPC_TLS alone: system CAs, no client certificate', () => {
    const config = loadConfig({ TALLY_GRPC_TLS: 'true' });
    assert.deepEqual(config.grpcClientTls, { caFile: undefined, certFile: undefined, keyFile: undefined });
    assert.deepEqual(grpcClientTls(config.grpcClientTls!).material, {});
  });

  test('a missing file names its variable and the file', () => {
    const missing = join(dir, 'nowhere.pem');
    assertFileError(
      { TALLY_TLS_CERT_FILE: missing, TALLY_TLS_KEY_FILE: server.keyFile },
      new RegExp(`TALLY_TLS_CERT_FILE: cannot read ${missing} \\(ENOENT`),
    );
    assertFileError(
      { TALLY_TLS_CERT_FILE: server.certFile, TALLY_TLS_KEY_FILE: missing },
      /TALLY_TLS_KEY_FILE: cannot read .*nowhere\.pem \(ENOENT/,
    );
    assertFileError(
      { TALLY_GRPC_TLS: 'true', TALLY_GRPC_TLS_CA_FILE: missing },
      /TALLY_GRPC_TLS_CA_FILE: cannot read .*nowhere\.pem/,
    );
  });

  test('a file that is not PEM says what it should hold', () => {
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    assertFileError(
      { TALLY_TLS_CERT_FILE: junk, TALLY_TLS_KEY_FILE: server.keyFile },
      /TALLY_TLS_CERT_FILE: .*junk\.pem holds no PEM certificate/,
    );
    assertFileError(
      { TALLY_TLS_CERT_FILE: server.certFile, TALLY_TLS_KEY_FILE: junk },
      /TALLY_TLS_KEY_FILE: .*junk\.pem holds no PEM private key/,
    );
    // The certificate given as the key: PEM, but not a key.
    assertFileError(
      { TALLY_TLS_CERT_FILE: server.certFile, TALLY_TLS_KEY_FILE: server.certFile },
      /TALLY_TLS_KEY_FILE: .* holds no PEM private key/,
    );
    assertFileError(
      {
        TALLY_TLS_CERT_FILE: server.certFile,
        TALLY_TLS_KEY_FILE: server.keyFile,
        TALLY_TLS_CLIENT_CA_FILE: junk,
      },
      /TALLY_TLS_CLIENT_CA_FILE: .*junk\.pem holds no PEM certificate/,
    );
    const broken = join(dir, 'broken.pem');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    assertFileError(
      { TALLY_TLS_CERT_FILE: broken, TALLY_TLS_KEY_FILE: server.keyFile },
      /TALLY_TLS_CERT_FILE: .*broken\.pem holds no readable certificate/,
    );
  });

  test('a key that does not match the certificate names both files', () => {
    assertFileError(
      { TALLY_TLS_CERT_FILE: server.certFile, TALLY_TLS_KEY_FILE: other.keyFile },
      /TALLY_TLS_KEY_FILE: the private key in .*other-key\.pem does not match the certificate in .*server\.pem/,
    );
    assertFileError(
      {
        TALLY_GRPC_TLS: 'true',
        TALLY_GRPC_TLS_CLIENT_CERT_FILE: other.certFile,
        TALLY_GRPC_TLS_CLIENT_KEY_FILE: server.keyFile,
      },
      /TALLY_GRPC_TLS_CLIENT_KEY_FILE: the private key in .*server-key\.pem does not match/,
    );
  });

  test('an encrypted key says so', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const encrypted = join(dir, 'encrypted-key.pem');
    await promisify(execFile)('openssl', [
      'pkcs8',
      '-topk8',
      '-in',
      server.keyFile,
      '-out',
      encrypted,
      '-passout',
      'pass:secret',
    ]);
    assertFileError(
      { TALLY_TLS_CERT_FILE: server.certFile, TALLY_TLS_KEY_FILE: encrypted },
      /TALLY_TLS_KEY_FILE: .*encrypted-key\.pem holds an encrypted private key/,
    );
  });
});
