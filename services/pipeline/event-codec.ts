/**
 * The event on the wire and in the log: conversions between the protobuf
 * message and the shapes the rules and sinks use.
 */
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { type Timestamp, timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import type { EventInput } from '../domain/event-rules.ts';
import { type Event, EventSchema } from '../gen/tally/v1/event_pb.js';
import { readEvent, writeEvent } from './event-codec-wire.ts';

export type { Event };
export { EventSchema };

/** The message flattened for the validation rules. */
export function toEventInput(event: Event): EventInput {
  return {
    id: event.id,
    type: event.type,
    target: event.target,
    userId: event.userId,
    ip: event.ip,
    value: event.value,
    occurredAtMs: event.occurredAt ? timestampToMs(event.occurredAt) : undefined,
    attributes: event.attributes,
  };
}

/** Epoch ms of a Timestamp; NaN when its fields are out of the Timestamp range. */
export function timestampToMs(ts: Timestamp): number {
  // 0001-01-01 .. 9999-12-31 and 0 <= nanos < 1e9, as google.protobuf.Timestamp requires.
  if (
    ts.seconds < -62_135_596_800n ||
    ts.seconds > 253_402_300_799n ||
    ts.nanos < 0 ||
    ts.nanos > 999_999_999
  )
    return Number.NaN;
  return timestampMs(ts);
}

export function msToTimestamp(ms: number): Timestamp {
  return timestampFromMs(ms);
}

/** Event time: occurred_at, else received_at (epoch ms). */
export function eventTimeMs(event: Event): number {
  const at = event.occurredAt ?? event.receivedAt;
  return at ? timestampToMs(at) : Number.NaN;
}

/** The log payload: binary protobuf (event-codec-wire.ts, else protobuf-es). */
export function encodeEvent(event: Event): Uint8Array {
  return writeEvent(event) ?? toBinary(EventSchema, event);
}

/** Decodes a log payload; throws on bytes that are not an Event. */
export function decodeEvent(bytes: Uint8Array): Event {
  return readEvent(bytes) ?? fromBinary(EventSchema, bytes);
}

/** The partition key: the user, else the target (per-user order). */
export function partitionKey(event: Event): string {
  return event.userId !== '' ? event.userId : event.target;
}

export function newEvent(init: MessageInitShape<typeof EventSchema>): Event {
  return create(EventSchema, init);
}
