/**
 * The aggregate store in Redis (standalone or Cluster), through ioredis. Per series, in one hash
 * slot (hash tag = a digest of the series' name):
 *   <prefix>:ag:{<tag>}:o          hash partition → offset (events topic) of the last event applied
 *   <prefix>:ag:{<tag>}:r          sorted set of the raw events: score = time (epoch ms), member =
 *                                  `<partition>:<offset>:<value>` (value '' when none)
 *   <prefix>:ag:{<tag>}:m:<hour>   hash minute → tile, the minutes of one hour (hours since the
 *                                  epoch), expiring the retention after the hour
 *   <prefix>:ag:{<tag>}:h:<day>    hash hour → tile, the hours of one UTC day (days since the
 *                                  epoch), expiring the retention after the day
 * A tile is `count valued sum min max` (min and max `-` when no event carried a value), numbers as
 * %.17g, which reads back exactly. APPLY adds the events above the marks (many series per call: a
 * whole batch on a standalone server, a hash slot's series on a Cluster) — each series' raw events
 * in one ZADD, each tile read once and each tile hash written once per call — trims raw events
 * older than the retention and sets the expiries; READ answers the pieces of a series' windows in one
 * script, so that a window never sees half of an apply.
 *
 * Rankings, per kind and ranked type, in one hash slot (hash tag = a digest of kind and type):
 *   <prefix>:ag:rk:{<tag>}:o          hash partition → offset of the last event ranked
 *   <prefix>:ag:rk:{<tag>}:s:<hour>   sorted set subject → sum of the hour's positive values
 *   <prefix>:ag:rk:{<tag>}:c:<hour>   sorted set subject → the hour's count of events
 * each hour's sets expiring a day and an hour after it. They only choose candidates: the sum of a
 * window's hours bounds every series' measure over the window from above, so `top` reads the
 * candidates' exact aggregates highest bound first and stops when no later one can enter the top
 * (exactTop). RANK applies events above its own marks, so a batch redelivered after the series
 * applied and before the rankings did is ranked then, and never twice.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { Cluster, type Redis } from 'ioredis';
import {
  type Aggregate,
  addAggregate,
  addEvent,
  emptyAggregate,
  windowPieces,
} from '../../domain/window-aggregates.ts';
import { AppError, Code } from '../app-error.ts';
import { type Registry, redisMetrics, secondsSince } from '../metrics.ts';
import { connectRedis, type RedisConnectionOptions } from '../redis-client.ts';
import {
  AGGREGATE_MARK_TTL_MS,
  AGGREGATE_RETENTION_MS,
  type AggregateIncrement,
  type AggregateStore,
  checkRanked,
  exactTop,
  groupIncrements,
  isRanked,
  RANKING_HORIZON_MS,
  type RankedTypes,
  type SeriesKind,
  type SeriesName,
  seriesId,
  type TimeSpan,
  yieldToIo,
} from './aggregate-store.ts';

// KEYS: per series its marks key (`<base>:o`; the other keys are `<base>` and a suffix, in the
// same slot by the hash tag). ARGV[1]: the oldest time kept (epoch ms), ARGV[2]: the retention
// (ms), ARGV[3]: how long marks are kept (ms); then per series: its number of partitions, then per
// partition: the partition, its number of events, then per event in offset order: offset, time
// (epoch ms), value ('' when none). An event applies when its offset is above the mark (offsets
// stay below 2^53, exact as Lua numbers); one older than the oldest time kept only moves the mark.
// Returns how many applied.
const APPLY_SCRIPT = `
local oldest = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local markTtl = ARGV[3]
local a = 4
local applied = 0
local expiries = {}
local function fmt(x) return string.format('%.17g', x) end
-- The tiles this call touches, each read once on first touch and written once at the end (one
-- HSET per hash), the events added to it in order, as adding them one by one to the stored tile.
local tiles = {}
local touched = {}
local function add(key, field, value)
  local fields = tiles[key]
  if not fields then
    fields = {}
    tiles[key] = fields
    touched[#touched + 1] = key
  end
  local tile = fields[field]
  if not tile then
    tile = { c = 0, n = 0, s = 0 }
    local text = redis.call('HGET', key, field)
    if text then
      local tc, tn, ts, tlo, thi = string.match(text, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
      tile.c, tile.n, tile.s = tonumber(tc), tonumber(tn), tonumber(ts)
      if tlo ~= '-' then tile.lo, tile.hi = tonumber(tlo), tonumber(thi) end
    end
    fields[field] = tile
  end
  tile.c = tile.c + 1
  if value then
    tile.n = tile.n + 1
    tile.s = tile.s + value
    if tile.lo == nil or value < tile.lo then tile.lo = value end
    if tile.hi == nil or value > tile.hi then tile.hi = value end
  end
end
for k = 1, #KEYS do
  local marks = KEYS[k]
  local base = string.sub(marks, 1, -3)
  local raw = base .. ':r'
  local partitions = tonumber(ARGV[a])
  a = a + 1
  local members = {}
  local moved = false
  for p = 1, partitions do
    local partition = ARGV[a]
    local n = tonumber(ARGV[a + 1])
    a = a + 2
    local last = tonumber(redis.call('HGET', marks, partition) or '-1')
    local lastArg = nil
    for e = 1, n do
      local offset = tonumber(ARGV[a])
      if offset > last then
        local t = tonumber(ARGV[a + 1])
        if t >= oldest then
          local v = ARGV[a + 2]
          local value = nil
          if v ~= '' then value = tonumber(v) end
          members[#members + 1] = ARGV[a + 1]
          members[#members + 1] = partition .. ':' .. ARGV[a] .. ':' .. v
          local minute = math.floor(t / 60000)
          local hour = math.floor(minute / 60)
          local day = math.floor(hour / 24)
          local mkey = base .. ':m:' .. hour
          local hkey = base .. ':h:' .. day
          add(mkey, tostring(minute), value)
          add(hkey, tostring(hour), value)
          expiries[mkey] = (hour + 1) * 3600000 + retention
          expiries[hkey] = (day + 1) * 86400000 + retention
        end
        applied = applied + 1
        last = offset
        lastArg = ARGV[a]
      end
      a = a + 3
    end
    if lastArg then
      redis.call('HSET', marks, partition, lastArg)
      moved = true
    end
  end
  if #members > 0 then
    for i = 1, #members, 2000 do
      redis.call('ZADD', raw, unpack(members, i, math.min(i + 1999, #members)))
    end
    redis.call('ZREMRANGEBYSCORE', raw, '-inf', '(' .. ARGV[1])
    local newest = redis.call('ZRANGE', raw, -1, -1, 'WITHSCORES')
    if newest[2] then redis.call('PEXPIREAT', raw, tonumber(newest[2]) + retention) end
  end
  if moved then redis.call('PEXPIRE', marks, markTtl) end
end
for _, key in ipairs(touched) do
  local args = {}
  for field, tile in pairs(tiles[key]) do
    args[#args + 1] = field
    args[#args + 1] = string.format('%d %d %s %s %s', tile.c, tile.n, fmt(tile.s),
      tile.lo and fmt(tile.lo) or '-', tile.hi and fmt(tile.hi) or '-')
  end
  redis.call('HSET', key, unpack(args))
end
for key, at in pairs(expiries) do redis.call('PEXPIREAT', key, string.format('%d', at)) end
return applied
`;

// KEYS[1]: the series' marks key (its slot; the other keys are derived). ARGV: the raw ranges
// (n, then n × from, to: [from, to) in epoch ms), the minutes by hour (n hours, then per hour: the
// hour, its number of runs, then per run: its first minute and the minute after its last) and the
// hours by day (the same shape). The caller sends each piece once however many windows share it.
// Returns { the members of each range, the minute tiles in the order of the runs, the hour tiles
// likewise } (false where none): one HMGET per hash, so a 24 h window costs a handful of calls.
const READ_SCRIPT = `
local base = string.sub(KEYS[1], 1, -3)
local raw = base .. ':r'
local ranges = {}
local a = 2
for r = 1, tonumber(ARGV[1]) do
  ranges[r] = redis.call('ZRANGE', raw, ARGV[a], '(' .. ARGV[a + 1], 'BYSCORE')
  a = a + 2
end
local function tiles(suffix)
  local out = {}
  local groups = tonumber(ARGV[a])
  a = a + 1
  for g = 1, groups do
    local key = base .. suffix .. ARGV[a]
    local fields = {}
    for r = 1, tonumber(ARGV[a + 1]) do
      for piece = tonumber(ARGV[a + 2 * r]), tonumber(ARGV[a + 2 * r + 1]) - 1 do
        fields[#fields + 1] = tostring(piece)
      end
    end
    a = a + 2 + 2 * tonumber(ARGV[a + 1])
    local found = redis.call('HMGET', key, unpack(fields))
    for i = 1, #fields do out[#out + 1] = found[i] end
  end
  return out
end
local minutes = tiles(':m:')
local hours = tiles(':h:')
return { ranges, minutes, hours }
`;

// KEYS[1]: a ranking's marks key (`<base>:o`). ARGV[1]: the oldest time ranked (epoch ms),
// ARGV[2]: how long an hour's sets are kept after it (ms), ARGV[3]: how long marks are kept (ms);
// then per partition: the partition, its number of events, then per event in offset order:
// offset, time (epoch ms), subject, value ('' when none). Returns how many it ranked.
const RANK_SCRIPT = `
local base = string.sub(KEYS[1], 1, -3)
local oldest = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local a = 4
local ranked = 0
local expiries = {}
-- Each (set, subject) once per call: the increments added up here, one ZINCRBY each at the end.
local deltas = {}
local sets = {}
local function add(key, subject, by)
  local set = deltas[key]
  if not set then
    set = {}
    deltas[key] = set
    sets[#sets + 1] = key
  end
  set[subject] = (set[subject] or 0) + by
end
while a <= #ARGV do
  local partition = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  local last = tonumber(redis.call('HGET', KEYS[1], partition) or '-1')
  local lastArg = nil
  for e = 1, n do
    local offset = tonumber(ARGV[a])
    if offset > last then
      local t = tonumber(ARGV[a + 1])
      if t >= oldest then
        local hour = math.floor(t / 3600000)
        local skey = base .. ':s:' .. hour
        local ckey = base .. ':c:' .. hour
        local v = tonumber(ARGV[a + 3])
        if v == nil or v < 0 then v = 0 end
        add(skey, ARGV[a + 2], v)
        add(ckey, ARGV[a + 2], 1)
        expiries[skey] = (hour + 1) * 3600000 + keep
        expiries[ckey] = (hour + 1) * 3600000 + keep
        ranked = ranked + 1
      end
      last = offset
      lastArg = ARGV[a]
    end
    a = a + 4
  end
  if lastArg then redis.call('HSET', KEYS[1], partition, lastArg) end
end
for _, key in ipairs(sets) do
  -- %.17g: a Lua number passed as it is would be written with 14 digits
  for subject, by in pairs(deltas[key]) do redis.call('ZINCRBY', key, string.format('%.17g', by), subject) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
for key, at in pairs(expiries) do redis.call('PEXPIREAT', key, string.format('%d', at)) end
return ranked
`;

// KEYS[1]: a ranking's marks key. ARGV[1]: 's' or 'c', ARGV[2]: a token naming this query's union,
// ARGV[3]: the first rank wanted (0-based), ARGV[4]: how many, ARGV[5…]: the hours of the window.
// At rank 0 the union of the hours' sets is made (kept 10 s); answers [subject, bound, …].
const RANK_PAGE_SCRIPT = `
local base = string.sub(KEYS[1], 1, -3)
local union = base .. ':u:' .. ARGV[2]
local start = tonumber(ARGV[3])
if start == 0 then
  local keys = {}
  for i = 5, #ARGV do keys[#keys + 1] = base .. ':' .. ARGV[1] .. ':' .. ARGV[i] end
  redis.call('ZUNIONSTORE', union, #keys, unpack(keys))
  redis.call('PEXPIRE', union, 10000)
end
return redis.call('ZRANGE', union, start, start + tonumber(ARGV[4]) - 1, 'REV', 'WITHSCORES')
`;

/** How many series' (and rankings') keys a store remembers (marksKey, rankingKey). */
const MARKS_KEYS_REMEMBERED = 100_000;

/** Most events in one script call: a call blocks Redis while it runs. */
const MAX_EVENTS_PER_CALL = 1000;

/** The hash slot of a key, as Redis Cluster computes it (ioredis's own). */
const clusterKeySlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

export interface RedisAggregateStoreOptions extends RedisConnectionOptions {
  keyPrefix: string;
  /** Times each call (`aggregates_apply`, `aggregates_read`) there when given (docs/metrics.md). */
  metrics?: Registry;
  /** The clock that decides which events are still kept (default Date.now). */
  now?: () => number;
  /** The types ranked for {@link AggregateStore.top} (default all). */
  rankedTypes?: RankedTypes;
}

type ClientWithScripts = (Redis | Cluster) & {
  tallyAggregatesApply(numKeys: number, ...args: string[]): Promise<number>;
  tallyAggregatesRead(
    marksKey: string,
    ...args: string[]
  ): Promise<[string[][], (string | null)[], (string | null)[]]>;
  tallyAggregatesRank(marksKey: string, ...args: string[]): Promise<number>;
  tallyAggregatesRankPage(marksKey: string, ...args: string[]): Promise<string[]>;
};

export function createRedisAggregateStore(options: RedisAggregateStoreOptions): AggregateStore {
  const { client, where, connectionError } = connectRedis(options, 'Redis aggregate store');
  client.defineCommand('tallyAggregatesApply', { lua: APPLY_SCRIPT });
  client.defineCommand('tallyAggregatesRead', { lua: READ_SCRIPT, numberOfKeys: 1 });
  client.defineCommand('tallyAggregatesRank', { lua: RANK_SCRIPT, numberOfKeys: 1 });
  client.defineCommand('tallyAggregatesRankPage', { lua: RANK_PAGE_SCRIPT, numberOfKeys: 1 });
  const rankedTypes = options.rankedTypes ?? 'all';
  const redis = client as ClientWithScripts;
  const cluster = client instanceof Cluster;
  const now = options.now ?? Date.now;
  // A series' key is a digest of its name: remembered for the series seen lately (a batch's users
  // and targets recur), in a bounded map, the oldest entry out first.
  const marksKeys = new Map<string, string>();
  const marksKey = (series: SeriesName) => {
    const id = seriesId(series);
    let key = marksKeys.get(id);
    if (key === undefined) {
      if (marksKeys.size >= MARKS_KEYS_REMEMBERED) marksKeys.delete(marksKeys.keys().next().value as string);
      key = `${options.keyPrefix}:ag:{${createHash('sha256').update(id).digest('base64url').slice(0, 22)}}:o`;
      marksKeys.set(id, key);
    }
    return key;
  };
  const rankingKeys = new Map<string, string>();
  const rankingKey = (kind: SeriesKind, type: string) => {
    const id = `${kind}:${type}`;
    let key = rankingKeys.get(id);
    if (key === undefined) {
      if (rankingKeys.size >= MARKS_KEYS_REMEMBERED)
        rankingKeys.delete(rankingKeys.keys().next().value as string);
      key = `${options.keyPrefix}:ag:rk:{${createHash('sha256').update(id).digest('base64url').slice(0, 22)}}:o`;
      rankingKeys.set(id, key);
    }
    return key;
  };
  const unavailable = (what: string, cause: unknown) =>
    new AppError(Code.UNAVAILABLE, `Redis ${what} failed`, { cause: connectionError() ?? cause });
  const duration = options.metrics && redisMetrics(options.metrics).duration;
  const timed = async <T>(operation: string, work: () => Promise<T>): Promise<T> => {
    const startMs = performance.now();
    try {
      return await work();
    } finally {
      duration?.labels({ operation }).observe(secondsSince(startMs));
    }
  };

  /**
   * Ranks the increments of ranked types, per ranking in calls of at most MAX_EVENTS_PER_CALL
   * events made one after another (a partition's events in offset order across them).
   */
  const rank = async (increments: readonly AggregateIncrement[], nowMs: number) => {
    const rankings = new Map<string, Map<number, AggregateIncrement[]>>();
    for (const inc of increments) {
      if (!isRanked(rankedTypes, inc.type)) continue;
      const key = rankingKey(inc.kind, inc.type);
      let partitions = rankings.get(key);
      if (!partitions) {
        partitions = new Map();
        rankings.set(key, partitions);
      }
      const list = partitions.get(inc.partition);
      if (list) list.push(inc);
      else partitions.set(inc.partition, [inc]);
    }
    const head = [
      String(nowMs - RANKING_HORIZON_MS - 3_600_000),
      String(RANKING_HORIZON_MS + 3_600_000),
      String(AGGREGATE_MARK_TTL_MS),
    ];
    await Promise.all(
      [...rankings].map(async ([key, partitions]) => {
        let args: string[] = [];
        let events = 0;
        for (const [partition, incs] of partitions)
          for (let i = 0; i < incs.length; i += MAX_EVENTS_PER_CALL) {
            const slice = incs.slice(i, i + MAX_EVENTS_PER_CALL);
            if (events > 0 && events + slice.length > MAX_EVENTS_PER_CALL) {
              await redis.tallyAggregatesRank(key, ...head, ...args);
              args = [];
              events = 0;
            }
            args.push(String(partition), String(slice.length));
            for (const inc of slice)
              args.push(
                inc.position.toString(),
                String(inc.timeMs),
                inc.subject,
                inc.value === undefined ? '' : String(inc.value),
              );
            events += slice.length;
          }
        if (events > 0) await redis.tallyAggregatesRank(key, ...head, ...args);
      }),
    );
  };

  const store: AggregateStore = {
    description: `redis (ioredis, ${where})`,

    apply: (increments) =>
      timed('aggregates_apply', async () => {
        const nowMs = now();
        // One call per group of series: on a Cluster those of one hash slot, on a standalone
        // server any; at most MAX_EVENTS_PER_CALL events each (a larger series goes alone).
        const calls = new Map<number, { keys: string[]; args: string[]; events: number }[]>();
        for (const { series, events, partitions } of groupIncrements(increments).values()) {
          const key = marksKey(series);
          const slot = cluster ? clusterKeySlot(key) : 0;
          let list = calls.get(slot);
          if (!list) {
            list = [];
            calls.set(slot, list);
          }
          let call = list.at(-1);
          if (!call || (call.events > 0 && call.events + events > MAX_EVENTS_PER_CALL)) {
            call = { keys: [], args: [], events: 0 };
            list.push(call);
          }
          call.keys.push(key);
          call.events += events;
          call.args.push(String(partitions.size));
          for (const [partition, incs] of partitions) {
            call.args.push(String(partition), String(incs.length));
            for (const inc of incs)
              call.args.push(
                inc.position.toString(),
                String(inc.timeMs),
                inc.value === undefined ? '' : String(inc.value),
              );
          }
        }
        const head = [
          String(nowMs - AGGREGATE_RETENTION_MS),
          String(AGGREGATE_RETENTION_MS),
          String(AGGREGATE_MARK_TTL_MS),
        ];
        try {
          const applying = Promise.all(
            [...calls.values()]
              .flat()
              .map(({ keys, args }) => redis.tallyAggregatesApply(keys.length, ...keys, ...head, ...args)),
          );
          // The rankings have marks of their own: they are built while Redis runs the series'
          // scripts, once those are on their way (the client sends what was called in one tick).
          const [applied] = await Promise.all([applying, yieldToIo().then(() => rank(increments, nowMs))]);
          return applied.reduce((sum, n) => sum + Number(n), 0);
        } catch (error) {
          throw unavailable('aggregates write', error);
        }
      }),

    read: (series, spans) =>
      timed('aggregates_read', async () => {
        const plan = readPlan(spans);
        let out: [string[][], (string | null)[], (string | null)[]];
        try {
          out = await redis.tallyAggregatesRead(marksKey(series), ...plan.args);
        } catch (error) {
          throw unavailable('aggregates read', error);
        }
        const [ranges, minuteTiles, hourTiles] = out;
        const rangeTotals = ranges.map((members) => {
          const total = emptyAggregate();
          for (const member of members) {
            const value = member.slice(member.indexOf(':', member.indexOf(':') + 1) + 1);
            addEvent(total, value === '' ? undefined : Number(value));
          }
          return total;
        });
        const tiles = (texts: (string | null)[]) => texts.map((text) => (text ? tileOf(text) : undefined));
        const minuteAggregates = tiles(minuteTiles);
        const hourAggregates = tiles(hourTiles);
        return plan.spans.map((span) => {
          const total = emptyAggregate();
          for (const r of span.ranges) addAggregate(total, rangeTotals[r]!);
          for (const [from, to] of span.minutes)
            for (let i = from; i < to; i++) {
              const tile = minuteAggregates[i];
              if (tile) addAggregate(total, tile);
            }
          for (const [from, to] of span.hours)
            for (let i = from; i < to; i++) {
              const tile = hourAggregates[i];
              if (tile) addAggregate(total, tile);
            }
          return total;
        });
      }),

    top: (kind, type, span, by, limit) =>
      timed('aggregates_top', async () => {
        checkRanked(rankedTypes, type);
        const key = rankingKey(kind, type);
        const hours: string[] = [];
        for (let h = Math.floor(span.startMs / 3_600_000); h * 3_600_000 < span.endMs; h++)
          hours.push(String(h));
        const token = randomUUID();
        try {
          return await exactTop({
            by,
            limit,
            candidates: async (start, count) => {
              const flat = await redis.tallyAggregatesRankPage(
                key,
                by === 'sum' ? 's' : 'c',
                token,
                String(start),
                String(count),
                ...hours,
              );
              const page: { subject: string; bound: number }[] = [];
              for (let i = 0; i < flat.length; i += 2)
                page.push({ subject: flat[i]!, bound: Number(flat[i + 1]) });
              return page;
            },
            read: (subjects) =>
              Promise.all(
                subjects.map(async (subject) => (await store.read({ kind, subject, type }, [span]))[0]!),
              ),
          });
        } catch (error) {
          if (error instanceof AppError) throw error;
          throw unavailable('aggregates ranking', error);
        }
      }),

    async ping() {
      try {
        await redis.ping();
      } catch (error) {
        throw unavailable('aggregates ping', error);
      }
    },

    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
  return store;
}

/** A tile as stored (`count valued sum min max`). */
/** Pieces (minutes or hours since the epoch) [from, to). */
type Run = [from: number, to: number];

/** The runs of consecutive pieces in an ascending list. */
function runsOf(pieces: readonly number[]): Run[] {
  const runs: Run[] = [];
  for (const piece of pieces) {
    const last = runs[runs.length - 1];
    if (last && last[1] === piece) last[1] = piece + 1;
    else runs.push([piece, piece + 1]);
  }
  return runs;
}

/**
 * The READ script's arguments for `spans`, each raw range, minute and hour once however many spans
 * share it (windows ending at the same moment share their last minutes and their raw tail), and per
 * span where its pieces are in the script's answer: indexes of the ranges, [from, to) of the tiles.
 */
export function readPlan(spans: readonly TimeSpan[]): {
  args: string[];
  spans: { ranges: number[]; minutes: Run[]; hours: Run[] }[];
} {
  const ranges = new Map<string, number>();
  const pieces = spans.map((span) => {
    const p = windowPieces(span.startMs, span.endMs);
    return {
      ranges: p.raw.map((r) => {
        const key = `${r.fromMs} ${r.toMs}`;
        const known = ranges.get(key);
        if (known !== undefined) return known;
        ranges.set(key, ranges.size);
        return ranges.size - 1;
      }),
      minutes: runsOf(p.minutes),
      hours: runsOf(p.hours),
    };
  });
  const args: string[] = [String(ranges.size)];
  for (const range of ranges.keys()) args.push(...range.split(' '));
  // The union of the spans' runs, ascending, sent per hash (an hour's minutes, a day's hours);
  // a span's run lies inside one run of the union, at that run's offset in the answer.
  const send = (spanRuns: Run[][], per: number) => {
    const union: Run[] = [];
    for (const run of spanRuns.flat().sort((x, y) => x[0] - y[0])) {
      const last = union[union.length - 1];
      if (last && run[0] <= last[1]) last[1] = Math.max(last[1], run[1]);
      else union.push([run[0], run[1]]);
    }
    const offsets: number[] = [];
    const groups: [key: number, runs: Run[]][] = [];
    let offset = 0;
    for (const [from, to] of union) {
      offsets.push(offset);
      offset += to - from;
      for (let start = from; start < to; ) {
        const key = Math.floor(start / per);
        const end = Math.min(to, (key + 1) * per);
        const group = groups[groups.length - 1];
        if (group && group[0] === key) group[1].push([start, end]);
        else groups.push([key, [[start, end]]]);
        start = end;
      }
    }
    args.push(String(groups.length));
    for (const [key, runs] of groups) {
      args.push(String(key), String(runs.length));
      for (const [from, to] of runs) args.push(String(from), String(to));
    }
    return (runs: Run[]): Run[] =>
      runs.map(([from, to]) => {
        const u = union.findIndex(([f, t]) => f <= from && to <= t);
        const at = offsets[u]! + from - union[u]![0];
        return [at, at + to - from];
      });
  };
  const minutes = send(
    pieces.map((p) => p.minutes),
    60,
  );
  const hours = send(
    pieces.map((p) => p.hours),
    24,
  );
  return {
    args,
    spans: pieces.map((p) => ({ ranges: p.ranges, minutes: minutes(p.minutes), hours: hours(p.hours) })),
  };
}

function tileOf(text: string): Aggregate {
  const [count, valued, sum, min, max] = text.split(' ');
  return {
    count: Number(count),
    valueCount: Number(valued),
    sum: Number(sum),
    min: min === '-' || min === undefined ? undefined : Number(min),
    max: max === '-' || max === undefined ? undefined : Number(max),
  };
}
