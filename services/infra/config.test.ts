import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, jwtVerifierOptions, loadConfig } from './config.ts';

test('defaults apply when nothing is set, and the result is frozen', () => {
  const config = loadConfig({});
  assert.equal(config.http.port, 8080);
  assert.equal(config.grpc.port, 50051);
  assert.equal(config.topics.events, 'events');
  assert.equal(config.topics.eventsPartitions, 12);
  assert.equal(config.ingest.maxLatenessMs, 7 * 24 * 3600_000);
  assert.equal(config.ingest.maxFutureMs, 5 * 60_000);
  assert.equal(config.kafka.brokers, undefined);
  assert.equal(config.metrics.port, 9464);
  assert.equal(config.consumer.lagIntervalMs, 5_000);
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.http));
});

test('values are parsed with their units and lists split', () => {
  const config = loadConfig({
    TALLY_KAFKA_BROKERS: 'a:1, b:2',
    TALLY_HTTP_PORT: '9000',
    TALLY_PG_MIGRATE: 'false',
    TALLY_REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2',
    TALLY_METRICS_PORT: '0',
    TALLY_CONSUMER_LAG_INTERVAL_MS: '1000',
    TALLY_BIND_HOST: '127.0.0.1',
    OTHER: 'ignored',
  });
  assert.deepEqual(config.kafka.brokers, ['a:1', 'b:2']);
  assert.equal(config.http.port, 9000);
  assert.equal(config.pg.migrate, false);
  assert.deepEqual(config.redis.clusterNodes, ['127.0.0.1:1', '127.0.0.1:2']);
  assert.deepEqual(config.metrics, { host: '127.0.0.1', port: 0 });
  assert.equal(config.consumer.lagIntervalMs, 1000);
});

test('a bad value fails naming every bad variable', () => {
  assert.throws(
    () =>
      loadConfig({
        TALLY_HTTP_PORT: 'eighty',
        TALLY_PG_SCHEMA: 'Bad-Schema',
        TALLY_LOG_LEVEL: 'loud',
        TALLY_METRICS_PORT: '70000',
        TALLY_CONSUMER_LAG_INTERVAL_MS: '5',
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /TALLY_METRICS_PORT/);
      assert.match(error.message, /TALLY_CONSUMER_LAG_INTERVAL_MS/);
      assert.match(error.message, /TALLY_HTTP_PORT/);
      assert.match(error.message, /TALLY_PG_SCHEMA/);
      assert.match(error.message, /TALLY_LOG_LEVEL/);
      return true;
    },
  );
});

test('the consumer session timeout stays within what the broker accepts', () => {
  assert.equal(loadConfig({}).kafka.sessionTimeoutMs, 30_000);
  assert.equal(loadConfig({ TALLY_KAFKA_SESSION_TIMEOUT_MS: '10000' }).kafka.sessionTimeoutMs, 10_000);
  for (const bad of ['1000', '600000', 'soon'])
    assert.throws(
      () => loadConfig({ TALLY_KAFKA_SESSION_TIMEOUT_MS: bad }),
      (error: unknown) =>
        error instanceof ConfigError && /TALLY_KAFKA_SESSION_TIMEOUT_MS/.test(error.message),
    );
});

test('TALLY_KAFKA_CLIENT picks the Kafka client library', () => {
  assert.equal(loadConfig({}).kafka.client, 'kafkajs');
  assert.equal(loadConfig({ TALLY_KAFKA_CLIENT: 'platformatic' }).kafka.client, 'platformatic');
  assert.throws(
    () => loadConfig({ TALLY_KAFKA_CLIENT: 'librdkafka' }),
    (error: unknown) => error instanceof ConfigError && /TALLY_KAFKA_CLIENT/.test(error.message),
  );
});

test('Redis credentials and TLS: none by default, from TALLY_REDIS_* or a rediss:// URL', () => {
  const none = loadConfig({ TALLY_REDIS_URL: 'redis://:in-url@127.0.0.1:6379' });
  assert.equal(none.redis.auth, undefined, 'the URL keeps its own credentials');
  assert.equal(none.redis.tls, undefined);
  const cluster = loadConfig({
    TALLY_REDIS_CLUSTER_NODES: 'a:1,b:2',
    TALLY_REDIS_USERNAME: 'tally',
    TALLY_REDIS_PASSWORD: 's3cret',
    TALLY_REDIS_TLS: 'true',
    TALLY_REDIS_TLS_CA_FILE: '/etc/tally/redis-ca/ca.crt',
  });
  assert.deepEqual(cluster.redis.auth, { username: 'tally', password: 's3cret' });
  assert.deepEqual(cluster.redis.tls, { caFile: '/etc/tally/redis-ca/ca.crt' });
  assert.deepEqual(loadConfig({ TALLY_REDIS_PASSWORD: 'p' }).redis.auth, {
    username: undefined,
    password: 'p',
  });
  const rediss = loadConfig({
    TALLY_REDIS_URL: 'rediss://redis.example:6380',
    TALLY_REDIS_TLS_CA_FILE: '/ca.pem',
  });
  assert.deepEqual(rediss.redis.tls, { caFile: '/ca.pem' });
  assert.deepEqual(loadConfig({ TALLY_REDIS_TLS: '1' }).redis.tls, { caFile: undefined });
});

test('Redis settings that do not go together fail naming the variable', () => {
  const fails = (env: Record<string, string>, message: RegExp) =>
    assert.throws(
      () => loadConfig(env),
      (error: unknown) => error instanceof ConfigError && message.test(error.message),
    );
  fails(
    { TALLY_REDIS_TLS_CA_FILE: '/ca.pem' },
    /TALLY_REDIS_TLS_CA_FILE: set without TLS: set TALLY_REDIS_TLS=true/,
  );
  fails(
    { TALLY_REDIS_URL: 'redis://r:6379', TALLY_REDIS_TLS: 'false', TALLY_REDIS_TLS_CA_FILE: '/ca.pem' },
    /TALLY_REDIS_TLS_CA_FILE/,
  );
  fails({ TALLY_REDIS_USERNAME: 'tally' }, /TALLY_REDIS_PASSWORD: required with TALLY_REDIS_USERNAME/);
  fails({ TALLY_REDIS_TLS: 'yes' }, /TALLY_REDIS_TLS/);
});

test('JWT verification is off by default, and its settings parse with their defaults', () => {
  assert.equal(loadConfig({}).jwt, undefined);
  const jwks = loadConfig({
    TALLY_JWT_JWKS_URL: 'https://id.example/.well-known/jwks.json',
    TALLY_JWT_ISSUER: 'https://id.example/',
    TALLY_JWT_AUDIENCE: 'tally, tally-staging',
  });
  assert.deepEqual(jwks.jwt, {
    jwksUrl: 'https://id.example/.well-known/jwks.json',
    publicKeyFile: undefined,
    issuer: 'https://id.example/',
    audience: ['tally', 'tally-staging'],
    algorithms: ['RS256', 'ES256', 'EdDSA'],
    scopesClaim: 'scope',
    clockToleranceSec: 30,
  });
  assert.deepEqual(jwtVerifierOptions(jwks.jwt!), {
    jwksUrl: 'https://id.example/.well-known/jwks.json',
    issuer: 'https://id.example/',
    audience: ['tally', 'tally-staging'],
    algorithms: ['RS256', 'ES256', 'EdDSA'],
    scopesClaim: 'scope',
    clockToleranceSec: 30,
  });
  const local = loadConfig({
    TALLY_JWT_JWKS_URL: 'http://127.0.0.1:8081/jwks.json',
    TALLY_JWT_ISSUER: 'i',
    TALLY_JWT_AUDIENCE: 'a',
    TALLY_JWT_ALGORITHMS: 'ES384,PS256',
    TALLY_JWT_SCOPES_CLAIM: 'scp',
    TALLY_JWT_CLOCK_TOLERANCE_S: '5',
  });
  assert.deepEqual(local.jwt?.algorithms, ['ES384', 'PS256']);
  assert.equal(local.jwt?.scopesClaim, 'scp');
  assert.equal(local.jwt?.clockToleranceSec, 5);
});

test('a JWT public key file is read into the verifier options, or fails naming the variable', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-jwt-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  writeFileSync(join(dir, 'key.pem'), pem);
  writeFileSync(join(dir, 'not-a-key.pem'), 'hello');
  const env = { TALLY_JWT_ISSUER: 'i', TALLY_JWT_AUDIENCE: 'a' };
  const config = loadConfig({ ...env, TALLY_JWT_PUBLIC_KEY_FILE: join(dir, 'key.pem') });
  assert.equal(jwtVerifierOptions(config.jwt!).publicKeyPem, pem);
  for (const file of ['not-a-key.pem', 'missing.pem'])
    assert.throws(
      () => jwtVerifierOptions(loadConfig({ ...env, TALLY_JWT_PUBLIC_KEY_FILE: join(dir, file) }).jwt!),
      (error: unknown) => error instanceof ConfigError && /TALLY_JWT_PUBLIC_KEY_FILE: /.test(error.message),
    );
});

test('JWT settings that are bad or do not go together fail naming the variable', () => {
  const fails = (env: Record<string, string>, message: RegExp) =>
    assert.throws(
      () => loadConfig(env),
      (error: unknown) => error instanceof ConfigError && message.test(error.message),
      JSON.stringify(env),
    );
  const ok = {
    TALLY_JWT_JWKS_URL: 'https://id.example/jwks',
    TALLY_JWT_ISSUER: 'i',
    TALLY_JWT_AUDIENCE: 'a',
  };
  fails(
    { ...ok, TALLY_JWT_ALGORITHMS: 'RS256,none' },
    /TALLY_JWT_ALGORITHMS: "none" is not allowed: each one of RS256/,
  );
  fails({ ...ok, TALLY_JWT_ALGORITHMS: 'HS256' }, /TALLY_JWT_ALGORITHMS/);
  fails({ ...ok, TALLY_JWT_ALGORITHMS: ' , ' }, /TALLY_JWT_ALGORITHMS/);
  fails({ ...ok, TALLY_JWT_JWKS_URL: 'http://id.example/jwks' }, /TALLY_JWT_JWKS_URL: must be https/);
  fails({ ...ok, TALLY_JWT_JWKS_URL: 'not a url' }, /TALLY_JWT_JWKS_URL/);
  fails({ ...ok, TALLY_JWT_CLOCK_TOLERANCE_S: '301' }, /TALLY_JWT_CLOCK_TOLERANCE_S/);
  fails({ ...ok, TALLY_JWT_SCOPES_CLAIM: 'has space' }, /TALLY_JWT_SCOPES_CLAIM/);
  fails(
    { ...ok, TALLY_JWT_PUBLIC_KEY_FILE: '/k.pem' },
    /TALLY_JWT_PUBLIC_KEY_FILE: set with TALLY_JWT_JWKS_URL/,
  );
  fails({ TALLY_JWT_JWKS_URL: ok.TALLY_JWT_JWKS_URL }, /TALLY_JWT_ISSUER: required with/);
  fails(
    { TALLY_JWT_JWKS_URL: ok.TALLY_JWT_JWKS_URL, TALLY_JWT_ISSUER: 'i' },
    /TALLY_JWT_AUDIENCE: required with/,
  );
  fails({ TALLY_JWT_ISSUER: 'i' }, /TALLY_JWT_ISSUER: set without TALLY_JWT_JWKS_URL/);
});

test('rate limits: on with generous defaults, per minute, with trusted proxies as CIDR ranges; mistakes named', () => {
  const defaults = loadConfig({});
  assert.deepEqual(defaults.rateLimits, {
    ingestPerMin: 3_000_000,
    readPerMin: 60_000,
    ipPerMin: undefined,
    failure: 'open',
    redisUrl: undefined,
  });
  assert.deepEqual(defaults.trustedProxies, []);
  const set = loadConfig({
    TALLY_RATE_LIMIT_INGEST_PER_MIN: '1000',
    TALLY_RATE_LIMIT_READ_PER_MIN: '60',
    TALLY_RATE_LIMIT_IP_PER_MIN: '100',
    TALLY_RATE_LIMIT_FAILURE: 'closed',
    TALLY_RATE_LIMIT_REDIS_URL: 'redis://127.0.0.1:6380',
    TALLY_TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.7, fd00::/8, ::ffff:172.16.0.0/108',
  });
  assert.deepEqual(set.rateLimits, {
    ingestPerMin: 1000,
    readPerMin: 60,
    ipPerMin: 100,
    failure: 'closed',
    redisUrl: 'redis://127.0.0.1:6380',
  });
  assert.deepEqual(
    set.trustedProxies.map((c) => [c.family, c.bits]),
    [
      [4, 8],
      [4, 32],
      [6, 8],
      [4, 12],
    ],
  );
  assert.equal(loadConfig({ TALLY_RATE_LIMITS: 'off' }).rateLimits, undefined);
  const fails = (env: Record<string, string>, message: RegExp) =>
    assert.throws(
      () => loadConfig(env),
      (error: unknown) => error instanceof ConfigError && message.test(error.message),
    );
  fails({ TALLY_RATE_LIMIT_INGEST_PER_MIN: '0' }, /TALLY_RATE_LIMIT_INGEST_PER_MIN/);
  fails({ TALLY_RATE_LIMIT_READ_PER_MIN: '1.5' }, /TALLY_RATE_LIMIT_READ_PER_MIN/);
  fails({ TALLY_RATE_LIMIT_IP_PER_MIN: '60000001' }, /TALLY_RATE_LIMIT_IP_PER_MIN/);
  fails({ TALLY_RATE_LIMIT_FAILURE: 'maybe' }, /TALLY_RATE_LIMIT_FAILURE/);
  fails({ TALLY_RATE_LIMITS: 'yes' }, /TALLY_RATE_LIMITS/);
  fails(
    { TALLY_RATE_LIMITS: 'off', TALLY_RATE_LIMIT_IP_PER_MIN: '10' },
    /TALLY_RATE_LIMIT_IP_PER_MIN: set with TALLY_RATE_LIMITS=off/,
  );
  fails(
    { TALLY_TRUSTED_PROXIES: '10.0.0.0/33' },
    /TALLY_TRUSTED_PROXIES: "10.0.0.0\/33": the prefix length must be 0 to 32/,
  );
  fails({ TALLY_TRUSTED_PROXIES: '10.0.0.1/8' }, /host bits are set \(did you mean 10.0.0.0\/8\?\)/);
  fails({ TALLY_TRUSTED_PROXIES: 'proxy.local' }, /"proxy.local" is not an IP address or a CIDR range/);
});

test('two topics of different kinds may not be one topic', () => {
  assert.throws(
    () => loadConfig({ TALLY_NOTIFICATIONS_TOPIC: 'events.accepted' }),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.includes(
        'TALLY_NOTIFICATIONS_TOPIC: must differ from TALLY_ACCEPTED_TOPIC (both are "events.accepted")',
      ),
  );
  assert.throws(
    () => loadConfig({ TALLY_DLQ_TOPIC: 'events' }),
    /TALLY_DLQ_TOPIC: must differ from TALLY_EVENTS_TOPIC/,
  );
  assert.equal(loadConfig({ TALLY_NOTIFICATIONS_TOPIC: 'alerts' }).topics.notifications, 'alerts');
});

test('event retention: every day kept by default; when set, more than the lateness ingest accepts', () => {
  assert.equal(loadConfig({}).eventRetentionDays, 0);
  assert.equal(loadConfig({ TALLY_EVENT_RETENTION_DAYS: '30' }).eventRetentionDays, 30);
  assert.equal(
    loadConfig({ TALLY_EVENT_RETENTION_DAYS: '1', TALLY_MAX_LATENESS_MS: '3600000' }).eventRetentionDays,
    1,
  );
  for (const env of [
    { TALLY_EVENT_RETENTION_DAYS: '7' }, // the default lateness is 7 days
    { TALLY_EVENT_RETENTION_DAYS: '-1' },
    { TALLY_EVENT_RETENTION_DAYS: 'a week' },
  ])
    assert.throws(
      () => loadConfig(env),
      (error: unknown) => error instanceof ConfigError && /TALLY_EVENT_RETENTION_DAYS/.test(error.message),
      JSON.stringify(env),
    );
});
