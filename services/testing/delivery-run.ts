/**
 * Test support for the senders: records of a destination topic written as the router would
 * (encodeDeliveryRecord), with bodies the receiver orders by (`user_id`, `seq`), and the
 * destination they are for.
 */
import type { DestinationInput } from '../domain/destinations.ts';
import type { LogProducer } from '../infra/log/event-log.ts';
import { type DeliveryRecord, encodeDeliveryRecord, messageIdOf } from '../pipeline/delivery-record.ts';

export interface PlannedRecord {
  record: DeliveryRecord;
  user: string;
  seq: number;
}

/**
 * `users` users with `perUser` records each, interleaved as a stream would be: record i of user u
 * has `seq` i + 1. Source positions: user u's records come from source partition u mod
 * `sourcePartitions`, offsets growing in stream order.
 */
export function plannedRecords(
  destinationId: string,
  users: number,
  perUser: number,
  sourcePartitions = 4,
): PlannedRecord[] {
  const out: PlannedRecord[] = [];
  const nextOffset = new Array<bigint>(sourcePartitions).fill(0n);
  for (let i = 0; i < perUser; i++)
    for (let u = 0; u < users; u++) {
      const user = `user-${u}`;
      const seq = i + 1;
      const eventId = `ev-${u}-${seq}`;
      const sourcePartition = u % sourcePartitions;
      const sourceOffset = nextOffset[sourcePartition]!;
      nextOffset[sourcePartition] = sourceOffset + 1n;
      out.push({
        user,
        seq,
        record: {
          messageId: messageIdOf(destinationId, eventId),
          eventId,
          eventType: 'purchase',
          userId: user,
          occurredAtMs: Date.UTC(2026, 0, 1) + i * 1000,
          sourcePartition,
          sourceOffset,
          body: new TextEncoder().encode(JSON.stringify({ user_id: user, seq, event_id: eventId })),
        },
      });
    }
  return out;
}

/** Writes `records` to `topic` in writes of `chunk` records, as a router would. */
export async function writeRecords(
  producer: LogProducer,
  topic: string,
  records: readonly PlannedRecord[],
  chunk = 200,
): Promise<void> {
  for (let i = 0; i < records.length; i += chunk)
    await producer.send(
      topic,
      records.slice(i, i + chunk).map((r) => encodeDeliveryRecord(r.record)),
    );
}

/** A webhook destination to a receiver on 127.0.0.1 (plain HTTP, allowed by the test's allow-list). */
export function webhookTo(
  url: string,
  overrides: Partial<DestinationInput> & { timeoutMs?: number; headers?: Record<string, string> } = {},
): DestinationInput {
  const { timeoutMs, headers, ...rest } = overrides;
  return {
    name: 'test receiver',
    endpoint: {
      kind: 'webhook',
      url,
      allowPlainHttp: true,
      ...(timeoutMs ? { timeoutMs } : {}),
      ...(headers ? { headers } : {}),
    },
    ...rest,
  };
}
