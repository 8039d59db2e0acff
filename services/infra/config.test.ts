import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from './config.ts';

test('defaults apply when nothing is set, and the result is frozen', () => {
  const config = loadConfig({});
  assert.equal(config.http.port, 8080);
  assert.equal(config.grpc.port, 50051);
  assert.equal(config.topics.events, 'events');
  assert.equal(config.topics.eventsPartitions, 12);
  assert.equal(config.ingest.maxLatenessMs, 7 * 24 * 3600_000);
  assert.equal(config.ingest.maxFutureMs, 5 * 60_000);
  assert.equal(config.kafka.brokers, undefined);
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.http));
});

test('values are parsed with their units and lists split', () => {
  const config = loadConfig({
    TALLY_KAFKA_BROKERS: 'a:1, b:2',
    TALLY_HTTP_PORT: '9000',
    TALLY_PG_MIGRATE: 'false',
    TALLY_REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2',
    OTHER: 'ignored',
  });
  assert.deepEqual(config.kafka.brokers, ['a:1', 'b:2']);
  assert.equal(config.http.port, 9000);
  assert.equal(config.pg.migrate, false);
  assert.deepEqual(config.redis.clusterNodes, ['127.0.0.1:1', '127.0.0.1:2']);
});

test('a bad value fails naming every bad variable', () => {
  assert.throws(
    () => loadConfig({ TALLY_HTTP_PORT: 'eighty', TALLY_PG_SCHEMA: 'Bad-Schema', TALLY_LOG_LEVEL: 'loud' }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /TALLY_HTTP_PORT/);
      assert.match(error.message, /TALLY_PG_SCHEMA/);
      assert.match(error.message, /TALLY_LOG_LEVEL/);
      return true;
    },
  );
});
