/**
 * The persister role (group `group_persistence`): every raw event into the
 * PostgreSQL `event` table, a batch per statement, idempotent by event id.
 */

import type { Stoppable } from '../infra/lifecycle.ts';
import type { SqlExecutor } from '../infra/sql/sql-database.ts';
import { eventTimeMs, timestampToMs } from '../pipeline/event-codec.ts';
import type { EventBatch } from '../pipeline/event-consumer.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';

export type PersisterConfig = SinkRoleConfig;

export interface PersisterDeps extends SinkRoleDeps {
  sql: SqlExecutor;
}

const INSERT_EVENTS = `
INSERT INTO event (id, type, target, user_id, ip, value, occurred_at, received_at, attributes, log_partition, log_offset)
SELECT id, type, target, user_id, ip, value, to_timestamp(occurred_ms / 1000.0), to_timestamp(received_ms / 1000.0),
       attributes::jsonb, $10, log_offset
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[], $8::float8[],
              $9::text[], $11::int8[])
       AS e(id, type, target, user_id, ip, value, occurred_ms, received_ms, attributes, log_offset)
ON CONFLICT (id) DO NOTHING`;

/** Writes a batch's events; returns once PostgreSQL committed them. */
export async function persistBatch(sql: SqlExecutor, batch: EventBatch): Promise<void> {
  if (batch.events.length === 0) return;
  const cols = {
    id: [] as string[],
    type: [] as string[],
    target: [] as string[],
    userId: [] as string[],
    ip: [] as string[],
    value: [] as (number | null)[],
    occurred: [] as number[],
    received: [] as number[],
    attributes: [] as string[],
    offset: [] as string[],
  };
  for (const { event, offset } of batch.events) {
    cols.id.push(event.id);
    cols.type.push(event.type);
    cols.target.push(event.target);
    cols.userId.push(event.userId);
    cols.ip.push(event.ip);
    cols.value.push(event.value ?? null);
    cols.occurred.push(eventTimeMs(event));
    cols.received.push(timestampToMs(event.receivedAt!));
    cols.attributes.push(JSON.stringify(event.attributes));
    cols.offset.push(offset.toString());
  }
  await sql.query(INSERT_EVENTS, [
    cols.id,
    cols.type,
    cols.target,
    cols.userId,
    cols.ip,
    cols.value,
    cols.occurred,
    cols.received,
    cols.attributes,
    batch.partition,
    cols.offset,
  ]);
}

export function start(deps: PersisterDeps, config: PersisterConfig): Promise<Stoppable> {
  return startSinkRole(deps, config, {
    name: 'persister',
    spanName: 'persister insert',
    apply: (batch) => persistBatch(deps.sql, batch),
  });
}
