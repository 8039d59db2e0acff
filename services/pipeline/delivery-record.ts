/**
 * A record of a destination's topic (`<prefix>deliveries.<destination id>`): one event, filtered
 * and transformed for that destination by the router, waiting for the senders (docs/delivery.md).
 *
 * - key: the event's user id (so one user's records stay in one partition, in order); an event
 *   without a user is keyed by its id (no order to keep);
 * - value: the body to deliver, already transformed (UTF-8 JSON);
 * - headers: what the sender needs without decoding the body — the message id (the
 *   `webhook-id`, stable across retries and replays), the event's id, type, user and time, and
 *   its source position — its partition and offset in the events topic (the `tally-event-offset`
 *   of the accepted record the router read), by which a sender recognises a record the router wrote
 *   twice (a redelivered batch, a forward the persister repeated) and delivers it once.
 */
import { createHash } from 'node:crypto';
import type { ConsumedRecord, LogRecord } from '../infra/log/event-log.ts';

export const DELIVERY_HEADERS = Object.freeze({
  messageId: 'tally-message-id',
  eventId: 'tally-event-id',
  eventType: 'tally-event-type',
  userId: 'tally-user-id',
  occurredAtMs: 'tally-occurred-at-ms',
  sourcePartition: 'tally-source-partition',
  sourceOffset: 'tally-source-offset',
});

export interface DeliveryRecord {
  /** The `webhook-id`: {@link messageIdOf} the destination and the event. */
  messageId: string;
  eventId: string;
  eventType: string;
  /** '' when the event names no user. */
  userId: string;
  occurredAtMs: number;
  /** The event's position: its partition and offset in the events topic (the same partition number in the accepted topic). */
  sourcePartition: number;
  sourceOffset: bigint;
  /** The body to deliver (UTF-8 JSON). */
  body: Uint8Array;
}

/**
 * The message id of an event for a destination: `msg_` and 27 base64url characters of a SHA-256
 * of both ids — the same for every retry, replay and router redelivery, different per destination.
 */
export function messageIdOf(destinationId: string, eventId: string): string {
  return `msg_${createHash('sha256').update(destinationId).update('\u0000').update(eventId).digest('base64url').slice(0, 27)}`;
}

/** The log record of a delivery. */
export function encodeDeliveryRecord(record: DeliveryRecord): LogRecord {
  return {
    key: record.userId !== '' ? record.userId : record.eventId,
    value: record.body,
    headers: {
      [DELIVERY_HEADERS.messageId]: record.messageId,
      [DELIVERY_HEADERS.eventId]: record.eventId,
      [DELIVERY_HEADERS.eventType]: record.eventType,
      [DELIVERY_HEADERS.userId]: record.userId,
      [DELIVERY_HEADERS.occurredAtMs]: String(record.occurredAtMs),
      [DELIVERY_HEADERS.sourcePartition]: String(record.sourcePartition),
      [DELIVERY_HEADERS.sourceOffset]: record.sourceOffset.toString(),
    },
  };
}

/** A delivery read back, or why it is not one (a record no router wrote). */
export function decodeDeliveryRecord(record: ConsumedRecord): DeliveryRecord | string {
  const h = record.headers;
  const missing = Object.values(DELIVERY_HEADERS).find((name) => h[name] === undefined);
  if (missing !== undefined) return `header ${missing} is missing`;
  const sourcePartition = Number(h[DELIVERY_HEADERS.sourcePartition]);
  const occurredAtMs = Number(h[DELIVERY_HEADERS.occurredAtMs]);
  if (!Number.isInteger(sourcePartition) || sourcePartition < 0)
    return 'header tally-source-partition is not a partition';
  if (!Number.isFinite(occurredAtMs)) return 'header tally-occurred-at-ms is not a time';
  let sourceOffset: bigint;
  try {
    sourceOffset = BigInt(h[DELIVERY_HEADERS.sourceOffset]!);
  } catch {
    return 'header tally-source-offset is not an offset';
  }
  return {
    messageId: h[DELIVERY_HEADERS.messageId]!,
    eventId: h[DELIVERY_HEADERS.eventId]!,
    eventType: h[DELIVERY_HEADERS.eventType]!,
    userId: h[DELIVERY_HEADERS.userId]!,
    occurredAtMs,
    sourcePartition,
    sourceOffset,
    body: record.value,
  };
}
