/**
 * Reloading TLS material: a pair replaced by atomic renames, and a Kubernetes Secret volume's
 * symlink swap, are picked up within seconds by the directory watch (the periodic re-read is set
 * far beyond the test); a bad pair is logged once and the material in use kept.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { issueCertificate, type TestCa, type TestCertificate, testCa } from '../../testing/self-signed.ts';
import type { Logger } from '../logger.ts';
import { readTlsMaterial, type TlsMaterial } from './tls-files.ts';
import { watchTlsFiles } from './tls-reloader.ts';

let dir: string;
let ca: TestCa;
let first: TestCertificate;
let second: TestCertificate;
let third: TestCertificate;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tally-tls-reload-'));
  ca = await testCa(dir);
  first = await issueCertificate(ca, dir, 'first');
  second = await issueCertificate(ca, dir, 'second');
  third = await issueCertificate(ca, dir, 'third');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

/** A logger keeping its lines. */
function recordingLogger(): Logger & {
  lines: { level: string; msg: string; fields?: Record<string, unknown> }[];
} {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const logger = {
    lines,
    debug: (msg: string, fields?: Record<string, unknown>) => lines.push({ level: 'debug', msg, fields }),
    info: (msg: string, fields?: Record<string, unknown>) => lines.push({ level: 'info', msg, fields }),
    warn: (msg: string, fields?: Record<string, unknown>) => lines.push({ level: 'warn', msg, fields }),
    error: (msg: string, fields?: Record<string, unknown>) => lines.push({ level: 'error', msg, fields }),
    child: () => logger,
  };
  return logger;
}

/** Copies `from` over `to` atomically (a new file renamed into place). */
function replace(from: string, to: string): void {
  copyFileSync(from, `${to}.tmp`);
  renameSync(`${to}.tmp`, to);
}

/** Resolves with the next material `watched` hands out, or rejects after `ms`. */
function nextChange(watched: { onChange(l: (m: TlsMaterial) => void): () => void }, ms = 5_000) {
  return new Promise<TlsMaterial>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reload within ${ms} ms`)), ms);
    const off = watched.onChange((material) => {
      clearTimeout(timer);
      off();
      resolve(material);
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('TLS files reloaded', () => {
  test('a pair replaced by renames is handed out; a bad pair is logged once and the old one kept', async () => {
    const live = mkdtempSync(join(dir, 'renamed-'));
    const files = { certFile: join(live, 'tls.crt'), keyFile: join(live, 'tls.key') };
    copyFileSync(first.certFile, files.certFile);
    copyFileSync(first.keyFile, files.keyFile);
    const logger = recordingLogger();
    const watched = watchTlsFiles(files, readTlsMaterial(files), { logger, name: 'test', pollMs: 600_000 });
    try {
      assert.equal(watched.current.leaf?.fingerprint256, fingerprint(first.certFile));

      const changed = nextChange(watched);
      replace(second.keyFile, files.keyFile);
      replace(second.certFile, files.certFile);
      assert.equal((await changed).leaf?.fingerprint256, fingerprint(second.certFile));
      assert.equal(watched.current.leaf?.fingerprint256, fingerprint(second.certFile));
      assert.ok(logger.lines.some((l) => l.msg === 'tls files reloaded'));

      // A certificate whose key is not beside it: refused, logged once, the second pair kept.
      let changes = 0;
      watched.onChange(() => changes++);
      replace(third.certFile, files.certFile);
      await sleep(1_500);
      replace(third.certFile, files.certFile); // the same bad pair again: not logged again
      await sleep(1_000);
      const warnings = logger.lines.filter((l) => l.level === 'warn');
      assert.equal(warnings.length, 1, JSON.stringify(warnings));
      assert.equal(warnings[0]?.msg, 'tls files not reloaded: keeping the certificate in use');
      assert.match(String(warnings[0]?.fields?.error), /private key in .*tls\.key does not match/);
      assert.equal(warnings[0]?.fields?.fingerprint256, fingerprint(second.certFile));
      assert.equal(watched.current.leaf?.fingerprint256, fingerprint(second.certFile));
      assert.equal(changes, 0);

      // Its key arrives: the pair is good and handed out.
      const fixed = nextChange(watched);
      replace(third.keyFile, files.keyFile);
      assert.equal((await fixed).leaf?.fingerprint256, fingerprint(third.certFile));
    } finally {
      watched.close();
    }
  });

  test("a Secret volume's symlink swap (..data) is handed out", async () => {
    const volume = mkdtempSync(join(dir, 'secret-'));
    const version = (name: string, cert: TestCertificate) => {
      mkdirSync(join(volume, name));
      copyFileSync(cert.certFile, join(volume, name, 'tls.crt'));
      copyFileSync(cert.keyFile, join(volume, name, 'tls.key'));
      copyFileSync(ca.certFile, join(volume, name, 'ca.crt'));
    };
    version('..v1', first);
    symlinkSync('..v1', join(volume, '..data'));
    for (const f of ['tls.crt', 'tls.key', 'ca.crt']) symlinkSync(join('..data', f), join(volume, f));
    const files = {
      certFile: join(volume, 'tls.crt'),
      keyFile: join(volume, 'tls.key'),
      caFile: join(volume, 'ca.crt'),
    };
    const logger = recordingLogger();
    const watched = watchTlsFiles(files, readTlsMaterial(files), { logger, name: 'test', pollMs: 600_000 });
    try {
      const changed = nextChange(watched);
      // What the kubelet does: a new version directory, then ..data swapped to it by a rename.
      version('..v2', second);
      symlinkSync('..v2', join(volume, '..data_tmp'));
      renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
      rmSync(join(volume, '..v1'), { recursive: true });
      const material = await changed;
      assert.equal(material.leaf?.fingerprint256, fingerprint(second.certFile));
      assert.ok(material.ca?.equals(readFileSync(ca.certFile)));
      assert.deepEqual(
        logger.lines.filter((l) => l.level === 'warn'),
        [],
      );
    } finally {
      watched.close();
    }
  });

  test('without watch events, the periodic re-read picks the change up', async () => {
    const live = mkdtempSync(join(dir, 'polled-'));
    const files = { certFile: join(live, 'tls.crt'), keyFile: join(live, 'tls.key') };
    copyFileSync(first.certFile, files.certFile);
    copyFileSync(first.keyFile, files.keyFile);
    const logger = recordingLogger();
    // A debounce longer than the test: only the poll can deliver the change in time.
    const watched = watchTlsFiles(files, readTlsMaterial(files), {
      logger,
      name: 'test',
      pollMs: 300,
      debounceMs: 60_000,
    });
    try {
      const changed = nextChange(watched, 3_000);
      replace(second.keyFile, files.keyFile);
      replace(second.certFile, files.certFile);
      assert.equal((await changed).leaf?.fingerprint256, fingerprint(second.certFile));
    } finally {
      watched.close();
    }
  });
});
