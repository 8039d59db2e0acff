/**
 * The query role: tally.v1.QueryService over gRPC. Counters, leaderboards of all time, the
 * current hour and the current day, and unique users come from the counter store (Redis);
 * reports and leaderboards of past dates and months from the hourly summaries (PostgreSQL, read
 * replicas when configured).
 */
import { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { defaultEventLimits, type FieldViolation } from '../domain/event-rules.ts';
import { buildDayReport, HOUR_MS, type HourTypeTotal, parseReportDate } from '../domain/report.ts';
import {
  averageOf,
  parseRankingQuery,
  parseWindowsQuery,
  userAggregatesDenial,
  userRankingDenial,
} from '../domain/window-aggregates.ts';
import {
  dayHoldingMs,
  type HourSpan,
  hourHoldingMs,
  hoursOf,
  parsePastDate,
  parsePastMonth,
  parseTimeZone,
} from '../domain/windows.ts';
import { QueryService, type TopTargetsRequest, Window } from '../gen/tally/v1/query_pb.js';
import type { AggregateStore } from '../infra/aggregates/aggregate-store.ts';
import { AppError, Code } from '../infra/app-error.ts';
import {
  type CounterStore,
  type TypeLeaders,
  UNIQUES_RELATIVE_STANDARD_ERROR,
  UNIQUES_RETENTION_MS,
} from '../infra/counters/counter-store.ts';
import type { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import type { CallContext } from '../infra/grpc/grpc-service.ts';
import type { KeyStore } from '../infra/keys/key-store.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { Logger } from '../infra/logger.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { registerKeysService } from './keys-service.ts';

/**
 * One target's summary rows of one day, shaped as the report's rows. Once vacuum has marked the
 * pages all-visible, an index-only scan of the summary key, which carries count and sum_value
 * (migration 0002): a few adjacent index pages, where the heap holds each row on a page of its
 * own. `date_part` computes in double precision (extract() would in numeric); summary hours
 * are whole seconds, so the value is the same.
 */
const REPORT_SQL = `SELECT date_part('epoch', hour) * 1000 AS "hourStartMs", type, count, sum_value AS sum
  FROM event_summary
 WHERE target = $1 AND hour >= to_timestamp($2 / 1000.0) AND hour < to_timestamp($3 / 1000.0)`;

/**
 * The `$4` most counted targets of each type over the summary hours [$1, $2) (epoch ms), of the
 * types `$3` (every type when null): highest first, ties by target descending (code unit order)
 * as the leaderboards of the counter store order them. Uses `event_summary_hour` (migration 0006).
 */
const TOP_SQL = `SELECT type, target, total::text AS count FROM (
  SELECT type, target, sum(count) AS total,
         row_number() OVER (PARTITION BY type ORDER BY sum(count) DESC, target COLLATE "C" DESC) AS rank
    FROM event_summary
   WHERE hour >= to_timestamp($1 / 1000.0) AND hour < to_timestamp($2 / 1000.0)
     AND ($3::text[] IS NULL OR type = ANY($3::text[]))
   GROUP BY type, target) ranked
 WHERE rank <= $4
 ORDER BY type, rank`;

const DAY_MS = 24 * HOUR_MS;

export interface QueryConfig {
  maxTargetChars: number;
}

export interface QueryDeps {
  counters: CounterStore;
  /** The sliding-window aggregates (GetWindows); none: GetWindows answers UNAVAILABLE. */
  aggregates?: AggregateStore;
  sql: SqlDatabase;
  /** The API keys, administered by tally.v1.KeysService (keys-service.ts), served alongside. */
  keys?: KeyStore;
  grpc: GrpcRegistry;
  logger: Logger;
  /**
   * The hook for rate limits: called once per read (GetCounters, GetReport, TopTargets, GetUniques, GetWindows) after
   * access control, with the call; a rejection (RESOURCE_EXHAUSTED) refuses it. None: no limits.
   * Key administration is not limited.
   */
  limits?: (context: CallContext) => Promise<void>;
  /** The clock windows are read by (default Date.now). */
  now?: () => number;
}

/** Where a TopTargets request's counts come from. */
type Ranking =
  | { from: 'all-time' }
  | { from: 'windows'; span: HourSpan; hours: number[] }
  | { from: 'summaries'; span: HourSpan };

/** The window of `request` at `nowMs`, or the violation naming its field. */
function rankingOf(request: TopTargetsRequest, nowMs: number): Ranking | FieldViolation {
  let window = request.window;
  if (window === Window.UNSPECIFIED) {
    if (request.date !== '' && request.month !== '')
      return { field: 'month', description: 'cannot be given with date' };
    window = request.date !== '' ? Window.DATE : request.month !== '' ? Window.MONTH : Window.ALL_TIME;
  }
  if (!Object.values(Window).includes(window))
    return { field: 'window', description: `is not a known window: ${window}` };
  const zoned = window === Window.DAY || window === Window.DATE || window === Window.MONTH;
  if (!zoned && request.timeZone !== '')
    return { field: 'time_zone', description: 'applies only to WINDOW_DAY, WINDOW_DATE and WINDOW_MONTH' };
  if (window !== Window.DATE && request.date !== '')
    return { field: 'date', description: 'applies only to WINDOW_DATE' };
  if (window !== Window.MONTH && request.month !== '')
    return { field: 'month', description: 'applies only to WINDOW_MONTH' };
  const zone = parseTimeZone(request.timeZone);
  if ('field' in zone) return zone;
  switch (window) {
    case Window.HOUR: {
      const span = hourHoldingMs(nowMs);
      return { from: 'windows', span, hours: [span.startMs] };
    }
    case Window.DAY: {
      const span = dayHoldingMs(nowMs, zone.zone);
      // The hours begun so far: later ones hold nothing yet.
      return { from: 'windows', span, hours: hoursOf(span).filter((h) => h <= nowMs) };
    }
    case Window.DATE: {
      const span = parsePastDate(request.date, zone.zone, nowMs);
      return 'field' in span ? span : { from: 'summaries', span };
    }
    case Window.MONTH: {
      const span = parsePastMonth(request.month, zone.zone, nowMs);
      return 'field' in span ? span : { from: 'summaries', span };
    }
    default:
      return { from: 'all-time' };
  }
}

export async function start(deps: QueryDeps, config: QueryConfig): Promise<Stoppable> {
  const checkTarget = (target: string): void => {
    if (target === '') throw AppError.invalidField('target', 'is required');
    if (target.length > config.maxTargetChars)
      throw AppError.invalidField('target', `must be at most ${config.maxTargetChars} characters`);
  };

  const charge = deps.limits ?? (async () => {});
  const now = deps.now ?? Date.now;
  /** The leaderboards of the summaries over `span`: every type in `types`, ordered by type. */
  const topOfSummaries = async (
    types: readonly string[],
    span: HourSpan,
    limit: number,
  ): Promise<TypeLeaders[]> => {
    const rows = await deps.sql.reader.query<{ type: string; target: string; count: string }>(TOP_SQL, [
      span.startMs,
      span.endMs,
      types.length > 0 ? [...new Set(types)] : null,
      limit,
    ]);
    const boards = new Map<string, TypeLeaders['targets']>(types.map((type) => [type, []]));
    for (const row of rows) {
      let board = boards.get(row.type);
      if (!board) {
        board = [];
        boards.set(row.type, board);
      }
      board.push({ target: row.target, count: Number(row.count) });
    }
    // Code unit order, as the counter store orders types (SQL would use the collation).
    return [...boards.keys()].sort().map((type) => ({ type, targets: boards.get(type)! }));
  };
  deps.grpc.register(QueryService, {
    async topTargets(request, context) {
      const limit = request.limit === 0 ? 10 : request.limit;
      if (limit > 100) throw AppError.invalidField('limit', 'must be at most 100');
      request.types.forEach((type, i) => {
        if (type === '' || type.length > 64)
          throw AppError.invalidField(`types[${i}]`, 'must be 1 to 64 characters');
      });
      const ranking = rankingOf(request, now());
      if ('field' in ranking) throw AppError.invalidField(ranking.field, ranking.description);
      await charge(context);
      const leaders =
        ranking.from === 'all-time'
          ? await deps.counters.top(request.types, limit)
          : ranking.from === 'windows'
            ? await deps.counters.topWindow(request.types, ranking.hours, limit)
            : await topOfSummaries(request.types, ranking.span, limit);
      return {
        leaders: leaders.map((l) => ({
          type: l.type,
          targets: l.targets.map((t) => ({ target: t.target, count: BigInt(t.count) })),
        })),
        ...(ranking.from !== 'all-time' && {
          windowStart: timestampFromMs(ranking.span.startMs),
          windowEnd: timestampFromMs(ranking.span.endMs),
        }),
      };
    },

    async getUniques(request, context) {
      checkTarget(request.target);
      request.types.forEach((type, i) => {
        if (type === '' || type.length > 64)
          throw AppError.invalidField(`types[${i}]`, 'must be 1 to 64 characters');
      });
      const nowMs = now();
      const today = Math.floor(nowMs / DAY_MS) * DAY_MS;
      let dayStartMs = today;
      if (request.date !== '') {
        const day = parseReportDate(request.date);
        if ('field' in day) throw AppError.invalidField(day.field, day.description);
        if (day.startMs > today) throw AppError.invalidField('date', `is in the future: ${request.date}`);
        if (day.endMs + UNIQUES_RETENTION_MS <= nowMs)
          throw AppError.invalidField(
            'date',
            `unique users of a day are kept for ${UNIQUES_RETENTION_MS / DAY_MS} days after it: ${request.date}`,
          );
        dayStartMs = day.startMs;
      }
      await charge(context);
      const uniques = await deps.counters.uniques(request.target, request.types, dayStartMs);
      return {
        target: request.target,
        date: new Date(dayStartMs).toISOString().slice(0, 10),
        uniques: uniques.map((u) => ({ type: u.type, day: BigInt(u.day), allTime: BigInt(u.allTime) })),
        approximate: true,
        relativeStandardError: UNIQUES_RELATIVE_STANDARD_ERROR,
      };
    },

    async getWindows(request, context) {
      if (request.userId !== '' && request.target !== '')
        throw AppError.invalidField('target', 'cannot be given with user_id');
      if (request.userId === '' && request.target === '')
        throw AppError.invalidField('user_id', 'is required (or target)');
      if (request.target !== '') checkTarget(request.target);
      if (request.userId.length > defaultEventLimits.maxUserIdChars)
        throw AppError.invalidField(
          'user_id',
          `must be at most ${defaultEventLimits.maxUserIdChars} characters`,
        );
      if (request.type === '' || request.type.length > defaultEventLimits.maxTypeChars)
        throw AppError.invalidField('type', `must be 1 to ${defaultEventLimits.maxTypeChars} characters`);
      const asked = parseWindowsQuery(request.windows, request.at && timestampMs(request.at), now());
      if ('field' in asked) throw AppError.invalidField(asked.field, asked.description);
      if (request.userId !== '') {
        const denial = userAggregatesDenial(context.principal, request.userId);
        if (denial) throw new AppError(Code.PERMISSION_DENIED, denial);
      }
      if (!deps.aggregates)
        throw new AppError(Code.UNAVAILABLE, 'the aggregate store is not open in this process');
      await charge(context);
      const series =
        request.userId !== ''
          ? { kind: 'user' as const, subject: request.userId, type: request.type }
          : { kind: 'target' as const, subject: request.target, type: request.type };
      const spans = asked.windows.map((w) => ({ startMs: asked.atMs - w.ms, endMs: asked.atMs }));
      const totals = await deps.aggregates.read(series, spans);
      return {
        userId: request.userId,
        target: request.target,
        type: request.type,
        at: timestampFromMs(asked.atMs),
        windows: asked.windows.map((w, i) => {
          const total = totals[i]!;
          const avg = averageOf(total);
          return {
            window: w.name,
            start: timestampFromMs(spans[i]!.startMs),
            end: timestampFromMs(spans[i]!.endMs),
            count: BigInt(total.count),
            valueCount: BigInt(total.valueCount),
            sum: total.sum,
            ...(total.min !== undefined && { min: total.min }),
            ...(total.max !== undefined && { max: total.max }),
            ...(avg !== undefined && { avg }),
          };
        }),
      };
    },

    async topByWindow(request, context) {
      if (request.type === '' || request.type.length > defaultEventLimits.maxTypeChars)
        throw AppError.invalidField('type', `must be 1 to ${defaultEventLimits.maxTypeChars} characters`);
      const asked = parseRankingQuery(request, request.at && timestampMs(request.at), now());
      if ('field' in asked) throw AppError.invalidField(asked.field, asked.description);
      if (asked.of === 'user') {
        const denial = userRankingDenial(context.principal);
        if (denial) throw new AppError(Code.PERMISSION_DENIED, denial);
      }
      if (!deps.aggregates)
        throw new AppError(Code.UNAVAILABLE, 'the aggregate store is not open in this process');
      await charge(context);
      const span = { startMs: asked.atMs - asked.window.ms, endMs: asked.atMs };
      const ranked = await deps.aggregates.top(asked.of, request.type, span, asked.by, asked.limit);
      return {
        type: request.type,
        of: asked.of,
        window: asked.window.name,
        by: asked.by,
        start: timestampFromMs(span.startMs),
        end: timestampFromMs(span.endMs),
        entries: ranked.map(({ subject, aggregate }) => {
          const avg = averageOf(aggregate);
          return {
            userId: asked.of === 'user' ? subject : '',
            target: asked.of === 'target' ? subject : '',
            count: BigInt(aggregate.count),
            valueCount: BigInt(aggregate.valueCount),
            sum: aggregate.sum,
            ...(aggregate.min !== undefined && { min: aggregate.min }),
            ...(aggregate.max !== undefined && { max: aggregate.max }),
            ...(avg !== undefined && { avg }),
          };
        }),
      };
    },

    async getCounters(request, context) {
      checkTarget(request.target);
      await charge(context);
      const counts = await deps.counters.read(request.target);
      return {
        target: request.target,
        counts: counts.map((c) => ({ type: c.type, count: BigInt(c.count), sum: c.sum })),
      };
    },

    async getReport(request, context) {
      checkTarget(request.target);
      const day = parseReportDate(request.date);
      if ('field' in day) throw AppError.invalidField(day.field, day.description);
      await charge(context);
      const rows = await deps.sql.reader.query<HourTypeTotal>(REPORT_SQL, [
        request.target,
        day.startMs,
        day.endMs,
      ]);
      const report = buildDayReport(day.startMs, rows);
      return {
        target: request.target,
        date: request.date,
        hours: report.hours.map((h) => ({
          hour: h.hour,
          counts: h.counts.map((c) => ({ type: c.type, count: BigInt(c.count), sum: c.sum })),
        })),
      };
    },
  });

  deps.logger.info('query ready');
  if (deps.keys) registerKeysService({ keys: deps.keys, grpc: deps.grpc, logger: deps.logger });
  return { name: 'query', stop: async () => {} };
}
