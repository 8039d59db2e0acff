/**
 * The aggregator role (group `group_aggregation`): hourly summaries
 * (target, hour, type, count, sum) by event time, exactly once.
 *
 * It reads the accepted topic, where the persister forwards each event id once, and keeps its
 * place by each event's offset in the events topic. One PostgreSQL transaction per write (the
 * batches of every partition in hand, gathered): lock each partition's stored next offset, skip
 * events below it (applied before: a redelivered batch or a repeated forward), upsert the
 * summaries, store the offset after each partition's last event as its next one. The bookkeeping is one row per partition, whatever the traffic. The Kafka commit
 * that follows only tells lag monitors how far the group is.
 */
import { summarize } from '../domain/report.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { eventTimeMs } from '../pipeline/event-codec.ts';
import type { EventBatch, LoggedEvent } from '../pipeline/event-consumer.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';

export interface AggregatorConfig extends SinkRoleConfig {
  /**
   * The topic whose offsets the events carry (the events topic): the name of the partitions'
   * rows in `consumer_offset`.
   */
  positionTopic: string;
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

/**
 * Folds batches (of any partitions, each in offset order) into the summaries in one transaction,
 * exactly once; returns how many events were new. `positionTopic` names the topic of the events'
 * positions (their offsets in the events topic).
 */
export async function aggregateBatches(
  sql: SqlDatabase,
  groupId: string,
  positionTopic: string,
  batches: readonly EventBatch[],
): Promise<number> {
  const partitions = [...new Set(batches.map((b) => b.partition))].sort((a, b) => a - b);
  if (partitions.length === 0) return 0;
  return sql.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO consumer_offset (group_id, topic, partition, next_offset)
       SELECT $1, $2, p, 0 FROM unnest($3::int[]) AS p
       ON CONFLICT DO NOTHING`,
      [groupId, positionTopic, partitions],
    );
    // Locked in partition order, as every writer does: concurrent writers cannot deadlock here.
    const stored = await tx.query<{ partition: number; next_offset: string }>(
      `SELECT partition, next_offset::text AS next_offset FROM consumer_offset
        WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])
        ORDER BY partition FOR UPDATE`,
      [groupId, positionTopic, partitions],
    );
    const next = new Map(stored.map((r) => [r.partition, BigInt(r.next_offset)]));
    // In order; a repeated forward within a batch lies below its partition's next by then.
    const fresh: LoggedEvent[] = [];
    const moved = new Set<number>();
    for (const batch of batches) {
      let from = next.get(batch.partition) ?? 0n;
      for (const e of batch.events) {
        if (e.position < from) continue;
        fresh.push(e);
        from = e.position + 1n;
        moved.add(batch.partition);
      }
      next.set(batch.partition, from);
    }
    if (fresh.length === 0) return 0;
    const deltas = summarize(
      fresh.map(({ event }) => ({
        target: event.target,
        type: event.type,
        eventTimeMs: eventTimeMs(event),
        value: event.value,
      })),
    );
    // One lock order for every writer: concurrent writes cannot deadlock on summary rows.
    deltas.sort((a, b) =>
      a.target < b.target
        ? -1
        : a.target > b.target
          ? 1
          : a.hourStartMs - b.hourStartMs || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
    );
    await tx.query(UPSERT_SUMMARY, [
      deltas.map((d) => d.target),
      deltas.map((d) => d.hourStartMs),
      deltas.map((d) => d.type),
      deltas.map((d) => d.count),
      deltas.map((d) => d.sum),
    ]);
    const movedPartitions = [...moved].sort((a, b) => a - b);
    await tx.query(
      `UPDATE consumer_offset AS c SET next_offset = u.next_offset, updated_at = now()
         FROM unnest($3::int[], $4::int8[]) AS u(partition, next_offset)
        WHERE c.group_id = $1 AND c.topic = $2 AND c.partition = u.partition`,
      [groupId, positionTopic, movedPartitions, movedPartitions.map((p) => next.get(p)!.toString())],
    );
    return fresh.length;
  });
}

export function start(deps: AggregatorDeps, config: AggregatorConfig): Promise<Stoppable> {
  return startSinkRole(deps, config, {
    name: 'aggregator',
    spanName: 'aggregator upsert',
    apply: async (batches) => {
      await aggregateBatches(deps.sql, config.groupId, config.positionTopic, batches);
    },
  });
}
