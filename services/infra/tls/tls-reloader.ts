/**
 * TLS material that follows its files: the directories holding them are watched (fs.watch; a
 * Kubernetes Secret volume swaps a symlink in the directory, and an atomic rename replaces the
 * directory entry, neither of which a watch on the file itself sees), with a periodic re-read as a
 * fallback where watching does not work (some network and overlay file systems). Changes are
 * debounced, read, checked as at start (tls-files.ts), and handed to the listeners; a pair that
 * fails the check is logged once and the material in use is kept.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../logger.ts';
import { checkTlsMaterial, readTlsFiles, type TlsFiles, type TlsMaterial } from './tls-files.ts';

/** TLS material in use, and the news of its replacement. */
export interface ReloadingTls {
  /** The material in use: the last that passed the check. */
  readonly current: TlsMaterial;
  /** Calls `listener` with each new material that passed the check; returns the unsubscribe. */
  onChange(listener: (material: TlsMaterial) => void): () => void;
  /** Stops watching. */
  close(): void;
}

export interface TlsReloaderOptions {
  logger: Logger;
  /** What the material is for, in the log lines (`listener`, `grpc client`). */
  name: string;
  /** How often the files are read again whatever the watches say; default 10 s. */
  pollMs?: number;
  /** How long a burst of changes (a cert then its key) settles before they are read; default 250 ms. */
  debounceMs?: number;
}

/** Watches `files`, in use now as `initial` (already checked). */
export function watchTlsFiles(
  files: TlsFiles,
  initial: TlsMaterial,
  options: TlsReloaderOptions,
): ReloadingTls {
  const { logger, name } = options;
  const debounceMs = options.debounceMs ?? 250;
  let current = initial;
  let rejected: string | undefined; // the bytes last refused, so that one bad pair is logged once
  const listeners = new Set<(material: TlsMaterial) => void>();
  const paths = [files.certFile, files.keyFile, files.caFile].filter((f) => f !== undefined);
  const same = (a: Buffer | undefined, b: Buffer | undefined) => (a && b ? a.equals(b) : a === b);

  const check = () => {
    let raw: ReturnType<typeof readTlsFiles>;
    try {
      raw = readTlsFiles(files);
    } catch (error) {
      refuse(String((error as Error).message), error);
      return;
    }
    if (same(raw.cert, current.cert) && same(raw.key, current.key) && same(raw.ca, current.ca)) {
      rejected = undefined;
      return;
    }
    let next: TlsMaterial;
    try {
      next = checkTlsMaterial(files, raw);
    } catch (error) {
      const digest = createHash('sha256');
      for (const part of [raw.cert, raw.key, raw.ca]) digest.update(part ?? '').update('\0');
      refuse(digest.digest('hex'), error);
      return;
    }
    rejected = undefined;
    current = next;
    logger.info('tls files reloaded', { tls: name, ...leafFields(next) });
    for (const listener of listeners)
      try {
        listener(next);
      } catch (error) {
        logger.error('tls reload listener failed', { tls: name, error });
      }
  };
  const refuse = (key: string, error: unknown) => {
    if (rejected === key) return;
    rejected = key;
    logger.warn('tls files not reloaded: keeping the certificate in use', {
      tls: name,
      error: (error as Error).message,
      ...leafFields(current),
    });
  };

  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(paths.map((p) => dirname(p)))) {
    try {
      const watcher = watch(dir, { persistent: false }, schedule);
      watcher.on('error', () => {}); // the directory went away: the poll carries on
      watchers.push(watcher);
    } catch (error) {
      logger.warn('tls files: cannot watch their directory, reading them periodically', {
        tls: name,
        dir,
        error: (error as Error).message,
      });
    }
  }
  const poll = setInterval(check, options.pollMs ?? 10_000);
  poll.unref();

  return {
    get current() {
      return current;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      clearInterval(poll);
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
      listeners.clear();
    },
  };
}

/** The log fields of the leaf certificate in use. */
export function leafFields(material: TlsMaterial): Record<string, string> {
  if (!material.leaf) return {};
  return {
    fingerprint256: material.leaf.fingerprint256,
    subject: material.leaf.subject.replaceAll('\n', ', '),
    validTo: material.leaf.validTo,
  };
}
