/**
 * The embedded mode's data directory, owned by one process at a time: a lock
 * file holding the owner's pid; a lock whose process is gone is taken over.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export class DataDirInUseError extends Error {
  override readonly name = 'DataDirInUseError';
}

/** Locks `dir` (created if needed) for this process; returns the release function. */
export function lockDataDir(dir: string): () => void {
  const absolute = resolve(dir);
  mkdirSync(absolute, { recursive: true });
  const lockPath = join(absolute, '.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx' });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        rmSync(lockPath, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
      if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) {
        throw new DataDirInUseError(
          `data directory ${absolute} is in use by process ${holder}: embedded mode runs every role in one process ` +
            '(`tally all`); to run roles in several processes, point them at shared servers with TALLY_KAFKA_BROKERS, ' +
            'TALLY_REDIS_URL and TALLY_PG_URL, or give each its own TALLY_DATA_DIR',
        );
      }
      rmSync(lockPath, { force: true }); // stale: its process is gone
    }
  }
  throw new DataDirInUseError(`could not lock data directory ${absolute}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
