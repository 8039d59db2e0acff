/**
 * The query role: tally.v1.QueryService over gRPC. Counters come from the
 * counter store (Redis), reports from the hourly summaries (PostgreSQL, read
 * replicas when configured).
 */
import { buildDayReport, type HourTypeTotal, parseReportDate } from '../domain/report.ts';
import { QueryService } from '../gen/tally/v1/query_pb.js';
import { AppError } from '../infra/app-error.ts';
import type { CounterStore } from '../infra/counters/counter-store.ts';
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

export interface QueryConfig {
  maxTargetChars: number;
}

export interface QueryDeps {
  counters: CounterStore;
  sql: SqlDatabase;
  /** The API keys, administered by tally.v1.KeysService (keys-service.ts), served alongside. */
  keys?: KeyStore;
  grpc: GrpcRegistry;
  logger: Logger;
  /**
   * The hook for rate limits: called once per read (GetCounters, GetReport, TopTargets) after
   * access control, with the call; a rejection (RESOURCE_EXHAUSTED) refuses it. None: no limits.
   * Key administration is not limited.
   */
  limits?: (context: CallContext) => Promise<void>;
}

export async function start(deps: QueryDeps, config: QueryConfig): Promise<Stoppable> {
  const checkTarget = (target: string): void => {
    if (target === '') throw AppError.invalidField('target', 'is required');
    if (target.length > config.maxTargetChars)
      throw AppError.invalidField('target', `must be at most ${config.maxTargetChars} characters`);
  };

  const charge = deps.limits ?? (async () => {});
  deps.grpc.register(QueryService, {
    async topTargets(request, context) {
      const limit = request.limit === 0 ? 10 : request.limit;
      if (limit > 100) throw AppError.invalidField('limit', 'must be at most 100');
      request.types.forEach((type, i) => {
        if (type === '' || type.length > 64)
          throw AppError.invalidField(`types[${i}]`, 'must be 1 to 64 characters');
      });
      await charge(context);
      const leaders = await deps.counters.top(request.types, limit);
      return {
        leaders: leaders.map((l) => ({
          type: l.type,
          targets: l.targets.map((t) => ({ target: t.target, count: BigInt(t.count) })),
        })),
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
