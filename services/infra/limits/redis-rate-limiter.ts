/**
 * Rate limits and monthly quotas in Redis (standalone or Cluster), shared by every gateway.
 *
 *   <prefix>:rl:{<digest>}            string: the bucket's TAT (µs since the epoch, by Redis's clock)
 *   <prefix>:q:{<digest>}:<YYYY-MM>   string: units used in that month (UTC)
 *
 * `<digest>` is 22 characters of base64url SHA-256 of the policy's (or quota's) name and the key,
 * so a key of any content (braces included) is one hash tag, one slot, one key per call. Each
 * take of units is one script call (EVALSHA, through ioredis's `defineCommand`): it reads the TAT,
 * decides by GCRA with the time from Redis's own `TIME` (gateways whose clocks disagree still
 * share one clock per key: the master's that holds it), writes the new TAT with an expiry at that
 * TAT, and answers the time and the TAT it judged by, from which `gcraTake` gives the rest of the
 * decision in TypeScript (it checks it reaches the same verdict as the script). A bucket whose TAT
 * has passed is full, so the key expires then: an idle key holds nothing. The limiter takes units
 * in slices and spends them in the process (leased-rate-limiter.ts), giving back what it does not
 * spend with a second script.
 *
 * A quota's month is taken from the caller's clock (a few seconds of skew between gateways at a
 * month's boundary are harmless); its key expires a day after the month ends.
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { burstOf, emissionIntervalUs, type GcraPolicy, gcraTake } from '../../domain/gcra.ts';
import { AppError, Code } from '../app-error.ts';
import { connectRedis, type RedisConnectionOptions } from '../redis-client.ts';
import { checkEach, type LeaseOptions, leasedLimiter } from './leased-rate-limiter.ts';
import {
  assertCheckable,
  assertConsumable,
  decisionOf,
  monthOf,
  type Quota,
  type QuotaCounter,
  type QuotaDecision,
  quotaDecision,
  type RateLimiter,
  type SharedBuckets,
} from './rate-limiter.ts';

/**
 * KEYS[1] the bucket; ARGV: emission interval T (µs), burst (units), least, most (units). Takes
 * what the bucket holds up to `most` when it holds `least` — when max(TAT, now) + least·T − now ≤
 * burst·T (domain/gcra.ts, `gcraTake`; a check of c units is a take of at least and at most c) —
 * storing the new TAT with an expiry at it. Returns { admitted (1 or 0), units taken, now (µs),
 * the stored TAT as it was (or nil) }. Numbers are written with '%d': Lua's own conversion of
 * a number to text keeps 14 digits, a TAT has 16.
 */
export const GCRA_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local least = tonumber(ARGV[3])
local most = tonumber(ARGV[4])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
local admitted = 0
local taken = 0
if least <= burst and tat + least * interval - now <= burst * interval then
  admitted = 1
  taken = math.min(most, math.floor((burst * interval - (tat - now)) / interval))
  if taken > 0 then
    local next = tat + taken * interval
    redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000))
  end
end
return { admitted, taken, now, stored }
`;

/**
 * KEYS[1] the bucket; ARGV: emission interval T (µs), units. Gives back units taken and not
 * spent: moves the TAT back by units·T, not before now (a bucket full again is deleted).
 */
export const GIVE_BACK_SCRIPT = `
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(stored) - tonumber(ARGV[1]) * tonumber(ARGV[2])
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
end
return 1
`;

/**
 * KEYS[1] the month's counter; ARGV: cost, quota, expiry (epoch ms). Adds the cost unless the sum
 * would pass the quota. Returns { admitted (1 or 0), units used }.
 */
const QUOTA_SCRIPT = `
local cost = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + cost > tonumber(ARGV[2]) then return { 0, used } end
if cost > 0 then
  used = redis.call('INCRBY', KEYS[1], cost)
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return { 1, used }
`;

/** How long a quota's month key outlives its month. */
const QUOTA_GRACE_MS = 24 * 3_600_000;

/** Longest a check waits for Redis before it fails (and the failure policy answers). */
const DEFAULT_TIMEOUT_MS = 500;

export interface RedisRateLimiterOptions extends RedisConnectionOptions {
  keyPrefix: string;
  /** Longest a call waits for Redis (default 500 ms); a limiter must not hold requests long. */
  timeoutMs?: number;
  /**
   * How the limiter takes units from the shared buckets: in slices per process (the default,
   * leased-rate-limiter.ts), or `false`: every check is a script call of its own.
   */
  leases?: LeaseOptions | false;
  /** Now, in epoch ms: the quota's month (tests). Rate limits use Redis's clock. */
  now?: () => number;
}

type ClientWithScripts = (Redis | Cluster) & {
  tallyGcra(
    key: string,
    interval: string,
    burst: string,
    least: string,
    most: string,
  ): Promise<[number, number, number, string | null]>;
  tallyGiveBack(key: string, interval: string, units: string): Promise<number>;
  tallyQuota(key: string, cost: string, quota: string, expireAtMs: string): Promise<[number, number]>;
};

/**
 * A rate limiter and a quota counter on one client, which closes when both are closed: close
 * both, also when only one is used.
 */
export function createRedisRateLimiter(options: RedisRateLimiterOptions): {
  limiter: RateLimiter;
  quotas: QuotaCounter;
} {
  const { buckets, quotas } = createRedisBuckets(options);
  const limiter = options.leases === false ? checkEach(buckets) : leasedLimiter(buckets, options.leases);
  return { limiter, quotas };
}

/**
 * The shared buckets and the quota counter on one client, which closes when both are closed:
 * close both, also when only one is used.
 */
export function createRedisBuckets(options: RedisRateLimiterOptions): {
  buckets: SharedBuckets;
  quotas: QuotaCounter;
} {
  // No auto-pipelining: a request's check is one script call on its own, which auto-pipelining
  // only delays and makes dearer — with it, access control cost a gRPC stream 11 % of ingest's
  // CPU per event, without it 1.3 % (docs/performance.md, "Access control").
  const { client, where, connectionError } = connectRedis(options, 'Redis rate limiter', {
    commandTimeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    enableAutoPipelining: false,
  });
  client.defineCommand('tallyGcra', { lua: GCRA_SCRIPT, numberOfKeys: 1 });
  client.defineCommand('tallyGiveBack', { lua: GIVE_BACK_SCRIPT, numberOfKeys: 1 });
  client.defineCommand('tallyQuota', { lua: QUOTA_SCRIPT, numberOfKeys: 1 });
  const redis = client as ClientWithScripts;
  const prefix = options.keyPrefix;
  const now = options.now ?? Date.now;
  const description = `redis (ioredis, ${where})`;

  /** Fails at once while the client cannot connect (rather than holding the request), else runs `call`. */
  const guarded = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    const down = connectionError();
    if (down) throw new AppError(Code.UNAVAILABLE, `Redis ${what} failed`, { cause: down });
    try {
      return await call();
    } catch (error) {
      throw new AppError(Code.UNAVAILABLE, `Redis ${what} failed`, { cause: error });
    }
  };

  let open = 2;
  const release = async () => {
    if (--open > 0) return;
    await redis.quit().catch(() => redis.disconnect());
  };

  const buckets: SharedBuckets = {
    description,
    async take(key, policy, least, most) {
      assertCheckable(policy, least);
      if (!Number.isSafeInteger(most) || most < least)
        throw new TypeError(
          `rate limit take: most (${most}) must be an integer of at least least (${least})`,
        );
      const [admitted, taken, nowUs, stored] = await guarded('rate limit', () =>
        redis.tallyGcra(
          bucketKey(prefix, policy.name, key),
          ...gcraArgs(policy),
          String(least),
          String(most),
        ),
      );
      const result = gcraTake(policy, stored === null ? undefined : Number(stored), nowUs, least, most);
      if (result.allowed !== (admitted === 1) || result.taken !== taken)
        throw new AppError(Code.INTERNAL, 'rate limit script and gcraTake disagree', {
          cause: new Error(JSON.stringify({ policy, least, most, nowUs, stored, admitted, taken })),
        });
      return { decision: decisionOf(policy, result), taken };
    },
    async giveBack(key, policy, units) {
      if (units <= 0) return;
      await guarded('rate limit give-back', () =>
        redis.tallyGiveBack(
          bucketKey(prefix, policy.name, key),
          String(emissionIntervalUs(policy)),
          String(units),
        ),
      );
    },
    close: release,
  };

  const quotas: QuotaCounter = {
    description,
    async consume(key: string, quota: Quota, cost: number): Promise<QuotaDecision> {
      assertConsumable(quota, cost);
      const at = now();
      const { month, endMs } = monthOf(at);
      const [admitted, used] = await guarded('quota', () =>
        redis.tallyQuota(
          quotaKey(prefix, quota.name, key, month),
          String(cost),
          String(quota.limit),
          String(endMs + QUOTA_GRACE_MS),
        ),
      );
      return quotaDecision(quota, admitted === 1, used, endMs - at);
    },
    close: release,
  };
  return { buckets, quotas };
}

/** The script's arguments for `policy`: T, burst. */
function gcraArgs(policy: GcraPolicy): [string, string] {
  return [String(emissionIntervalUs(policy)), String(burstOf(policy))];
}

/** The hash tag of (name, key): one slot whatever the key holds (destination limits share it). */
export function keyTag(name: string, key: string): string {
  return createHash('sha256').update(name).update('\0').update(key).digest('base64url').slice(0, 22);
}

/** The bucket of `key` under the policy `name`. */
export function bucketKey(prefix: string, name: string, key: string): string {
  return `${prefix}:rl:{${keyTag(name, key)}}`;
}

/** The counter of `key` under the quota `name` in `month` (`YYYY-MM`). */
export function quotaKey(prefix: string, name: string, key: string, month: string): string {
  return `${prefix}:q:{${keyTag(name, key)}}:${month}`;
}
