/**
 * Series of threshold and spike rules in Redis (standalone or Cluster), through ioredis. Per
 * series, one hash in one slot (hash tag = a digest of the series name):
 *   <prefix>:as:{<tag>}   v → version, l → latest occurred time (ms), e → closed minute,
 *                         s → the detector's state, o:<partition> → offset of the last event
 *                         applied, m:<minute> → the minute's total, n:<id> → a pending notification
 * Two Lua scripts, each atomic on its key: APPLY adds the increments above the partition marks to
 * their open minutes and answers the hash; COMMIT writes an evaluation if the version is the one
 * it read. Every change moves the version and the key's expiry (an idle series is forgotten).
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { AppError, Code } from '../app-error.ts';
import { connectRedis, type RedisConnectionOptions } from '../redis-client.ts';
import {
  groupBySeries,
  type SeriesCommit,
  type SeriesIncrement,
  type SeriesSnapshot,
  type SeriesStore,
} from './series-store.ts';

// KEYS[1]: the series' hash. ARGV: ttl (ms), the number of partitions, then per partition:
// partition, n, then n × (offset, minute, occurred ms, amount). Offsets stay below 2^53 (exact as
// Lua numbers). Returns { late, the hash's fields and values }.
const APPLY_SCRIPT = `
local key = KEYS[1]
local closed = redis.call('HGET', key, 'e')
if closed then closed = tonumber(closed) end
local latest = tonumber(redis.call('HGET', key, 'l') or '0')
local changed = false
local late = 0
local partitions = tonumber(ARGV[2])
local a = 3
for p = 1, partitions do
  local field = 'o:' .. ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  local last = tonumber(redis.call('HGET', key, field) or '-1')
  local lastArg = nil
  for e = 1, n do
    local offset = tonumber(ARGV[a])
    if offset > last then
      local minute = tonumber(ARGV[a + 1])
      if closed and minute <= closed then
        late = late + 1
      else
        redis.call('HINCRBYFLOAT', key, 'm:' .. ARGV[a + 1], ARGV[a + 3])
        local at = tonumber(ARGV[a + 2])
        if at > latest then latest = at end
      end
      last = offset
      lastArg = ARGV[a]
    end
    a = a + 4
  end
  if lastArg then
    redis.call('HSET', key, field, lastArg)
    changed = true
  end
end
if changed then
  redis.call('HSET', key, 'l', string.format('%.17g', latest))
  redis.call('HINCRBY', key, 'v', 1)
  redis.call('PEXPIRE', key, ARGV[1])
end
return { late, redis.call('HGETALL', key) }
`;

// KEYS[1]: the series' hash. ARGV: expected version, state, closed minute, keep-from minute, ttl
// (ms), n, then n × (id, notification). Returns nil when the version moved, else the pending
// notifications as { id, notification, ... }.
const COMMIT_SCRIPT = `
local key = KEYS[1]
local version = tonumber(redis.call('HGET', key, 'v') or '0')
if version ~= tonumber(ARGV[1]) then return false end
redis.call('HSET', key, 's', ARGV[2])
local closed = redis.call('HGET', key, 'e')
if not closed or tonumber(ARGV[3]) > tonumber(closed) then redis.call('HSET', key, 'e', ARGV[3]) end
local keep = tonumber(ARGV[4])
for _, f in ipairs(redis.call('HKEYS', key)) do
  if string.sub(f, 1, 2) == 'm:' and tonumber(string.sub(f, 3)) < keep then redis.call('HDEL', key, f) end
end
local n = tonumber(ARGV[6])
local a = 7
for i = 1, n do
  redis.call('HSETNX', key, 'n:' .. ARGV[a], ARGV[a + 1])
  a = a + 2
end
redis.call('HSET', key, 'v', version + 1)
redis.call('PEXPIRE', key, ARGV[5])
local out = {}
local fields = redis.call('HGETALL', key)
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'n:' then
    out[#out + 1] = string.sub(fields[i], 3)
    out[#out + 1] = fields[i + 1]
  end
end
return out
`;

export interface RedisSeriesStoreOptions extends RedisConnectionOptions {
  keyPrefix: string;
}

type ClientWithScripts = (Redis | Cluster) & {
  tallySeriesApply(key: string, ...args: string[]): Promise<[number, string[]]>;
  tallySeriesCommit(key: string, ...args: string[]): Promise<string[] | null>;
};

export function createRedisSeriesStore(options: RedisSeriesStoreOptions): SeriesStore {
  const { client, where, connectionError } = connectRedis(options, 'Redis series store');
  client.defineCommand('tallySeriesApply', { lua: APPLY_SCRIPT, numberOfKeys: 1 });
  client.defineCommand('tallySeriesCommit', { lua: COMMIT_SCRIPT, numberOfKeys: 1 });
  const redis = client as ClientWithScripts;
  const keyOf = (series: string) =>
    `${options.keyPrefix}:as:{${createHash('sha256').update(series).digest('base64url').slice(0, 22)}}`;
  const unavailable = (what: string, cause: unknown) =>
    new AppError(Code.UNAVAILABLE, `Redis ${what} failed`, { cause: connectionError() ?? cause });

  const applyOne = async (series: string, group: readonly SeriesIncrement[]) => {
    const partitions = new Map<number, SeriesIncrement[]>();
    for (const increment of group) {
      const list = partitions.get(increment.partition);
      if (list) list.push(increment);
      else partitions.set(increment.partition, [increment]);
    }
    const args: string[] = [String(group[0]?.ttlMs ?? 0), String(partitions.size)];
    for (const [partition, list] of partitions) {
      args.push(String(partition), String(list.length));
      for (const i of list)
        args.push(i.offset.toString(), String(i.minute), String(i.occurredAtMs), String(i.amount));
    }
    const [late, fields] = await redis.tallySeriesApply(keyOf(series), ...args);
    return snapshotOf(series, fields, Number(late));
  };

  return {
    description: `redis (ioredis, ${where})`,
    async apply(increments) {
      try {
        return await Promise.all([...groupBySeries(increments)].map(([s, group]) => applyOne(s, group)));
      } catch (error) {
        throw unavailable('series apply', error);
      }
    },

    async read(series) {
      try {
        return await Promise.all(series.map((s) => applyOne(s, [])));
      } catch (error) {
        throw unavailable('series read', error);
      }
    },

    async commit(commit: SeriesCommit) {
      const args = [
        String(commit.expectedVersion),
        commit.state,
        String(commit.closedMinute),
        String(commit.keepFromMinute),
        String(commit.ttlMs),
        String(commit.notifications.size),
      ];
      for (const [id, notification] of commit.notifications) args.push(id, notification);
      let out: string[] | null;
      try {
        out = await redis.tallySeriesCommit(keyOf(commit.series), ...args);
      } catch (error) {
        throw unavailable('series commit', error);
      }
      if (out === null) return undefined;
      const pending = new Map<string, string>();
      for (let i = 0; i + 1 < out.length; i += 2) pending.set(out[i]!, out[i + 1]!);
      return pending;
    },

    async confirm(series, ids) {
      if (ids.length === 0) return;
      try {
        await redis.hdel(keyOf(series), ...ids.map((id) => `n:${id}`));
      } catch (error) {
        throw unavailable('series confirm', error);
      }
    },

    async ping() {
      try {
        await redis.ping();
      } catch (error) {
        throw unavailable('series ping', error);
      }
    },

    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** A series' hash (HGETALL, flat) as a snapshot. */
function snapshotOf(series: string, fields: readonly string[], late: number): SeriesSnapshot {
  const snapshot: SeriesSnapshot = {
    series,
    version: 0,
    latestMs: 0,
    totals: new Map(),
    pending: new Map(),
    late,
  };
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const field = fields[i]!;
    const value = fields[i + 1]!;
    if (field === 'v') snapshot.version = Number(value);
    else if (field === 'l') snapshot.latestMs = Number(value);
    else if (field === 'e') snapshot.closedMinute = Number(value);
    else if (field === 's') snapshot.state = value;
    else if (field.startsWith('m:')) snapshot.totals.set(Number(field.slice(2)), Number(value));
    else if (field.startsWith('n:')) snapshot.pending.set(field.slice(2), value);
  }
  return snapshot;
}
