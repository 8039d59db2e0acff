/**
 * The aggregator role (group `group_aggregation`): hourly summaries
 * (target, hour, type, count, sum) by event time, exactly once.
 *
 * One PostgreSQL transaction per batch: lock the partition's stored next
 * offset, skip records below it (applied before: a redelivery), skip event ids
 * already folded in (a client retry), upsert the summaries, store the offset
 * after the batch's last record as the next one. The Kafka
 * commit that follows only tells lag monitors how far the group is.
 */
import { summarize } from '../domain/report.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { eventTimeMs } from '../pipeline/event-codec.ts';
import type { EventBatch } from '../pipeline/event-consumer.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';

export interface AggregatorConfig extends SinkRoleConfig {
  /** How long event ids are remembered for deduplication, ms. */
  dedupWindowMs: number;
  /** How often expired ids are pruned, ms (default 60,000). */
  pruneIntervalMs?: number;
}

export interface AggregatorDeps extends SinkRoleDeps {
  sql: SqlDatabase;
}

const UPSERT_SUMMARY = `
INSERT INTO event_summary (target, hour, type, count, sum_value, last_update)
SELECT target, to_timestamp(hour_ms / 1000.0), type, count, sum_value, now()
  FROM unnest($1::text[], $2::float8[], $3::text[], $4::int8[], $5::float8[])
       AS d(target, hour_ms, type, count, sum_value)
ON CONFLICT (target, hour, type) DO UPDATE
   SET count = event_summary.count + EXCLUDED.count,
       sum_value = event_summary.sum_value + EXCLUDED.sum_value,
       last_update = now()`;

/** Folds one batch into the summaries, exactly once; returns how many events were new. */
export async function aggregateBatch(sql: SqlDatabase, groupId: string, batch: EventBatch): Promise<number> {
  return sql.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, 0)
       ON CONFLICT DO NOTHING`,
      [groupId, batch.topic, batch.partition],
    );
    const [stored] = await tx.query<{ next_offset: string }>(
      `SELECT next_offset::text AS next_offset FROM consumer_offset
        WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE`,
      [groupId, batch.topic, batch.partition],
    );
    const nextOffset = BigInt(stored?.next_offset ?? '0');
    if (batch.lastOffset < nextOffset) return 0; // wholly applied before

    const fresh = new Map<string, EventBatch['events'][number]>();
    for (const e of batch.events)
      if (e.offset >= nextOffset && !fresh.has(e.event.id)) fresh.set(e.event.id, e);
    let applied = 0;
    if (fresh.size > 0) {
      const newIds = await tx.query<{ id: string }>(
        'INSERT INTO summary_event_seen (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING id',
        [[...fresh.keys()]],
      );
      const deltas = summarize(
        newIds.map(({ id }) => {
          const { event } = fresh.get(id)!;
          return {
            target: event.target,
            type: event.type,
            eventTimeMs: eventTimeMs(event),
            value: event.value,
          };
        }),
      );
      // One lock order for every writer: concurrent batches cannot deadlock on summary rows.
      deltas.sort((a, b) =>
        a.target < b.target
          ? -1
          : a.target > b.target
            ? 1
            : a.hourStartMs - b.hourStartMs || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
      );
      if (deltas.length > 0) {
        await tx.query(UPSERT_SUMMARY, [
          deltas.map((d) => d.target),
          deltas.map((d) => d.hourStartMs),
          deltas.map((d) => d.type),
          deltas.map((d) => d.count),
          deltas.map((d) => d.sum),
        ]);
      }
      applied = newIds.length;
    }
    await tx.query(
      `UPDATE consumer_offset SET next_offset = $4, updated_at = now()
        WHERE group_id = $1 AND topic = $2 AND partition = $3`,
      [groupId, batch.topic, batch.partition, (batch.lastOffset + 1n).toString()],
    );
    return applied;
  });
}

export async function start(deps: AggregatorDeps, config: AggregatorConfig): Promise<Stoppable> {
  const logger = deps.logger.child({ role: 'aggregator' });
  const consumer = await startSinkRole(deps, config, {
    name: 'aggregator',
    spanName: 'aggregator upsert',
    apply: async (batch) => {
      await aggregateBatch(deps.sql, config.groupId, batch);
    },
  });

  const prune = async () => {
    try {
      const rows = await deps.sql.query<{ n: number }>(
        `WITH gone AS (
           DELETE FROM summary_event_seen WHERE id IN (
             SELECT id FROM summary_event_seen WHERE seen_at < now() - $1 * interval '1 millisecond' LIMIT 50000)
           RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
        [config.dedupWindowMs],
      );
      if ((rows[0]?.n ?? 0) > 0) logger.info('pruned expired event ids', { count: rows[0]?.n });
    } catch (error) {
      logger.warn('pruning expired event ids failed; will retry', { error });
    }
  };
  const timer = setInterval(prune, config.pruneIntervalMs ?? 60_000);
  timer.unref();

  return {
    name: 'aggregator',
    async stop() {
      clearInterval(timer);
      await consumer.stop();
    },
  };
}
