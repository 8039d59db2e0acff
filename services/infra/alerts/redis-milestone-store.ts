/**
 * Milestone counts in Redis (standalone or Cluster), through ioredis. Per series, in one hash
 * slot (hash tag = a digest of the series name):
 *   <prefix>:ms:{<tag>}       hash: c → count, u → highest threshold claimed,
 *                             o:<partition> → offset of the last event applied,
 *                             p:<threshold> → the count when that threshold was crossed (pending)
 * One Lua script per series applies its increments above the partition marks, moves the marks,
 * claims the thresholds crossed, and answers the pending ones, atomically; the calls of a batch
 * go out pipelined. A confirmation deletes the pending fields.
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { AppError, Code } from '../app-error.ts';
import { connectRedis, type RedisConnectionOptions } from '../redis-client.ts';
import {
  bySeries,
  type MilestoneCrossing,
  type MilestoneIncrement,
  type MilestoneStore,
} from './milestone-store.ts';

// KEYS[1]: the series' hash. ARGV: the number of thresholds, the thresholds ascending, then the
// number of partitions, then per partition: partition, n, then n × (offset, amount). Offsets stay
// below 2^53 (exact as Lua numbers). Returns { count, threshold1, count1, ... } of every pending
// crossing, lowest first.
const APPLY_SCRIPT = `
local key = KEYS[1]
local a = 1
local nt = tonumber(ARGV[a]); a = a + 1
local thresholds = {}
for i = 1, nt do thresholds[i] = tonumber(ARGV[a]); a = a + 1 end
local count = tonumber(redis.call('HGET', key, 'c') or '0')
local partitions = tonumber(ARGV[a]); a = a + 1
for p = 1, partitions do
  local field = 'o:' .. ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  local mark = tonumber(redis.call('HGET', key, field) or '-1')
  local last = mark
  local lastArg = nil
  for e = 1, n do
    local offset = tonumber(ARGV[a])
    if offset > last then
      count = count + tonumber(ARGV[a + 1])
      last = offset
      lastArg = ARGV[a]
    end
    a = a + 2
  end
  if lastArg then redis.call('HSET', key, field, lastArg) end
end
redis.call('HSET', key, 'c', string.format('%.17g', count))
local notified = tonumber(redis.call('HGET', key, 'u') or '0')
for i = 1, nt do
  local t = thresholds[i]
  if t > notified and t <= count then
    redis.call('HSET', key, 'p:' .. ARGV[1 + i], string.format('%.17g', count))
    notified = t
  end
end
redis.call('HSET', key, 'u', string.format('%.17g', notified))
local out = { string.format('%.17g', count) }
local fields = redis.call('HGETALL', key)
local pending = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'p:' then
    pending[#pending + 1] = { tonumber(string.sub(fields[i], 3)), string.sub(fields[i], 3), fields[i + 1] }
  end
end
table.sort(pending, function (x, y) return x[1] < y[1] end)
for _, p in ipairs(pending) do
  out[#out + 1] = p[2]
  out[#out + 1] = p[3]
end
return out
`;

export interface RedisMilestoneStoreOptions extends RedisConnectionOptions {
  keyPrefix: string;
}

type ClientWithScripts = (Redis | Cluster) & {
  tallyMilestones(key: string, ...args: string[]): Promise<string[]>;
};

export function createRedisMilestoneStore(options: RedisMilestoneStoreOptions): MilestoneStore {
  const { client, where, connectionError } = connectRedis(options, 'Redis milestone store');
  client.defineCommand('tallyMilestones', { lua: APPLY_SCRIPT, numberOfKeys: 1 });
  const redis = client as ClientWithScripts;
  const keyOf = (series: string) =>
    `${options.keyPrefix}:ms:{${createHash('sha256').update(series).digest('base64url').slice(0, 22)}}`;
  const unavailable = (what: string, cause: unknown) =>
    new AppError(Code.UNAVAILABLE, `Redis ${what} failed`, { cause: connectionError() ?? cause });

  return {
    description: `redis (ioredis, ${where})`,
    async apply(increments: readonly MilestoneIncrement[]): Promise<MilestoneCrossing[]> {
      const calls: Promise<MilestoneCrossing[]>[] = [];
      for (const [series, group] of bySeries(increments)) {
        const thresholds = group[0]!.thresholds;
        const partitions = new Map<number, MilestoneIncrement[]>();
        for (const increment of group) {
          const list = partitions.get(increment.partition);
          if (list) list.push(increment);
          else partitions.set(increment.partition, [increment]);
        }
        const args: string[] = [
          String(thresholds.length),
          ...thresholds.map(String),
          String(partitions.size),
        ];
        for (const [partition, list] of partitions) {
          args.push(String(partition), String(list.length));
          for (const increment of list) args.push(increment.offset.toString(), String(increment.amount));
        }
        calls.push(
          redis.tallyMilestones(keyOf(series), ...args).then((out) => {
            const crossings: MilestoneCrossing[] = [];
            for (let i = 1; i + 1 < out.length; i += 2)
              crossings.push({ series, threshold: Number(out[i]), count: Number(out[i + 1]) });
            return crossings;
          }),
        );
      }
      try {
        return (await Promise.all(calls)).flat();
      } catch (error) {
        throw unavailable('milestone apply', error);
      }
    },

    async confirm(crossings: readonly MilestoneCrossing[]): Promise<void> {
      const fields = new Map<string, string[]>();
      for (const c of crossings) {
        const key = keyOf(c.series);
        const list = fields.get(key);
        if (list) list.push(`p:${c.threshold}`);
        else fields.set(key, [`p:${c.threshold}`]);
      }
      try {
        await Promise.all([...fields].map(([key, names]) => redis.hdel(key, ...names)));
      } catch (error) {
        throw unavailable('milestone confirm', error);
      }
    },

    async inspect(series: string) {
      let fields: Record<string, string>;
      try {
        fields = await redis.hgetall(keyOf(series));
      } catch (error) {
        throw unavailable('milestone read', error);
      }
      const pending = Object.keys(fields)
        .filter((f) => f.startsWith('p:'))
        .map((f) => Number(f.slice(2)))
        .sort((a, b) => a - b);
      return { count: Number(fields.c ?? 0), notifiedUpTo: Number(fields.u ?? 0), pending };
    },

    async ping(): Promise<void> {
      try {
        await redis.ping();
      } catch (error) {
        throw unavailable('milestone ping', error);
      }
    },

    async close(): Promise<void> {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
