/**
 * Breakers in Redis (standalone or Cluster), through ioredis: one hash per destination, in one
 * hash slot (hash tag = a digest of the destination id), so every step is one script on one key
 * and works on Redis Cluster:
 *   <prefix>:breaker:{<tag>}   ph → phase, ct → consecutive timeouts, op → openings,
 *                              ou → open until, pu → probe lease until, ps → probe successes,
 *                              fs → failing since, a:<bucket> / f:<bucket> → attempts / failures
 * The Lua script is domain/circuit-breaker.ts's `admit` and `record` written again; the store
 * contract runs the same scenarios here and on the embedded adapter (the TypeScript machine).
 * A closed breaker with nothing counted has no key; every key expires after twice the
 * auto-disable time without a step.
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import {
  type Admission,
  type BreakerConfig,
  type BreakerPhase,
  type BreakerSignal,
  type BreakerTransition,
  DEFAULT_BREAKER_CONFIG,
  validateBreakerConfig,
} from '../../domain/circuit-breaker.ts';
import { AppError, Code } from '../app-error.ts';
import { connectRedis, type RedisConnectionOptions } from '../redis-client.ts';
import type { BreakerAnswer, BreakerSnapshot, BreakerStore } from './breaker-store.ts';

// KEYS[1]: the breaker's hash. ARGV: op (admit | record | inspect | reset), now, signal, then the
// configuration in BreakerConfig's order, then the key's time to live. Returns { phase, allowed,
// probe, retryAt, transition, disable, attempts, failures, ct, ou, fs, ps, opens } as strings.
const BREAKER_SCRIPT = `
local key = KEYS[1]
local op = ARGV[1]
if op == 'reset' then
  redis.call('DEL', key)
  return {}
end
local now = tonumber(ARGV[2])
local signal = ARGV[3]
local windowMs = tonumber(ARGV[4])
local bucketMs = tonumber(ARGV[5])
local minAttempts = tonumber(ARGV[6])
local failureRate = tonumber(ARGV[7])
local maxTimeouts = tonumber(ARGV[8])
local openBase = tonumber(ARGV[9])
local openMax = tonumber(ARGV[10])
local lease = tonumber(ARGV[11])
local needSuccesses = tonumber(ARGV[12])
local disableAfter = tonumber(ARGV[13])
local ttl = tonumber(ARGV[14])

local phase, ct, opens, ou, pu, ps, fs = 'closed', 0, 0, 0, 0, 0, 0
local buckets = {}
local fields = redis.call('HGETALL', key)
for i = 1, #fields, 2 do
  local f, v = fields[i], fields[i + 1]
  local kind = string.sub(f, 1, 2)
  if f == 'ph' then phase = v
  elseif f == 'ct' then ct = tonumber(v)
  elseif f == 'op' then opens = tonumber(v)
  elseif f == 'ou' then ou = tonumber(v)
  elseif f == 'pu' then pu = tonumber(v)
  elseif f == 'ps' then ps = tonumber(v)
  elseif f == 'fs' then fs = tonumber(v)
  elseif kind == 'a:' or kind == 'f:' then
    local index = tonumber(string.sub(f, 3))
    local b = buckets[index] or { 0, 0 }
    if kind == 'a:' then b[1] = tonumber(v) else b[2] = tonumber(v) end
    buckets[index] = b
  end
end
local current = math.floor(now / bucketMs)
local oldest = current - windowMs / bucketMs + 1
for index, _ in pairs(buckets) do
  if index < oldest then buckets[index] = nil end
end

local changed = false
local allowed, probe, retryAt, transition = 1, 0, 0, ''
if op == 'admit' then
  if phase == 'open' and now < ou then
    allowed = 0
    retryAt = ou
  elseif phase == 'half-open' and now < pu then
    allowed = 0
    retryAt = pu
  elseif phase ~= 'closed' then
    phase = 'half-open'
    ou = 0
    pu = now + lease
    probe = 1
    changed = true
  end
elseif op == 'record' then
  local failed = signal ~= 'success'
  if phase == 'half-open' then
    changed = true
    if not failed then
      ps = ps + 1
      pu = 0
      if ps >= needSuccesses then
        phase, ct, opens, ou, pu, ps, fs = 'closed', 0, 0, 0, 0, 0, 0
        buckets = {}
        transition = 'closed'
      end
    else
      opens = opens + 1
      phase = 'open'
      ou = now + math.min(openMax, openBase * 2 ^ (opens - 1))
      pu = 0
      ps = 0
      transition = 'reopened'
    end
  elseif phase == 'closed' then
    changed = true
    local b = buckets[current] or { 0, 0 }
    b[1] = b[1] + 1
    if failed then b[2] = b[2] + 1 end
    buckets[current] = b
    if signal == 'timeout' then ct = ct + 1 else ct = 0 end
    local attempts, failures = 0, 0
    for _, x in pairs(buckets) do
      attempts = attempts + x[1]
      failures = failures + x[2]
    end
    if ct >= maxTimeouts or (attempts >= minAttempts and failures >= failureRate * attempts) then
      phase, ct, opens, ou, pu, ps, fs = 'open', 0, 1, now + openBase, 0, 0, now
      buckets = {}
      transition = 'opened'
    end
  end
end

local function n(x) return string.format('%.0f', x) end
if changed then
  redis.call('DEL', key)
  local out = {}
  if phase ~= 'closed' then
    out = { 'ph', phase, 'op', n(opens), 'ou', n(ou), 'pu', n(pu), 'ps', n(ps), 'fs', n(fs) }
  end
  if ct > 0 then
    out[#out + 1] = 'ct'
    out[#out + 1] = n(ct)
  end
  for index, b in pairs(buckets) do
    out[#out + 1] = 'a:' .. n(index)
    out[#out + 1] = n(b[1])
    out[#out + 1] = 'f:' .. n(index)
    out[#out + 1] = n(b[2])
  end
  if #out > 0 then
    redis.call('HSET', key, unpack(out))
    redis.call('PEXPIRE', key, ttl)
  end
end

local attempts, failures = 0, 0
for _, x in pairs(buckets) do
  attempts = attempts + x[1]
  failures = failures + x[2]
end
local disable = 0
if phase ~= 'closed' and now - fs >= disableAfter then disable = 1 end
return { phase, tostring(allowed), tostring(probe), n(retryAt), transition, tostring(disable),
  n(attempts), n(failures), n(ct), n(ou), n(fs), n(ps), n(opens) }
`;

export interface RedisBreakerStoreOptions extends RedisConnectionOptions {
  keyPrefix: string;
  config?: BreakerConfig;
}

type ClientWithScripts = (Redis | Cluster) & {
  tallyBreaker(key: string, ...args: string[]): Promise<string[]>;
};

export function createRedisBreakerStore(options: RedisBreakerStoreOptions): BreakerStore {
  const config = validateBreakerConfig(options.config ?? DEFAULT_BREAKER_CONFIG);
  const { client, where, connectionError } = connectRedis(options, 'Redis breaker store');
  client.defineCommand('tallyBreaker', { lua: BREAKER_SCRIPT, numberOfKeys: 1 });
  const redis = client as ClientWithScripts;
  const keyOf = (destination: string) =>
    `${options.keyPrefix}:breaker:{${createHash('sha256').update(destination).digest('base64url').slice(0, 22)}}`;
  const configArgs = [
    config.windowMs,
    config.bucketMs,
    config.minAttempts,
    config.failureRate,
    config.consecutiveTimeouts,
    config.openBaseMs,
    config.openMaxMs,
    config.probeLeaseMs,
    config.probeSuccesses,
    config.disableAfterMs,
    2 * config.disableAfterMs,
  ].map(String);

  const step = async (destination: string, op: string, nowMs: number, signal = '') => {
    let out: string[];
    try {
      out = await redis.tallyBreaker(keyOf(destination), op, String(nowMs), signal, ...configArgs);
    } catch (error) {
      throw new AppError(Code.UNAVAILABLE, `Redis breaker ${op} failed`, {
        cause: connectionError() ?? error,
      });
    }
    const [phase, allowed, probe, retryAt, transition, disable, attempts, failures, ct, ou, fs, ps, opens] =
      out;
    const snapshot: BreakerSnapshot = {
      phase: phase as BreakerPhase,
      attempts: Number(attempts),
      failures: Number(failures),
      consecutiveTimeouts: Number(ct),
      openUntilMs: Number(ou),
      failingSinceMs: Number(fs),
      probeSuccesses: Number(ps),
      opens: Number(opens),
    };
    const admission: Admission =
      allowed === '1'
        ? { allowed: true, probe: probe === '1' }
        : { allowed: false, retryAtMs: Number(retryAt) };
    return {
      snapshot,
      disable: disable === '1',
      admission,
      transition: transition as BreakerTransition | '',
    };
  };

  return {
    description: `redis (ioredis, ${where})`,
    async admit(destination, nowMs) {
      const { snapshot, disable, admission } = await step(destination, 'admit', nowMs);
      return { snapshot, disable, admission };
    },
    async record(destination, signal: BreakerSignal, nowMs) {
      const { snapshot, disable, transition } = await step(destination, 'record', nowMs, signal);
      return { snapshot, disable, ...(transition ? { transition } : {}) };
    },
    async inspect(destination, nowMs): Promise<BreakerAnswer> {
      const { snapshot, disable } = await step(destination, 'inspect', nowMs);
      return { snapshot, disable };
    },
    async reset(destination) {
      await step(destination, 'reset', 0);
    },
    async ping() {
      try {
        await redis.ping();
      } catch (error) {
        throw new AppError(Code.UNAVAILABLE, 'Redis breaker ping failed', {
          cause: connectionError() ?? error,
        });
      }
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
