/**
 * Counters in Redis (standalone or Cluster), through ioredis.
 *
 * Per target, in one hash slot (hash tag = a digest of the target, since a
 * target may itself contain braces):
 *   <prefix>:{<tag>}:n        hash type → count
 *   <prefix>:{<tag>}:s        hash type → sum of values
 *   <prefix>:{<tag>}:o        hash partition → offset (in the events topic) of the last event applied
 * A Lua script applies a batch's increments whose offset is above their target's mark for the
 * partition and moves the mark, atomically, so a redelivered batch or a repeated forward is never
 * counted twice; the bookkeeping is one hash field per (target, partition), whatever the
 * traffic. (A client's retry of an event never gets here: the persister, upstream, forwards each
 * event id once.) One script call carries many targets: on a standalone server a whole batch (up
 * to 1,000 events a call), on a Cluster the targets of one hash slot, as a Cluster requires of a
 * script's keys; the calls of a batch go out pipelined. Another reads
 * both hashes of a target in one command, so a count and its sum come from the
 * same moment.
 *
 * Leaderboards live apart (another slot per type):
 *   <prefix>:top:{<type>}     sorted set target → count
 *   <prefix>:types            set of every type counted
 * They are written after the script with the target's absolute count (ZADD GT),
 * which is idempotent and never moves a leaderboard back. A crash or a failed
 * write in between leaves the batch uncommitted; its redelivery runs the script
 * again, which answers the count of every type it touches (applied before or
 * not), and the leaderboard catches up: behind for at most that long, never ahead.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Cluster, type Redis } from 'ioredis';
import { AppError, Code } from '../app-error.ts';
import { type Registry, redisMetrics, secondsSince } from '../metrics.ts';
import { connectRedis, type RedisConnectionOptions, type RedisSecurity } from '../redis-client.ts';
import type { CounterIncrement, CounterStore, TypeCounter, TypeLeaders } from './counter-store.ts';

// Per target, three KEYS: its counts hash, its sums hash, its marks hash (one call holds the keys
// of one hash slot on a Cluster, of any number of targets on a standalone server). ARGV per
// target: its number of partitions, then per partition: the partition, its number of events, then
// per event in offset order: offset, type, value ('' when none). An event applies when its offset
// is above its target's mark for the partition (offsets stay below 2^53, exact as Lua numbers);
// the mark moves to the last one applied. Returns, per target: { applied, n, type1, count1, ...,
// typeN, countN }: the count of every type of its events, also of a type whose events were all
// applied before (a redelivery), so the leaderboards it feeds catch up with a write that failed
// after a previous run.
const APPLY_SCRIPT = `
local a = 1
local out = {}
for t = 0, #KEYS / 3 - 1 do
  local counts, sums, marks = KEYS[t * 3 + 1], KEYS[t * 3 + 2], KEYS[t * 3 + 3]
  local partitions = tonumber(ARGV[a])
  a = a + 1
  local applied = 0
  local changed = {}
  for p = 1, partitions do
    local partition = ARGV[a]
    local n = tonumber(ARGV[a + 1])
    a = a + 2
    local mark = tonumber(redis.call('HGET', marks, partition) or '-1')
    local last = mark
    local lastArg = nil
    for e = 1, n do
      local offset = tonumber(ARGV[a])
      local type = ARGV[a + 1]
      if offset > last then
        local value = ARGV[a + 2]
        changed[type] = redis.call('HINCRBY', counts, type, 1)
        if value ~= '' then redis.call('HINCRBYFLOAT', sums, type, value) end
        applied = applied + 1
        last = offset
        lastArg = ARGV[a]
      elseif changed[type] == nil then
        changed[type] = tonumber(redis.call('HGET', counts, type) or '0')
      end
      a = a + 3
    end
    if lastArg then redis.call('HSET', marks, partition, lastArg) end
  end
  out[#out + 1] = applied
  local at = #out + 1
  out[at] = 0
  for type, count in pairs(changed) do
    out[#out + 1] = type
    out[#out + 1] = count
    out[at] = out[at] + 1
  end
end
return out
`;

/** Most events in one script call: a call blocks Redis while it runs (about a microsecond each). */
const MAX_EVENTS_PER_CALL = 1000;

// KEYS[1] counts hash, KEYS[2] sums hash. Returns { counts as HGETALL, sums as HGETALL }: one
// command (one round trip, nothing to parse but two flat arrays) and atomic, as a script is.
const READ_SCRIPT = `return { redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]) }`;

/** Targets whose key names are kept, so that reading a popular target again skips its digest. */
const KEY_CACHE_SIZE = 4096;

export type { RedisSecurity };

export interface RedisCounterStoreOptions extends RedisConnectionOptions {
  keyPrefix: string;
  /** Times each call (apply, read, top) there when given (docs/metrics.md). */
  metrics?: Registry;
}

/** The hash slot of a key (CRC16 of its hash tag), as Redis Cluster computes it; ioredis's own. */
const clusterKeySlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

type Client = Redis | Cluster;
type ClientWithScripts = Client & {
  tallyApply(numKeys: number, ...args: string[]): Promise<(number | string)[]>;
  tallyRead(countsKey: string, sumsKey: string): Promise<[string[], string[]]>;
};

export function createRedisCounterStore(options: RedisCounterStoreOptions): CounterStore {
  // The client fails its calls meanwhile with the reason it cannot connect (see `unavailable`).
  const { client, where, connectionError } = connectRedis(options, 'Redis counter store');
  client.defineCommand('tallyApply', { lua: APPLY_SCRIPT });
  client.defineCommand('tallyRead', { lua: READ_SCRIPT, numberOfKeys: 2 });
  const redis = client as ClientWithScripts;
  const cluster = client instanceof Cluster;
  const prefix = options.keyPrefix;
  // The same target's keys again (dashboards ask for a few popular targets): a bounded map,
  // the oldest entry out first.
  const keyCache = new Map<string, { counts: string; sums: string; marks: string; slot: number }>();
  const keysFor = (target: string) => {
    let keys = keyCache.get(target);
    if (keys === undefined) {
      const tag = createHash('sha256').update(target).digest('base64url').slice(0, 22);
      const base = `${prefix}:{${tag}}`;
      keys = { counts: `${base}:n`, sums: `${base}:s`, marks: `${base}:o`, slot: clusterKeySlot(base) };
      if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value as string);
      keyCache.set(target, keys);
    }
    return keys;
  };
  const topKey = (type: string) => `${prefix}:top:{${type}}`;
  const typesKey = `${prefix}:types`;

  const unavailable = (what: string, cause: unknown) => {
    const reason = connectionError();
    return new AppError(Code.UNAVAILABLE, `Redis ${what} failed`, {
      cause:
        reason && cause instanceof Error && cause.name === 'MaxRetriesPerRequestError'
          ? new Error(`${reason.message} (${cause.message})`, { cause })
          : cause,
    });
  };
  const duration = options.metrics && redisMetrics(options.metrics).duration;
  const timers = duration && {
    apply: duration.labels({ operation: 'apply' }),
    read: duration.labels({ operation: 'read' }),
    top: duration.labels({ operation: 'top' }),
  };
  /** `work`, timed as `operation` (failures included). */
  const timed = <T>(operation: 'apply' | 'read' | 'top', work: () => Promise<T>): Promise<T> => {
    if (!timers) return work();
    const timer = timers[operation];
    const startMs = performance.now();
    return work().then(
      (value) => {
        timer.observe(secondsSince(startMs));
        return value;
      },
      (error: unknown) => {
        timer.observe(secondsSince(startMs));
        throw error;
      },
    );
  };

  const store: CounterStore = {
    description: `redis (ioredis, ${where})`,

    async apply(increments: readonly CounterIncrement[]): Promise<number> {
      // Per target, its increments per partition, each list in the order given (offset order).
      const byTarget = new Map<string, { events: number; partitions: Map<number, CounterIncrement[]> }>();
      for (const inc of increments) {
        let t = byTarget.get(inc.target);
        if (!t) {
          t = { events: 0, partitions: new Map() };
          byTarget.set(inc.target, t);
        }
        t.events++;
        const list = t.partitions.get(inc.partition);
        if (list) list.push(inc);
        else t.partitions.set(inc.partition, [inc]);
      }
      // One call per group of targets: on a Cluster the targets of one hash slot, on a standalone
      // server any; at most MAX_EVENTS_PER_CALL events each (a larger target goes alone).
      const groups = new Map<number, { targets: string[]; events: number }[]>();
      for (const [target, { events }] of byTarget) {
        const slot = cluster ? keysFor(target).slot : 0;
        let calls = groups.get(slot);
        if (!calls) {
          calls = [];
          groups.set(slot, calls);
        }
        let call = calls.at(-1);
        if (!call || (call.events > 0 && call.events + events > MAX_EVENTS_PER_CALL)) {
          call = { targets: [], events: 0 };
          calls.push(call);
        }
        call.targets.push(target);
        call.events += events;
      }
      try {
        const results = await Promise.all(
          [...groups.values()].flat().map(async ({ targets }) => {
            const keys: string[] = [];
            const args: string[] = [];
            for (const target of targets) {
              const k = keysFor(target);
              keys.push(k.counts, k.sums, k.marks);
              const { partitions } = byTarget.get(target)!;
              args.push(String(partitions.size));
              for (const [partition, incs] of partitions) {
                args.push(String(partition), String(incs.length));
                for (const inc of incs)
                  args.push(
                    inc.position.toString(),
                    inc.type,
                    inc.value === undefined ? '' : String(inc.value),
                  );
              }
            }
            const out = await redis.tallyApply(keys.length, ...keys, ...args);
            return { targets, out };
          }),
        );
        const leaderboard: Promise<unknown>[] = [];
        const types = new Set<string>();
        let applied = 0;
        for (const { targets, out } of results) {
          let i = 0;
          for (const target of targets) {
            applied += Number(out[i++]);
            const changed = Number(out[i++]);
            for (let c = 0; c < changed; c++, i += 2) {
              const type = String(out[i]);
              const count = Number(out[i + 1]);
              if (count === 0) continue; // a type never counted: nothing to rank
              types.add(type);
              leaderboard.push(redis.zadd(topKey(type), 'GT', count, target));
            }
          }
        }
        if (types.size > 0) leaderboard.push(redis.sadd(typesKey, ...types));
        await Promise.all(leaderboard);
        return applied;
      } catch (error) {
        throw unavailable('write', error);
      }
    },

    async read(target: string): Promise<TypeCounter[]> {
      const keys = keysFor(target);
      let counts: string[];
      let sums: string[];
      try {
        [counts, sums] = await redis.tallyRead(keys.counts, keys.sums);
      } catch (error) {
        throw unavailable('read', error);
      }
      return countersOf(counts, sums);
    },

    async top(types: readonly string[], limit: number): Promise<TypeLeaders[]> {
      try {
        const wanted = types.length > 0 ? [...new Set(types)] : await redis.smembers(typesKey);
        const boards = await Promise.all(
          wanted.sort().map(async (type) => {
            const flat = await redis.zrevrange(topKey(type), 0, limit - 1, 'WITHSCORES');
            const targets: TypeLeaders['targets'] = [];
            for (let i = 0; i + 1 < flat.length; i += 2)
              targets.push({ target: flat[i]!, count: Number(flat[i + 1]) });
            return { type, targets };
          }),
        );
        return boards;
      } catch (error) {
        throw unavailable('read', error);
      }
    },

    async ping(): Promise<void> {
      try {
        await redis.ping();
      } catch (error) {
        throw unavailable('read', error);
      }
    },

    async close(): Promise<void> {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
  return {
    ...store,
    apply: (increments) => timed('apply', () => store.apply(increments)),
    read: (target) => timed('read', () => store.read(target)),
    top: (types, limit) => timed('top', () => store.top(types, limit)),
  };
}

/** The counters of a target from its two hashes as flat [field, value, ...] lists, ordered by type. */
function countersOf(counts: readonly string[], sums: readonly string[]): TypeCounter[] {
  const sumOf = new Map<string, string>();
  for (let i = 0; i + 1 < sums.length; i += 2) sumOf.set(sums[i]!, sums[i + 1]!);
  const counters: TypeCounter[] = [];
  for (let i = 0; i + 1 < counts.length; i += 2) {
    const type = counts[i]!;
    counters.push({ type, count: Number(counts[i + 1]), sum: Number(sumOf.get(type) ?? 0) });
  }
  // Code unit order, as Array.prototype.sort orders strings.
  return counters.sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}
