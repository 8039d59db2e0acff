/**
 * Test support: a PostgreSQL server of the test's own (the binaries
 * `scripts/install-deps.sh` installed), on a free loopback port, that the test
 * may stop and start without disturbing the shared server other tests use.
 * As root it runs as the `postgres` system user, as PostgreSQL requires.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { waitFor } from './real-servers.ts';
import { freePort } from './tally-process.ts';

const run = promisify(execFile);

export interface PrivatePostgres {
  /** postgres://tally@127.0.0.1:<port>/tally (trust authentication on loopback). */
  readonly url: string;
  start(): Promise<void>;
  /** A clean stop (`pg_ctl -m fast`: a checkpoint, every committed transaction on disk). */
  stop(): Promise<void>;
  /**
   * A crash (`pg_ctl -m immediate`: every server process aborted at once, no checkpoint, and
   * what the WAL writer had not written yet is lost — asynchronous commits included); the next
   * start recovers from the WAL.
   */
  crash(): Promise<void>;
  cleanup(): Promise<void>;
}

function binDir(): string {
  if (process.env.TALLY_PG_BIN) return process.env.TALLY_PG_BIN;
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  for (const v of versions)
    if (existsSync(join('/usr/lib/postgresql', v, 'bin', 'postgres')))
      return join('/usr/lib/postgresql', v, 'bin');
  throw new Error('PostgreSQL binaries not found: run scripts/install-deps.sh');
}

export async function createPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const root = userInfo().uid === 0;
  const dir = mkdtempSync(join(tmpdir(), 'tally-pg-'));
  const data = join(dir, 'data');
  const asOwner = (cmd: string, args: string[]) =>
    root ? run('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]) : run(join(bin, cmd), args);
  if (root) {
    const { uid, gid } = await run('id', ['-u', 'postgres']).then(async ({ stdout }) => ({
      uid: Number(stdout.trim()),
      gid: Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
    }));
    chownSync(dir, uid, gid);
  }
  await asOwner('initdb', ['-D', data, '-U', 'tally', '-A', 'trust', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const url = `postgres://tally@127.0.0.1:${port}/postgres`;
  const answers = async () => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  };
  const server: PrivatePostgres = {
    url,
    async start() {
      await asOwner('pg_ctl', [
        '-D',
        data,
        '-l',
        join(dir, 'postgresql.log'),
        '-w',
        '-t',
        '60',
        '-o',
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
        'start',
      ]);
      await waitFor(answers, () => `the private PostgreSQL at ${url} does not answer`, 60_000, 200);
    },
    async stop() {
      await asOwner('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => {});
    },
    async crash() {
      await asOwner('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    },
    async cleanup() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}
