/**
 * Counters in Redis (standalone or Cluster), through ioredis.
 *
 * Per target, in one hash slot (hash tag = a digest of the target, since a
 * target may itself contain braces):
 *   <prefix>:{<tag>}:n        hash type → count
 *   <prefix>:{<tag>}:s        hash type → sum of values
 *   <prefix>:{<tag>}:o        hash partition → offset (in the events topic) of the last event applied
 *   <prefix>:{<tag>}:u:a:<type>         HyperLogLog of the users of the type, all time
 *   <prefix>:{<tag>}:u:d:<day>:<type>   HyperLogLog of the users of the type on a UTC day (its start,
 *                                       epoch ms), expiring 35 days after the day
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
 *
 * Hour windows of the leaderboards, by event time, in the type's slot:
 *   <prefix>:top:{<type>}:h:<hour>   sorted set target → count in that UTC hour (its start, epoch
 *                                    ms), at most `windowMaxMembers` members, expiring 50 h after
 *                                    the hour
 *   <prefix>:top:{<type>}:o          hash partition → offset of the last event applied to them
 * A script per type applies the increments above the type's marks (ZINCRBY), moves the marks,
 * trims each window it touched to its `windowMaxMembers` highest and sets its expiry: exact
 * under redelivery as the counters are, on marks of its own since the type's slot is not the
 * targets'. A window over several hours (a day in any time zone) is their ZUNION, in one slot.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Cluster, type Redis } from 'ioredis';
import { AppError, Code } from '../app-error.ts';
import { type Registry, redisMetrics, secondsSince } from '../metrics.ts';
import { connectRedis, type RedisConnectionOptions, type RedisSecurity } from '../redis-client.ts';
import {
  type CounterIncrement,
  type CounterStore,
  DEFAULT_WINDOW_MAX_MEMBERS,
  type TypeCounter,
  type TypeLeaders,
  type TypeUniques,
  UNIQUES_RETENTION_MS,
  WINDOW_RETENTION_MS,
} from './counter-store.ts';

// Per target, four KEYS: its counts hash, its sums hash, its marks hash, and the common start of
// its unique-user keys (one call holds the keys of one hash slot on a Cluster, of any number of
// targets on a standalone server; the unique-user keys are that key's name plus a suffix, in the
// same slot by its hash tag). ARGV[1]: how long a day's unique users are kept after the day, in
// seconds; then per target: its number of partitions, then per partition: the partition, its
// number of events, then per event in offset order: offset, type, value ('' when none), user (''
// when none), the start of its UTC day in epoch ms ('' when that day is no longer kept). An event
// applies when its offset is above its target's mark for the partition (offsets stay below 2^53,
// exact as Lua numbers); the mark moves to the last one applied, and an applied event's user is
// added to the type's unique users of all time and of its day (PFADD: adding again changes
// nothing). Returns, per target: { applied, n, type1, count1, ...,
// typeN, countN }: the count of every type of its events, also of a type whose events were all
// applied before (a redelivery), so the leaderboards it feeds catch up with a write that failed
// after a previous run.
const APPLY_SCRIPT = `
local keep = tonumber(ARGV[1])
local a = 2
local out = {}
local expiring = {}
for t = 0, #KEYS / 4 - 1 do
  local counts, sums, marks, users = KEYS[t * 4 + 1], KEYS[t * 4 + 2], KEYS[t * 4 + 3], KEYS[t * 4 + 4]
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
        local user = ARGV[a + 3]
        if user ~= '' then
          redis.call('PFADD', users .. ':a:' .. type, user)
          local day = ARGV[a + 4]
          if day ~= '' then
            local key = users .. ':d:' .. day .. ':' .. type
            redis.call('PFADD', key, user)
            expiring[key] = tonumber(day) / 1000 + 86400 + keep
          end
        end
        applied = applied + 1
        last = offset
        lastArg = ARGV[a]
      elseif changed[type] == nil then
        changed[type] = tonumber(redis.call('HGET', counts, type) or '0')
      end
      a = a + 5
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
for key, at in pairs(expiring) do redis.call('EXPIREAT', key, at) end
return out
`;

// The hour windows of one type. KEYS[1]: the type's marks for its windows (partition → offset),
// KEYS[2..]: hour windows. ARGV[1]: members a window keeps; ARGV[2..#KEYS]: when each window
// expires (epoch seconds), in KEYS order; then per partition: the partition, its number of events,
// then per event in offset order: offset, the window's index in KEYS (0: none: no time, or an hour
// no longer kept), target. An event applies when its offset is above the mark, as in
// APPLY_SCRIPT; each window touched is trimmed to its highest members and given its expiry.
// Returns how many events applied.
const WINDOW_APPLY_SCRIPT = `
local keep = tonumber(ARGV[1])
local a = #KEYS + 1
local touched = {}
local applied = 0
while a <= #ARGV do
  local partition = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  local last = tonumber(redis.call('HGET', KEYS[1], partition) or '-1')
  local lastArg = nil
  for e = 1, n do
    local offset = tonumber(ARGV[a])
    if offset > last then
      local k = tonumber(ARGV[a + 1])
      if k > 0 then
        redis.call('ZINCRBY', KEYS[k], 1, ARGV[a + 2])
        touched[k] = true
      end
      applied = applied + 1
      last = offset
      lastArg = ARGV[a]
    end
    a = a + 3
  end
  if lastArg then redis.call('HSET', KEYS[1], partition, lastArg) end
end
for k in pairs(touched) do
  redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -keep - 1)
  redis.call('EXPIREAT', KEYS[k], ARGV[k])
end
return applied
`;

// The `ARGV[1]` most counted members of the union of KEYS (hour windows of one type, one slot),
// highest first, ties by member descending as ZREVRANGE orders them: flat member, score.
const WINDOW_TOP_SCRIPT = `
local command = { 'ZUNION', #KEYS }
for i = 1, #KEYS do command[#command + 1] = KEYS[i] end
command[#command + 1] = 'WITHSCORES'
local union = redis.call(unpack(command))
local out = {}
local i = #union - 1
while i >= 1 and #out < tonumber(ARGV[1]) * 2 do
  out[#out + 1] = union[i]
  out[#out + 1] = union[i + 1]
  i = i - 2
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
  /** Times each call (apply, read, top, uniques) there when given (docs/metrics.md). */
  metrics?: Registry;
  /** Members each hour's leaderboard window keeps (default 1000). */
  windowMaxMembers?: number;
  /** The clock that decides which windows and days are still kept (default Date.now). */
  now?: () => number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The hash slot of a key (CRC16 of its hash tag), as Redis Cluster computes it; ioredis's own. */
const clusterKeySlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

type Client = Redis | Cluster;
type ClientWithScripts = Client & {
  tallyApply(numKeys: number, ...args: string[]): Promise<(number | string)[]>;
  tallyRead(countsKey: string, sumsKey: string): Promise<[string[], string[]]>;
  tallyWindowApply(numKeys: number, ...args: string[]): Promise<number>;
  tallyWindowTop(numKeys: number, ...args: string[]): Promise<string[]>;
};

export function createRedisCounterStore(options: RedisCounterStoreOptions): CounterStore {
  // The client fails its calls meanwhile with the reason it cannot connect (see `unavailable`).
  const { client, where, connectionError } = connectRedis(options, 'Redis counter store');
  client.defineCommand('tallyApply', { lua: APPLY_SCRIPT });
  client.defineCommand('tallyRead', { lua: READ_SCRIPT, numberOfKeys: 2 });
  client.defineCommand('tallyWindowApply', { lua: WINDOW_APPLY_SCRIPT });
  client.defineCommand('tallyWindowTop', { lua: WINDOW_TOP_SCRIPT });
  const windowMaxMembers = options.windowMaxMembers ?? DEFAULT_WINDOW_MAX_MEMBERS;
  const now = options.now ?? Date.now;
  const redis = client as ClientWithScripts;
  const cluster = client instanceof Cluster;
  const prefix = options.keyPrefix;
  // The same target's keys again (dashboards ask for a few popular targets): a bounded map,
  // the oldest entry out first.
  const keyCache = new Map<
    string,
    { counts: string; sums: string; marks: string; users: string; slot: number }
  >();
  const keysFor = (target: string) => {
    let keys = keyCache.get(target);
    if (keys === undefined) {
      const tag = createHash('sha256').update(target).digest('base64url').slice(0, 22);
      const base = `${prefix}:{${tag}}`;
      keys = {
        counts: `${base}:n`,
        sums: `${base}:s`,
        marks: `${base}:o`,
        users: `${base}:u`,
        slot: clusterKeySlot(base),
      };
      if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value as string);
      keyCache.set(target, keys);
    }
    return keys;
  };
  const topKey = (type: string) => `${prefix}:top:{${type}}`;
  const typesKey = `${prefix}:types`;
  const windowKey = (type: string, hourMs: number) => `${prefix}:top:{${type}}:h:${hourMs}`;
  const windowMarksKey = (type: string) => `${prefix}:top:{${type}}:o`;

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
    uniques: duration.labels({ operation: 'uniques' }),
  };
  /** `work`, timed as `operation` (failures included). */
  const timed = <T>(operation: 'apply' | 'read' | 'top' | 'uniques', work: () => Promise<T>): Promise<T> => {
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

  /** The increments' hour windows, one script call per type (in order, at most MAX_EVENTS_PER_CALL events each). */
  const applyWindows = async (increments: readonly CounterIncrement[], nowMs: number): Promise<void> => {
    const byType = new Map<string, Map<number, CounterIncrement[]>>();
    for (const inc of increments) {
      let partitions = byType.get(inc.type);
      if (!partitions) {
        partitions = new Map();
        byType.set(inc.type, partitions);
      }
      const list = partitions.get(inc.partition);
      if (list) list.push(inc);
      else partitions.set(inc.partition, [inc]);
    }
    await Promise.all(
      [...byType].map(async ([type, partitions]) => {
        // Consecutive calls of at most MAX_EVENTS_PER_CALL events; a partition may span two.
        let call: { hours: Map<number, number>; runs: [number, CounterIncrement[]][]; events: number } = {
          hours: new Map(),
          runs: [],
          events: 0,
        };
        const calls = [call];
        for (const [partition, incs] of partitions) {
          for (let i = 0; i < incs.length; ) {
            if (call.events >= MAX_EVENTS_PER_CALL) {
              call = { hours: new Map(), runs: [], events: 0 };
              calls.push(call);
            }
            const run = incs.slice(i, i + MAX_EVENTS_PER_CALL - call.events);
            call.runs.push([partition, run]);
            call.events += run.length;
            i += run.length;
          }
        }
        for (const { hours, runs } of calls) {
          const args: string[] = [];
          for (const [partition, run] of runs) {
            args.push(String(partition), String(run.length));
            for (const inc of run) {
              let index = 0;
              if (inc.timeMs !== undefined && Number.isFinite(inc.timeMs)) {
                const hour = Math.floor(inc.timeMs / HOUR_MS) * HOUR_MS;
                if (hour + HOUR_MS + WINDOW_RETENTION_MS > nowMs) {
                  index = hours.get(hour) ?? hours.size + 2;
                  hours.set(hour, index);
                }
              }
              args.push(inc.position.toString(), String(index), inc.target);
            }
          }
          const keys = [windowMarksKey(type), ...[...hours.keys()].map((h) => windowKey(type, h))];
          const expiries = [...hours.keys()].map((h) => String((h + HOUR_MS + WINDOW_RETENTION_MS) / 1000));
          await redis.tallyWindowApply(keys.length, ...keys, String(windowMaxMembers), ...expiries, ...args);
        }
      }),
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
      const nowMs = now();
      // A day's unique users, or an hour's window, that would expire at once is not written.
      const keptDay = (timeMs: number | undefined) => {
        if (timeMs === undefined || !Number.isFinite(timeMs)) return '';
        const day = Math.floor(timeMs / DAY_MS) * DAY_MS;
        return day + DAY_MS + UNIQUES_RETENTION_MS > nowMs ? String(day) : '';
      };
      try {
        const [results] = await Promise.all([
          Promise.all(
            [...groups.values()].flat().map(async ({ targets }) => {
              const keys: string[] = [];
              const args: string[] = [String(UNIQUES_RETENTION_MS / 1000)];
              for (const target of targets) {
                const k = keysFor(target);
                keys.push(k.counts, k.sums, k.marks, k.users);
                const { partitions } = byTarget.get(target)!;
                args.push(String(partitions.size));
                for (const [partition, incs] of partitions) {
                  args.push(String(partition), String(incs.length));
                  for (const inc of incs)
                    args.push(
                      inc.position.toString(),
                      inc.type,
                      inc.value === undefined ? '' : String(inc.value),
                      inc.userId ?? '',
                      inc.userId ? keptDay(inc.timeMs) : '',
                    );
                }
              }
              const out = await redis.tallyApply(keys.length, ...keys, ...args);
              return { targets, out };
            }),
          ),
          applyWindows(increments, nowMs),
        ]);
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

    async topWindow(
      types: readonly string[],
      hours: readonly number[],
      limit: number,
    ): Promise<TypeLeaders[]> {
      try {
        const wanted = types.length > 0 ? [...new Set(types)] : await redis.smembers(typesKey);
        return await Promise.all(
          wanted.sort().map(async (type) => {
            const keys = hours.map((h) => windowKey(type, h));
            const flat =
              keys.length === 0
                ? []
                : keys.length === 1
                  ? await redis.zrevrange(keys[0]!, 0, limit - 1, 'WITHSCORES')
                  : await redis.tallyWindowTop(keys.length, ...keys, String(limit));
            const targets: TypeLeaders['targets'] = [];
            for (let i = 0; i + 1 < flat.length; i += 2)
              targets.push({ target: flat[i]!, count: Number(flat[i + 1]) });
            return { type, targets };
          }),
        );
      } catch (error) {
        throw unavailable('read', error);
      }
    },

    async uniques(target: string, types: readonly string[], dayStartMs: number): Promise<TypeUniques[]> {
      const keys = keysFor(target);
      try {
        const wanted = types.length > 0 ? [...new Set(types)] : await redis.hkeys(keys.counts);
        return await Promise.all(
          wanted.sort().map(async (type) => {
            const [day, allTime] = await Promise.all([
              redis.pfcount(`${keys.users}:d:${dayStartMs}:${type}`),
              redis.pfcount(`${keys.users}:a:${type}`),
            ]);
            return { type, day, allTime };
          }),
        );
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
    topWindow: (types, hours, limit) => timed('top', () => store.topWindow(types, hours, limit)),
    uniques: (target, types, day) => timed('uniques', () => store.uniques(target, types, day)),
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
