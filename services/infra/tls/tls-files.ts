/**
 * TLS material read from PEM files and checked before use: the certificate chain, its private key
 * (which must match the chain's first certificate) and a CA bundle. The same check runs at start
 * (a failure stops the process, config.ts names the variable) and on every reload
 * (tls-reloader.ts: a failure keeps the material in use).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/** Which files make the material; `certFile` and `keyFile` go together. */
export interface TlsFiles {
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** A PEM bundle of CA certificates (whom to trust). */
  caFile?: string | undefined;
}

/** What the files held, checked. */
export interface TlsMaterial {
  /** The certificate chain, leaf first, as read. */
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  /** The leaf certificate, when there is one (its fingerprint is what a peer sees). */
  leaf?: { fingerprint256: string; subject: string; validTo: string };
}

/** The file of the material a {@link TlsFileError} is about. */
export type TlsFileRole = 'cert' | 'key' | 'ca';

/** A file that cannot be used: which one (`role`), its path, and why, in `message`. */
export class TlsFileError extends Error {
  override readonly name = 'TlsFileError';
  readonly role: TlsFileRole;
  readonly file: string;

  constructor(role: TlsFileRole, file: string, message: string) {
    super(message);
    this.role = role;
    this.file = file;
  }
}

/** The raw bytes of each file named in `files` (a TlsFileError naming the file that cannot be read). */
export function readTlsFiles(files: TlsFiles): { cert?: Buffer; key?: Buffer; ca?: Buffer } {
  const read = (role: TlsFileRole, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (error) {
      throw new TlsFileError(role, file, `cannot read ${file} (${(error as Error).message})`);
    }
  };
  const raw: { cert?: Buffer; key?: Buffer; ca?: Buffer } = {};
  const cert = read('cert', files.certFile);
  const key = read('key', files.keyFile);
  const ca = read('ca', files.caFile);
  if (cert) raw.cert = cert;
  if (key) raw.key = key;
  if (ca) raw.ca = ca;
  return raw;
}

/**
 * Checks what {@link readTlsFiles} read: the certificate file holds a PEM certificate, the key
 * file an unencrypted PEM private key that matches the first certificate, the CA file PEM
 * certificates, and together they make a TLS context. A TlsFileError names the file at fault.
 */
export function checkTlsMaterial(
  files: TlsFiles,
  raw: { cert?: Buffer; key?: Buffer; ca?: Buffer },
): TlsMaterial {
  const material: TlsMaterial = {};
  let leaf: X509Certificate | undefined;
  if (raw.cert && files.certFile !== undefined) {
    leaf = parseCertificate('cert', files.certFile, raw.cert);
    material.cert = raw.cert;
    material.leaf = { fingerprint256: leaf.fingerprint256, subject: leaf.subject, validTo: leaf.validTo };
  }
  if (raw.key && files.keyFile !== undefined) {
    const file = files.keyFile;
    const pem = raw.key.toString('latin1');
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem))
      throw new TlsFileError('key', file, `${file} holds no PEM private key (-----BEGIN PRIVATE KEY-----)`);
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem))
      throw new TlsFileError('key', file, `${file} holds an encrypted private key: give it unencrypted`);
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(raw.key);
    } catch (error) {
      throw new TlsFileError(
        'key',
        file,
        `${file} holds no usable private key (${(error as Error).message})`,
      );
    }
    if (leaf && !leaf.checkPrivateKey(key))
      throw new TlsFileError(
        'key',
        file,
        `the private key in ${file} does not match the certificate in ${files.certFile} (${leaf.subject.replaceAll('\n', ', ')})`,
      );
    material.key = raw.key;
  }
  if (raw.ca && files.caFile !== undefined) {
    parseCertificate('ca', files.caFile, raw.ca);
    material.ca = raw.ca;
  }
  try {
    createSecureContext({ cert: material.cert, key: material.key, ca: material.ca });
  } catch (error) {
    const [role, file] = material.ca ? ['ca' as const, files.caFile!] : ['cert' as const, files.certFile!];
    throw new TlsFileError(role, file, `${file}: not usable for TLS (${(error as Error).message})`);
  }
  return material;
}

/** Reads and checks the files ({@link readTlsFiles}, {@link checkTlsMaterial}). */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  return checkTlsMaterial(files, readTlsFiles(files));
}

/** The first certificate of a PEM file, or a TlsFileError saying it holds none. */
function parseCertificate(role: TlsFileRole, file: string, pem: Buffer): X509Certificate {
  if (!pem.toString('latin1').includes('-----BEGIN CERTIFICATE-----'))
    throw new TlsFileError(role, file, `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new TlsFileError(role, file, `${file} holds no readable certificate (${(error as Error).message})`);
  }
}
