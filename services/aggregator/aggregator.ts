/**
 * The aggregator role (group `group_aggregation`): hourly summaries
 * (target, hour, type, count, sum) by event time, exactly once.
 *
 * It reads the accepted topic, where the persister forwards each event id once, and keeps its
 * place by each event's offset in the events topic. One PostgreSQL transaction per batch: lock
 * the partition's stored next offset, skip events below it (applied before: a redelivered batch
 * or a repeated forward), upsert the summaries, store the offset after the batch's last event as
 * the next one. The bookkeeping is one row per partition, whatever the traffic. The Kafka commit
 * that follows only tells lag monitors how far the group is.
 */
import { summarize } from '../domain/report.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { SqlDatabase } from '../infra/sql/sql-database.ts';
import { eventTimeMs } from '../pipeline/event-codec.ts';
import type { EventBatch } from '../pipeline/event-consumer.ts';
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
 * Folds one batch into the summaries, exactly once; returns how many events were new.
 * `positionTopic` names the topic of the events' positions (their offsets in the events topic).
 */
export async function aggregateBatch(
  sql: SqlDatabase,
  groupId: string,
  positionTopic: string,
  batch: EventBatch,
): Promise<number> {
  return sql.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, 0)
       ON CONFLICT DO NOTHING`,
      [groupId, positionTopic, batch.partition],
    );
    const [stored] = await tx.query<{ next_offset: string }>(
      `SELECT next_offset::text AS next_offset FROM consumer_offset
        WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE`,
      [groupId, positionTopic, batch.partition],
    );
    let next = BigInt(stored?.next_offset ?? '0');
    // In order; a repeated forward within the batch lies below `next` by then and is skipped.
    const fresh: EventBatch['events'] = [];
    for (const e of batch.events) {
      if (e.position < next) continue;
      fresh.push(e);
      next = e.position + 1n;
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
    // One lock order for every writer: concurrent batches cannot deadlock on summary rows.
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
    await tx.query(
      `UPDATE consumer_offset SET next_offset = $4, updated_at = now()
        WHERE group_id = $1 AND topic = $2 AND partition = $3`,
      [groupId, positionTopic, batch.partition, next.toString()],
    );
    return fresh.length;
  });
}

export function start(deps: AggregatorDeps, config: AggregatorConfig): Promise<Stoppable> {
  return startSinkRole(deps, config, {
    name: 'aggregator',
    spanName: 'aggregator upsert',
    apply: async (batch) => {
      await aggregateBatch(deps.sql, config.groupId, config.positionTopic, batch);
    },
  });
}
