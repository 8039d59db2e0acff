/**
 * Counters in Redis (standalone or Cluster), through ioredis.
 *
 * Per target, in one hash slot (hash tag = a digest of the target, since a
 * target may itself contain braces):
 *   <prefix>:{<tag>}:n        hash type → count
 *   <prefix>:{<tag>}:s        hash type → sum of values
 *   <prefix>:{<tag>}:e:<id>   marker: event <id> was applied (expires after the dedup window)
 * One Lua script per target applies a batch's increments and sets the markers
 * atomically, so a redelivered or re-sent event is never counted twice, and the
 * script touches only keys of one slot, as Redis Cluster requires.
 *
 * Leaderboards live apart (another slot per type):
 *   <prefix>:top:{<type>}     sorted set target → count
 *   <prefix>:types            set of every type counted
 * They are written after the script with the target's absolute count (ZADD GT),
 * which is idempotent: a crash in between leaves a leaderboard behind by one
 * batch until the target's next event, never ahead.
 */
import { createHash } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { AppError, Code } from '../app-error.ts';
import { type Registry, redisMetrics, secondsSince } from '../metrics.ts';
import type { CounterIncrement, CounterStore, TypeCounter, TypeLeaders } from './counter-store.ts';

// KEYS[1] counts hash, KEYS[2] sums hash, KEYS[3..] one marker per event.
// ARGV[1] marker ttl in ms, then per event: type, value ('' when none).
// Returns { applied, type1, count1, type2, count2, ... } for the types this call changed.
const APPLY_SCRIPT = `
local applied = 0
local ttl = ARGV[1]
local changed = {}
for i = 3, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'PX', ttl) then
    local type = ARGV[(i - 3) * 2 + 2]
    local value = ARGV[(i - 3) * 2 + 3]
    changed[type] = redis.call('HINCRBY', KEYS[1], type, 1)
    if value ~= '' then redis.call('HINCRBYFLOAT', KEYS[2], type, value) end
    applied = applied + 1
  end
end
local out = { applied }
for type, count in pairs(changed) do
  out[#out + 1] = type
  out[#out + 1] = count
end
return out
`;

export interface RedisCounterStoreOptions {
  /** `redis://host:port` for a standalone server. */
  url?: string;
  /** `host:port` of some Cluster nodes; set instead of `url` for Redis Cluster. */
  clusterNodes?: readonly string[];
  keyPrefix: string;
  dedupWindowMs: number;
  /** Times each call (apply, read, top) there when given (docs/metrics.md). */
  metrics?: Registry;
}

type Client = Redis | Cluster;
type ClientWithApply = Client & {
  tallyApply(numKeys: number, ...args: (string | number)[]): Promise<(number | string)[]>;
};

export function createRedisCounterStore(options: RedisCounterStoreOptions): CounterStore {
  const common = { lazyConnect: false, maxRetriesPerRequest: 3, enableOfflineQueue: true } as const;
  let client: Client;
  let where: string;
  if (options.clusterNodes && options.clusterNodes.length > 0) {
    client = new Cluster(
      options.clusterNodes.map((n) => {
        const [host, port] = n.split(':');
        return { host: host ?? '127.0.0.1', port: Number(port ?? 6379) };
      }),
      { redisOptions: common },
    );
    where = `cluster ${options.clusterNodes.join(',')}`;
  } else if (options.url) {
    client = new Redis(options.url, common);
    where = options.url.replace(/\/\/[^@]*@/, '//');
  } else {
    throw new Error('Redis counter store needs a url or cluster nodes');
  }
  client.on('error', () => {}); // surfaced per command; ioredis reconnects by itself
  client.defineCommand('tallyApply', { lua: APPLY_SCRIPT });
  const redis = client as ClientWithApply;
  const prefix = options.keyPrefix;
  const keysFor = (target: string) => {
    const tag = createHash('sha256').update(target).digest('base64url').slice(0, 22);
    const base = `${prefix}:{${tag}}`;
    return { counts: `${base}:n`, sums: `${base}:s`, marker: (id: string) => `${base}:e:${id}` };
  };
  const topKey = (type: string) => `${prefix}:top:{${type}}`;
  const typesKey = `${prefix}:types`;

  const unavailable = (what: string, cause: unknown) =>
    new AppError(Code.UNAVAILABLE, `Redis ${what} failed`, { cause });
  const duration = options.metrics && redisMetrics(options.metrics).duration;
  /** `work`, timed as `operation` (failures included). */
  const timed = <T>(operation: 'apply' | 'read' | 'top', work: () => Promise<T>): Promise<T> => {
    if (!duration) return work();
    const startMs = performance.now();
    return work().finally(() => duration.observe({ operation }, secondsSince(startMs)));
  };

  const store: CounterStore = {
    description: `redis (ioredis, ${where})`,

    async apply(increments: readonly CounterIncrement[]): Promise<number> {
      const byTarget = new Map<string, CounterIncrement[]>();
      for (const inc of increments) {
        const list = byTarget.get(inc.target);
        if (list) list.push(inc);
        else byTarget.set(inc.target, [inc]);
      }
      try {
        const results = await Promise.all(
          [...byTarget].map(async ([target, incs]) => {
            const keys = keysFor(target);
            const args: (string | number)[] = [keys.counts, keys.sums];
            for (const inc of incs) args.push(keys.marker(inc.eventId));
            args.push(options.dedupWindowMs);
            for (const inc of incs) args.push(inc.type, inc.value === undefined ? '' : String(inc.value));
            const [applied, ...changed] = await redis.tallyApply(2 + incs.length, ...args);
            return { target, applied: Number(applied), changed };
          }),
        );
        const leaderboard: Promise<unknown>[] = [];
        const types = new Set<string>();
        for (const { target, changed } of results) {
          for (let i = 0; i + 1 < changed.length; i += 2) {
            const type = String(changed[i]);
            types.add(type);
            leaderboard.push(redis.zadd(topKey(type), 'GT', Number(changed[i + 1]), target));
          }
        }
        if (types.size > 0) leaderboard.push(redis.sadd(typesKey, ...types));
        await Promise.all(leaderboard);
        return results.reduce((n, r) => n + r.applied, 0);
      } catch (error) {
        throw unavailable('write', error);
      }
    },

    async read(target: string): Promise<TypeCounter[]> {
      const keys = keysFor(target);
      let counts: Record<string, string>;
      let sums: Record<string, string>;
      try {
        // One transaction (both keys share the target's slot), so a count and its sum are read
        // at the same moment: never a count from before an apply and a sum from after it.
        const replies = await redis.multi().hgetall(keys.counts).hgetall(keys.sums).exec();
        if (!replies) throw new Error('read transaction aborted');
        for (const [error] of replies) if (error) throw error;
        [counts, sums] = replies.map(([, reply]) => reply) as [
          Record<string, string>,
          Record<string, string>,
        ];
      } catch (error) {
        throw unavailable('read', error);
      }
      return Object.keys(counts)
        .sort()
        .map((type) => ({ type, count: Number(counts[type]), sum: Number(sums[type] ?? 0) }));
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
