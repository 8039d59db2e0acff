/**
 * Destination limits in Redis (standalone or Cluster), shared by every sender replica:
 *
 *   <prefix>:rl:{<tag>}      the rate's GCRA bucket (redis-rate-limiter.ts, policy `delivery`)
 *   <prefix>:slots:{<tag>}   sorted set: lease name → expiry (ms, by Redis's clock)
 *
 * `<tag>` is the rate limiter's digest of (`delivery`, destination id): both keys of a
 * destination are in one hash slot. A slot is taken by one script (below) that drops the expired
 * leases, counts the rest and adds one when there is room, with Redis's own `TIME`, so replicas
 * whose clocks disagree share one clock; a release is a `ZREM`. The key expires with its last
 * lease. The rate is the API rate limits' script, one call per acquisition.
 */
import type { Cluster, Redis } from 'ioredis';
import { AppError, Code } from '../app-error.ts';
import { connectRedis, type RedisConnectionOptions } from '../redis-client.ts';
import { type DestinationLimiter, destinationLimiter, type SlotLeases } from './destination-limiter.ts';
import { checkEach } from './leased-rate-limiter.ts';
import { createRedisBuckets, keyTag } from './redis-rate-limiter.ts';

/**
 * KEYS[1] the slots; ARGV: lease name, limit, lease (ms). Returns { 1, 0 } when the lease was
 * added, else { 0, ms until the earliest lease expires }.
 */
export const SLOT_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return { 0, tonumber(first[2]) - now }
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], tonumber(last[2]) - now + 1)
return { 1, 0 }
`;

/** Longest a call waits for Redis before it fails (the sender then keeps its own limits). */
const DEFAULT_TIMEOUT_MS = 1_000;

export interface RedisDestinationLimiterOptions extends RedisConnectionOptions {
  keyPrefix: string;
  timeoutMs?: number;
}

type ClientWithScripts = (Redis | Cluster) & {
  tallySlot(key: string, lease: string, limit: string, leaseMs: string): Promise<[number, number]>;
};

/** The slots of `destination` under `prefix`. */
export function slotsKey(prefix: string, destination: string): string {
  return `${prefix}:slots:{${keyTag('delivery', destination)}}`;
}

export function createRedisDestinationLimiter(options: RedisDestinationLimiterOptions): DestinationLimiter {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { client, where, connectionError } = connectRedis(options, 'Redis destination limiter', {
    commandTimeout: timeoutMs,
  });
  client.defineCommand('tallySlot', { lua: SLOT_SCRIPT, numberOfKeys: 1 });
  const redis = client as ClientWithScripts;
  const prefix = options.keyPrefix;
  const guarded = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    const down = connectionError();
    if (down) throw new AppError(Code.UNAVAILABLE, `Redis ${what} failed`, { cause: down });
    try {
      return await call();
    } catch (error) {
      throw new AppError(Code.UNAVAILABLE, `Redis ${what} failed`, { cause: error });
    }
  };
  const description = `redis (ioredis, ${where})`;
  const slots: SlotLeases = {
    description,
    async acquire(key, lease, limit, leaseMs) {
      const [granted, untilExpiryMs] = await guarded('delivery slot', () =>
        redis.tallySlot(slotsKey(prefix, key), lease, String(limit), String(Math.ceil(leaseMs))),
      );
      return granted === 1 ? { granted: true } : { granted: false, untilExpiryMs };
    },
    async release(key, lease) {
      await guarded('delivery slot release', () => redis.zrem(slotsKey(prefix, key), lease));
    },
    async ping() {
      await guarded('ping', async () => {
        await redis.ping();
      });
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
  // The rate's buckets come with a quota counter on the same client, which the sender never uses.
  const { buckets, quotas } = createRedisBuckets({ ...options, timeoutMs });
  void quotas.close();
  return destinationLimiter(slots, checkEach(buckets), description);
}
