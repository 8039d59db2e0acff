/**
 * Passwords, ACL users and TLS to Redis, standalone and Cluster, from the TALLY_REDIS_* variables
 * (through loadConfig and redisSecurity, as main.ts does), against servers of the test's own.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cluster } from 'ioredis';
import {
  createPrivateRedis,
  createPrivateRedisCluster,
  type PrivateRedis,
  type PrivateRedisCluster,
} from '../../testing/private-redis.ts';
import { countOf } from '../../testing/tally-client.ts';
import { startTally } from '../../testing/tally-process.ts';
import { AppError, Code } from '../app-error.ts';
import { ConfigError, loadConfig, redisSecurity } from '../config.ts';
import { inPartition } from './counter-store.contract.ts';
import type { CounterStore } from './counter-store.ts';
import { createRedisCounterStore } from './redis-counter-store.ts';

const PASSWORD = `pw-${randomUUID()}`;
const USER = { username: 'tally-app', password: `user-pw-${randomUUID()}` };
/** A failure must come within this, never hang. */
const NO_HANG = { timeout: 20_000 };

/** A counter store as main.ts opens it from `env`. */
function storeFor(env: Record<string, string>): CounterStore {
  const config = loadConfig(env);
  return createRedisCounterStore({
    url: config.redis.url,
    clusterNodes: config.redis.clusterNodes,
    security: redisSecurity(config.redis),
    keyPrefix: `auth-${randomUUID()}`,
  });
}

/** Applies two events (one twice) and reads them back: what a user of the store relies on. */
async function assertCounts(store: CounterStore): Promise<void> {
  const target = `https://auth.example/${randomUUID()}`;
  const applied = await store.apply(
    inPartition(0, [
      { position: 1n, target, type: 'like', value: 2 },
      { position: 2n, target, type: 'like', value: 3 },
    ]),
  );
  assert.equal(applied, 2);
  assert.equal(await store.apply(inPartition(0, [{ position: 1n, target, type: 'like', value: 2 }])), 0);
  assert.deepEqual(await store.read(target), [{ type: 'like', count: 2, sum: 5 }]);
  const [leaders] = await store.top(['like'], 1000);
  assert.deepEqual(
    leaders?.targets.find((t) => t.target === target),
    { target, count: 2 },
  );
}

/** `work` fails as the store fails when Redis is unreachable: UNAVAILABLE, Redis's reason as the cause. */
async function assertRefused(work: Promise<unknown>, reason: RegExp): Promise<void> {
  await assert.rejects(work, (error: unknown) => {
    assert.ok(error instanceof AppError, String(error));
    assert.equal(error.code, Code.UNAVAILABLE);
    assert.match(String((error.cause as Error | undefined)?.message), reason);
    return true;
  });
}

describe('standalone Redis with requirepass and an ACL user', () => {
  let redis: PrivateRedis;
  before(async () => {
    redis = await createPrivateRedis({ password: PASSWORD, user: USER });
    await redis.start();
  });
  after(() => redis?.cleanup());
  const port = () => new URL(redis.url).port;

  test('TALLY_REDIS_PASSWORD: the store applies and reads', async (t) => {
    const store = storeFor({ TALLY_REDIS_URL: redis.url, TALLY_REDIS_PASSWORD: PASSWORD });
    t.after(() => store.close());
    await assertCounts(store);
    assert.match(store.description, /plaintext, AUTH as default\)$/);
    assert.ok(!store.description.includes(PASSWORD), store.description);
  });

  test('TALLY_REDIS_USERNAME: the store authenticates as that ACL user', async (t) => {
    const store = storeFor({
      TALLY_REDIS_URL: redis.url,
      TALLY_REDIS_USERNAME: USER.username,
      TALLY_REDIS_PASSWORD: USER.password,
    });
    t.after(() => store.close());
    await assertCounts(store);
    assert.match(store.description, /AUTH as tally-app\)$/);
  });

  test('credentials in the URL keep working, and are not shown', async (t) => {
    const store = storeFor({
      TALLY_REDIS_URL: `redis://${USER.username}:${encodeURIComponent(USER.password)}@127.0.0.1:${port()}`,
    });
    t.after(() => store.close());
    await assertCounts(store);
    assert.match(store.description, /redis:\/\/127\.0\.0\.1:\d+, plaintext, AUTH as tally-app\)$/);
    assert.ok(!store.description.includes(USER.password), store.description);
  });

  test('the variables apply over the credentials in the URL', async (t) => {
    const store = storeFor({
      TALLY_REDIS_URL: `redis://:stale-password@127.0.0.1:${port()}`,
      TALLY_REDIS_PASSWORD: PASSWORD,
    });
    t.after(() => store.close());
    await assertCounts(store);
  });

  test(
    'a wrong password fails each call with UNAVAILABLE and WRONGPASS, without hanging',
    NO_HANG,
    async (t) => {
      const store = storeFor({ TALLY_REDIS_URL: redis.url, TALLY_REDIS_PASSWORD: 'wrong' });
      t.after(() => store.close());
      await assertRefused(store.read('https://auth.example/x'), /WRONGPASS/);
      await assertRefused(
        store.apply(
          inPartition(0, [
            { position: 1n, target: 'https://auth.example/x', type: 'like', value: undefined },
          ]),
        ),
        /WRONGPASS/,
      );
    },
  );

  test('no password fails each call with UNAVAILABLE and NOAUTH, without hanging', NO_HANG, async (t) => {
    const store = storeFor({ TALLY_REDIS_URL: redis.url });
    t.after(() => store.close());
    await assertRefused(store.read('https://auth.example/x'), /NOAUTH/);
  });

  test(
    'a process with a wrong password is not ready (its /readyz names Redis and WRONGPASS), answers UNAVAILABLE and logs why',
    NO_HANG,
    async (t) => {
      const dataDir = mkdtempSync(join(tmpdir(), 'tally-auth-'));
      t.after(() => rmSync(dataDir, { recursive: true, force: true }));
      const tally = await startTally(['query'], {
        TALLY_DATA_DIR: dataDir,
        TALLY_REDIS_URL: redis.url,
        TALLY_REDIS_PASSWORD: 'wrong',
        TALLY_GRPC_PORT: '0',
        TALLY_BIND_HOST: '127.0.0.1',
      });
      t.after(() => tally.kill('SIGKILL'));
      assert.ok(
        tally.lines.some((l) => l.includes('AUTH as default') && !l.includes('wrong')),
        'the start-up log names the Redis user, never the password',
      );
      // Not ready, and says why: the counter store (Redis) refuses its credentials.
      const ready = await fetch(`http://127.0.0.1:${tally.metricsPort}/readyz`);
      const report = (await ready.json()) as {
        ready: boolean;
        backends: Record<string, { adapter: string; ok: boolean; error?: string }>;
      };
      assert.equal(ready.status, 503, JSON.stringify(report));
      assert.equal(report.ready, false);
      assert.match(report.backends.counters?.adapter ?? '', /^redis /);
      assert.equal(report.backends.counters?.ok, false);
      assert.match(report.backends.counters?.error ?? '', /WRONGPASS/);
      assert.ok(!JSON.stringify(report).includes('wrong'), 'the report never shows the password');
      await assert.rejects(countOf(tally.grpcPort!, 'https://auth.example/x'), (error: unknown) => {
        assert.equal((error as { code?: number }).code, Code.UNAVAILABLE, String(error));
        return true;
      });
      assert.ok(
        tally.lines.some((l) => l.includes('rpc unavailable') && l.includes('WRONGPASS')),
        tally.lines.slice(-5).join('\n'),
      );
    },
  );

  test('the same process with the right password is ready', NO_HANG, async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tally-auth-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const tally = await startTally(['query'], {
      TALLY_DATA_DIR: dataDir,
      TALLY_REDIS_URL: redis.url,
      TALLY_REDIS_PASSWORD: PASSWORD,
      TALLY_GRPC_PORT: '0',
      TALLY_BIND_HOST: '127.0.0.1',
    });
    t.after(() => tally.kill('SIGKILL'));
    // The embedded PostgreSQL may still be migrating: ready within the start-up, as a probe would see.
    let ready: Response | undefined;
    for (let i = 0; i < 100; i++) {
      ready = await fetch(`http://127.0.0.1:${tally.metricsPort}/readyz`);
      if (ready.status === 200) break;
      await ready.arrayBuffer();
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(ready?.status, 200, await ready?.text());
  });
});

describe('standalone Redis over TLS', () => {
  let redis: PrivateRedis;
  before(async () => {
    redis = await createPrivateRedis({ password: PASSWORD, tls: true });
    await redis.start();
  });
  after(() => redis?.cleanup());
  const plainUrl = () => redis.url.replace(/^rediss:/, 'redis:');

  test('TALLY_REDIS_TLS with the CA of TALLY_REDIS_TLS_CA_FILE: the store applies and reads', async (t) => {
    const store = storeFor({
      TALLY_REDIS_URL: plainUrl(),
      TALLY_REDIS_PASSWORD: PASSWORD,
      TALLY_REDIS_TLS: 'true',
      TALLY_REDIS_TLS_CA_FILE: redis.caFile!,
    });
    t.after(() => store.close());
    await assertCounts(store);
    assert.match(store.description, /, TLS, AUTH as default\)$/);
  });

  test('a rediss:// URL turns TLS on, the CA file applying to it', async (t) => {
    const store = storeFor({
      TALLY_REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1:${new URL(redis.url).port}`,
      TALLY_REDIS_TLS_CA_FILE: redis.caFile!,
    });
    t.after(() => store.close());
    await assertCounts(store);
  });

  test('a certificate the client does not trust fails each call, without hanging', NO_HANG, async (t) => {
    const store = storeFor({ TALLY_REDIS_URL: redis.url, TALLY_REDIS_PASSWORD: PASSWORD });
    t.after(() => store.close());
    await assertRefused(store.read('https://auth.example/x'), /self[- ]signed certificate/);
  });

  test('TALLY_REDIS_TLS_CA_FILE unreadable, or no PEM: a ConfigError naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-redis-ca-'));
    try {
      const notPem = join(dir, 'ca.txt');
      writeFileSync(notPem, 'not a certificate');
      for (const [file, why] of [
        [join(dir, 'missing.pem'), /cannot read/],
        [notPem, /holds no PEM certificate/],
      ] as const) {
        const config = loadConfig({
          TALLY_REDIS_URL: redis.url,
          TALLY_REDIS_TLS_CA_FILE: file,
        });
        assert.throws(
          () => redisSecurity(config.redis),
          (error: unknown) =>
            error instanceof ConfigError &&
            /TALLY_REDIS_TLS_CA_FILE/.test(error.message) &&
            why.test(error.message),
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Deletes the keys a store wrote on every master. */
async function deleteClusterKeys(cluster: Cluster): Promise<void> {
  for (const node of cluster.nodes('master')) {
    const keys = await node.keys('auth-*');
    for (const key of keys) await node.del(key);
  }
}

describe('Redis Cluster with requirepass and masterauth', () => {
  let cluster: PrivateRedisCluster;
  before(async () => {
    cluster = await createPrivateRedisCluster({ password: PASSWORD });
  });
  after(() => cluster?.cleanup());

  test('TALLY_REDIS_PASSWORD: the store applies and reads across the masters', async (t) => {
    const store = storeFor({ TALLY_REDIS_CLUSTER_NODES: cluster.nodes[0]!, TALLY_REDIS_PASSWORD: PASSWORD });
    t.after(() => store.close());
    // Several targets, so that their slots fall on more than one master.
    for (let i = 0; i < 4; i++) await assertCounts(store);
    const admin = new Cluster([hostPort(cluster.nodes[0]!)], {
      lazyConnect: true,
      redisOptions: { password: PASSWORD },
    });
    t.after(async () => {
      await deleteClusterKeys(admin);
      await admin.quit();
    });
    await admin.connect();
    const holding = await Promise.all(admin.nodes('master').map((n) => n.dbsize()));
    assert.ok(holding.filter((n) => n > 0).length > 1, `keys per master: ${holding.join(', ')}`);
  });

  test('a wrong password fails each call with UNAVAILABLE, without hanging', NO_HANG, async (t) => {
    const store = storeFor({
      TALLY_REDIS_CLUSTER_NODES: cluster.nodes.join(','),
      TALLY_REDIS_PASSWORD: 'wrong',
    });
    t.after(() => store.close());
    await assertRefused(store.read('https://auth.example/x'), /WRONGPASS/);
  });
});

describe('Redis Cluster over TLS with requirepass', () => {
  let cluster: PrivateRedisCluster;
  before(async () => {
    cluster = await createPrivateRedisCluster({ password: PASSWORD, tls: true });
  });
  after(() => cluster?.cleanup());

  test('TALLY_REDIS_TLS: the store applies and reads, the first node given by name', async (t) => {
    // localhost: the certificate is checked against the name given, not an address it resolves to.
    const first = `localhost:${hostPort(cluster.nodes[0]!).port}`;
    const store = storeFor({
      TALLY_REDIS_CLUSTER_NODES: first,
      TALLY_REDIS_PASSWORD: PASSWORD,
      TALLY_REDIS_TLS: 'true',
      TALLY_REDIS_TLS_CA_FILE: cluster.caFile!,
    });
    t.after(() => store.close());
    for (let i = 0; i < 4; i++) await assertCounts(store);
    assert.match(store.description, /cluster localhost:\d+, TLS, AUTH as default\)$/);
  });
});

function hostPort(node: string): { host: string; port: number } {
  const [host, port] = node.split(':');
  return { host: host!, port: Number(port) };
}
