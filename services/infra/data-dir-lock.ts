/**
 * One process per data directory: a `LOCK` file holding the owner's pid. A
 * lock whose process is gone (a crash, kill -9) is taken over. Liveness is
 * judged by pid on this machine: the directory must not be shared between hosts.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AppError, Code } from './app-error.ts';
import { errnoCode, fsyncDir } from './log/embedded/files.ts';
import type { Logger } from './logger.ts';

/** Directories this process holds (a pid in a lock file can be ours from a previous life, e.g. pid 1 in a container). */
const heldHere = new Set<string>();

interface LockContent {
  pid: number;
}

/** A data directory another live process (or this one) holds: FAILED_PRECONDITION naming the holder. */
export class DataDirInUseError extends AppError {
  constructor(message: string) {
    super(Code.FAILED_PRECONDITION, message, { retryable: false });
    this.name = 'DataDirInUseError';
  }
}

export interface LockDataDirOptions {
  /** What lives in the directory, for the error: `the event log`, `the data directory`. */
  what?: string;
  /** Added to the error: what the user can do instead. */
  hint?: string;
}

/**
 * Locks `dir` (absolute; created if missing) for this process; resolves to the release function.
 * Fails with DataDirInUseError naming the holder when a live process has it.
 */
export async function lockDataDir(
  dir: string,
  logger: Logger,
  options: LockDataDirOptions = {},
): Promise<() => Promise<void>> {
  const lockPath = join(dir, 'LOCK');
  const locked = (pid: number) => lockedError(dir, lockPath, pid, options);
  if (heldHere.has(dir)) throw locked(process.pid);
  heldHere.add(dir); // before any await: a second open in this process fails above
  try {
    await mkdir(dir, { recursive: true });
    return await acquire(dir, lockPath, logger, locked);
  } catch (error) {
    heldHere.delete(dir);
    throw error;
  }
}

async function acquire(
  dir: string,
  lockPath: string,
  logger: Logger,
  locked: (pid: number) => DataDirInUseError,
): Promise<() => Promise<void>> {
  const mine = `${JSON.stringify({
    pid: process.pid,
    hostname: hostname(),
    startedAt: new Date().toISOString(),
    nonce: randomBytes(8).toString('hex'),
  })}\n`;
  for (let attempt = 0; attempt < 20; attempt++) {
    // Written aside, then linked into place: the lock file is never seen half-written.
    const temporary = join(dir, `.LOCK.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(mine);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    try {
      await link(temporary, lockPath);
      await unlink(temporary);
      await fsyncDir(dir);
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        if ((await readIfExists(lockPath)) === mine) await unlink(lockPath).catch(() => {});
        heldHere.delete(dir);
      };
    } catch (error) {
      await unlink(temporary).catch(() => {});
      if (errnoCode(error) !== 'EEXIST') throw error;
    }

    const content = await readIfExists(lockPath);
    if (content === undefined) continue;
    const holder = parseLock(content);
    // Our own pid here is a previous life's (a restarted container is pid 1 again): this process holds no lock on dir.
    if (holder && holder.pid !== process.pid && isAlive(holder.pid)) throw locked(holder.pid);

    // Stale. Move it aside and check it was the stale one we read, not a lock just taken by another process.
    const aside = join(dir, `.LOCK.stale.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await rename(lockPath, aside);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') continue;
      throw error;
    }
    const moved = await readIfExists(aside);
    if (moved !== content) await link(aside, lockPath).catch(() => {});
    else logger.warn('took over the lock of a process that is gone', { dir, pid: holder?.pid });
    await unlink(aside).catch(() => {});
  }
  throw new AppError(Code.UNAVAILABLE, `could not lock ${dir}: the lock file keeps changing`);
}

function lockedError(
  dir: string,
  lockPath: string,
  pid: number,
  options: LockDataDirOptions,
): DataDirInUseError {
  return new DataDirInUseError(
    `${options.what ?? 'the data directory'} in ${dir} is in use by process ${pid}` +
      `${pid === process.pid ? ' (this process)' : ''}: one process per data directory ` +
      `(lock file ${lockPath}; remove it only if no such process runs)${options.hint ? `; ${options.hint}` : ''}`,
  );
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

function parseLock(content: string): LockContent | undefined {
  try {
    const parsed: unknown = JSON.parse(content);
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const { pid } = parsed as Record<string, unknown>;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return undefined;
    return { pid };
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === 'EPERM';
  }
}
