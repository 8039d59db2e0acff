/** Certificates for the tests' TLS listeners, made with openssl. */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const openssl = (args: string[]) => promisify(execFile)('openssl', args);

/** A self-signed certificate for 127.0.0.1 and localhost in `dir` (cert.pem, key.pem); returns cert.pem's path. */
export async function selfSignedCertificate(dir: string): Promise<string> {
  const cert = join(dir, 'cert.pem');
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    cert,
  ]);
  return cert;
}

/** A certificate authority of a test's own: its certificate and key files. */
export interface TestCa {
  certFile: string;
  keyFile: string;
}

/** A certificate and its key, as files. */
export interface TestCertificate {
  certFile: string;
  keyFile: string;
}

/** A new CA in `dir` (`<name>-ca.pem`, `<name>-ca-key.pem`), EC P-256, valid two days. */
export async function testCa(dir: string, name = 'test'): Promise<TestCa> {
  const certFile = join(dir, `${name}-ca.pem`);
  const keyFile = join(dir, `${name}-ca-key.pem`);
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name} CA ${randomUUID()}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  return { certFile, keyFile };
}

/**
 * A certificate signed by `ca` in `dir` (`<name>.pem`, `<name>-key.pem`): for a server, for
 * 127.0.0.1 and localhost (serverAuth); for a client (`client: true`), clientAuth. Each call makes
 * a new key, so two certificates of the same name have different fingerprints.
 */
export async function issueCertificate(
  ca: TestCa,
  dir: string,
  name: string,
  options: { client?: boolean } = {},
): Promise<TestCertificate> {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    `/CN=${options.client ? name : '127.0.0.1'}`,
    '-keyout',
    keyFile,
    '-out',
    csr,
  ]);
  await writeFile(
    ext,
    options.client
      ? 'extendedKeyUsage=clientAuth\n'
      : 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    certFile,
  ]);
  return { certFile, keyFile };
}
