/**
 * Test support: a Redis server of the test's own (Debian's redis-server, append-only
 * file on), on a free loopback port, that the test may stop and start without
 * disturbing the shared server other tests use. Its data survives a stop.
 * Optionally it asks for a password (`requirepass`), knows an ACL user and speaks only
 * TLS, with a certificate made for the occasion (openssl); or it is a 3-master Redis
 * Cluster of the test's own, with the same options.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis, type RedisOptions } from 'ioredis';
import { waitFor } from './real-servers.ts';
import { selfSignedCertificate } from './self-signed.ts';
import { freePort } from './tally-process.ts';

export interface PrivateRedisOptions {
  /** `requirepass`: a client must AUTH with it (as user `default`). */
  password?: string;
  /** An ACL user besides `default`, allowed every command on every key. */
  user?: { username: string; password: string };
  /** Serve TLS only (no plaintext port), with a self-signed certificate for 127.0.0.1 and localhost. */
  tls?: boolean;
}

export interface PrivateRedis {
  /** `redis://127.0.0.1:<port>`, or `rediss://` with `tls`; without credentials. */
  readonly url: string;
  /** With `tls`: the server's certificate (PEM), which a client must trust. */
  readonly caFile: string | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function createPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-redis-'));
  const port = await freePort();
  const caFile = options.tls ? await selfSignedCertificate(dir) : undefined;
  const url = `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const redis: PrivateRedis = {
    url,
    caFile,
    async start() {
      child = spawn(
        'redis-server',
        [
          ...listenArgs(port, dir, options),
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'yes',
          '--appendfsync',
          'always',
        ],
        { stdio: 'ignore' },
      );
      await waitFor(
        () => answers(url, adminOptions(options, caFile)),
        () => `the private Redis at ${url} does not answer`,
        30_000,
        100,
      );
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
    async cleanup() {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return redis;
}

export interface PrivateRedisCluster {
  /** `127.0.0.1:<port>` of each master (TLS ports with `tls`). */
  readonly nodes: string[];
  /** With `tls`: the nodes' certificate (PEM), which a client must trust. */
  readonly caFile: string | undefined;
  cleanup(): Promise<void>;
}

/**
 * A 3-master Redis Cluster, no replicas, running once this resolves (cluster_state ok on
 * every node). With `password`, the nodes ask it of clients and of each other (`masterauth`).
 */
export async function createPrivateRedisCluster(
  options: Pick<PrivateRedisOptions, 'password' | 'tls'> = {},
): Promise<PrivateRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-redis-cluster-'));
  const children: ChildProcess[] = [];
  const cleanup = async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const caFile = options.tls ? await selfSignedCertificate(dir) : undefined;
    const ports = [await freePort(), await freePort(), await freePort()];
    const admin = adminOptions(options, caFile);
    for (const port of ports) {
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      // The bus port is chosen too: the default, port + 10000, may be taken or out of range.
      const busPort = await freePort();
      const args = [...listenArgs(port, dir, options), '--dir', nodeDir, '--save', '', '--appendonly', 'no'];
      args.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf');
      args.push('--cluster-node-timeout', '5000', '--cluster-port', String(busPort));
      if (options.password !== undefined) args.push('--masterauth', options.password);
      if (options.tls) args.push('--tls-cluster', 'yes', '--tls-replication', 'yes');
      children.push(spawn('redis-server', args, { stdio: 'ignore' }));
    }
    for (const port of ports)
      await waitFor(
        () => answers(`redis://127.0.0.1:${port}`, admin),
        () => `the private Redis Cluster node on ${port} does not answer`,
        30_000,
        100,
      );
    const cliArgs = ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`)];
    cliArgs.push('--cluster-replicas', '0', '--cluster-yes');
    if (caFile) cliArgs.unshift('--tls', '--cacert', caFile);
    await promisify(execFile)('redis-cli', cliArgs, {
      env: { ...process.env, ...(options.password !== undefined && { REDISCLI_AUTH: options.password }) },
    });
    const clusterOk = async (port: number) => {
      const client = new Redis({ ...admin, host: '127.0.0.1', port });
      client.on('error', () => {});
      try {
        await client.connect();
        const info = await client.cluster('INFO');
        return info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${ports.length}`);
      } catch {
        return false;
      } finally {
        client.disconnect();
      }
    };
    await waitFor(
      async () => (await Promise.all(ports.map(clusterOk))).every(Boolean),
      () => `the private Redis Cluster on ${ports.join(',')} is not ok`,
      30_000,
      200,
    );
    return { nodes: ports.map((p) => `127.0.0.1:${p}`), caFile, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** redis-server's listening, password, ACL and TLS arguments. */
function listenArgs(port: number, dir: string, options: PrivateRedisOptions): string[] {
  const args = ['--bind', '127.0.0.1'];
  if (options.tls) {
    args.push('--port', '0', '--tls-port', String(port));
    args.push('--tls-cert-file', join(dir, 'cert.pem'), '--tls-key-file', join(dir, 'key.pem'));
    args.push('--tls-ca-cert-file', join(dir, 'cert.pem'), '--tls-auth-clients', 'no');
  } else args.push('--port', String(port));
  if (options.password !== undefined) args.push('--requirepass', options.password);
  if (options.user)
    args.push('--user', options.user.username, 'on', `>${options.user.password}`, '~*', '&*', '+@all');
  return args;
}

/** What the helpers themselves connect with: the first credentials given, and the certificate. */
function adminOptions(options: PrivateRedisOptions, caFile: string | undefined): RedisOptions {
  return {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...(options.password !== undefined
      ? { password: options.password }
      : options.user && { username: options.user.username, password: options.user.password }),
    ...(caFile && { tls: { ca: readFileSync(caFile, 'utf8') } }),
  };
}

async function answers(url: string, options: RedisOptions): Promise<boolean> {
  const client = new Redis(url, options);
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
