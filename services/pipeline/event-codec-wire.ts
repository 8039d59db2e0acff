/**
 * The Event's binary protobuf encoding written and read by hand: every event goes through ingest
 * once and through each sink once, and the generic, reflection-driven codec of protobuf-es costs
 * several times more CPU per event than this straight-line code. The output is byte for byte what
 * `toBinary(EventSchema, …)` writes, and the reading gives what `fromBinary` gives; whatever this
 * code does not handle (fields unknown to this version, negative or huge timestamps, a field sent
 * twice, a string that may not be UTF-8, malformed bytes) is left to protobuf-es by returning
 * undefined; call it only through event-codec.ts. event-codec-wire.test.ts holds
 * it to both on random events and random bytes, and fails when the Event message gains a field.
 *
 * Event (proto/tally/v1/event.proto): 1 id, 2 type, 3 target, 4 user_id, 5 ip (strings);
 * 6 value (optional double); 7 occurred_at, 8 received_at (google.protobuf.Timestamp: 1 seconds
 * int64, 2 nanos int32); 9 attributes (map<string, string>: entries of 1 key, 2 value).
 */
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import type { Event } from '../gen/tally/v1/event_pb.js';

/** The field numbers this code knows: the wire test fails when the message has others. */
export const WIRE_FIELDS = [
  'id',
  'type',
  'target',
  'userId',
  'ip',
  'value',
  'occurredAt',
  'receivedAt',
  'attributes',
] as const;

const STRING_FIELDS = ['id', 'type', 'target', 'userId', 'ip'] as const;
/** Tags (field << 3 | wire type) of fields 1–9 as written. */
const STRING_TAGS = [0x0a, 0x12, 0x1a, 0x22, 0x2a] as const;
const TAG_VALUE = 0x31;
const TAG_OCCURRED_AT = 0x3a;
const TAG_RECEIVED_AT = 0x42;
const TAG_ATTRIBUTE = 0x4a;
const MAX_SAFE_SECONDS = BigInt(Number.MAX_SAFE_INTEGER);

/** UTF-8 length of `text`, counted here for short text (no call into the runtime). */
function byteLength(text: string): number {
  if (text.length > 64) return Buffer.byteLength(text);
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return Buffer.byteLength(text);
  return text.length;
}

/** Writes `text` (`length` bytes of UTF-8) at `at`; returns the position after it. */
function writeText(out: Buffer, at: number, text: string, length: number): number {
  if (length === text.length) {
    for (let i = 0; i < length; i++) out[at + i] = text.charCodeAt(i);
    return at + length;
  }
  return at + out.write(text, at, length, 'utf8');
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/** A Timestamp's body size; -1 when this code leaves it to protobuf-es (negative or huge). */
function timestampSize(ts: Timestamp): number {
  if (
    ts.seconds < 0n ||
    ts.seconds > MAX_SAFE_SECONDS ||
    ts.nanos < 0 ||
    (ts as { $unknown?: unknown }).$unknown
  )
    return -1;
  const seconds = Number(ts.seconds);
  return (seconds === 0 ? 0 : 1 + varintSize(seconds)) + (ts.nanos === 0 ? 0 : 1 + varintSize(ts.nanos));
}

function writeTimestamp(out: Buffer, at: number, tag: number, ts: Timestamp, size: number): number {
  out[at++] = tag;
  at = writeVarint(out, at, size);
  const seconds = Number(ts.seconds);
  if (seconds !== 0) {
    out[at++] = 0x08;
    at = writeVarint(out, at, seconds);
  }
  if (ts.nanos !== 0) {
    out[at++] = 0x10;
    at = writeVarint(out, at, ts.nanos);
  }
  return at;
}

/** The event's bytes, as protobuf-es would write them; undefined when it is left to protobuf-es. */
export function writeEvent(event: Event): Buffer | undefined {
  if ((event as { $unknown?: unknown }).$unknown) return undefined;
  let size = 0;
  const lengths: number[] = [];
  for (const field of STRING_FIELDS) {
    const text = event[field];
    if (text === '') continue;
    const length = byteLength(text);
    lengths.push(length);
    size += 1 + varintSize(length) + length;
  }
  if (event.value !== undefined) size += 9;
  const occurredSize = event.occurredAt ? timestampSize(event.occurredAt) : 0;
  const receivedSize = event.receivedAt ? timestampSize(event.receivedAt) : 0;
  if (occurredSize < 0 || receivedSize < 0) return undefined;
  if (event.occurredAt) size += 1 + varintSize(occurredSize) + occurredSize;
  if (event.receivedAt) size += 1 + varintSize(receivedSize) + receivedSize;
  const entries: [string, string, number, number][] = [];
  for (const key of Object.keys(event.attributes)) {
    const value = event.attributes[key]!;
    const keyLength = byteLength(key);
    const valueLength = byteLength(value);
    entries.push([key, value, keyLength, valueLength]);
    const entrySize = 2 + varintSize(keyLength) + keyLength + varintSize(valueLength) + valueLength;
    size += 1 + varintSize(entrySize) + entrySize;
  }

  const out = Buffer.allocUnsafe(size);
  let at = 0;
  let next = 0;
  for (let i = 0; i < STRING_FIELDS.length; i++) {
    const text = event[STRING_FIELDS[i]!];
    if (text === '') continue;
    const length = lengths[next++]!;
    out[at++] = STRING_TAGS[i]!;
    at = writeVarint(out, at, length);
    at = writeText(out, at, text, length);
  }
  if (event.value !== undefined) {
    out[at++] = TAG_VALUE;
    at = out.writeDoubleLE(event.value, at);
  }
  if (event.occurredAt) at = writeTimestamp(out, at, TAG_OCCURRED_AT, event.occurredAt, occurredSize);
  if (event.receivedAt) at = writeTimestamp(out, at, TAG_RECEIVED_AT, event.receivedAt, receivedSize);
  for (const [key, value, keyLength, valueLength] of entries) {
    out[at++] = TAG_ATTRIBUTE;
    at = writeVarint(out, at, 2 + varintSize(keyLength) + keyLength + varintSize(valueLength) + valueLength);
    out[at++] = 0x0a;
    at = writeVarint(out, at, keyLength);
    at = writeText(out, at, key, keyLength);
    out[at++] = 0x12;
    at = writeVarint(out, at, valueLength);
    at = writeText(out, at, value, valueLength);
  }
  return at === size ? out : undefined;
}

/** Reads an Event, as `fromBinary` would; undefined when it is left to protobuf-es. */
export function readEvent(bytes: Uint8Array): Event | undefined {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const event: Event = {
    $typeName: 'tally.v1.Event',
    id: '',
    type: '',
    target: '',
    userId: '',
    ip: '',
    attributes: {},
  };
  const reader = new Reader(buf, 0, buf.length);
  while (reader.more()) {
    const tag = reader.varint();
    if (tag < 0) return undefined;
    if (tag === TAG_VALUE) {
      if (reader.at + 8 > reader.end) return undefined;
      event.value = buf.readDoubleLE(reader.at);
      reader.at += 8;
      continue;
    }
    const length = (tag & 7) === 2 ? reader.varint() : -1;
    if (length < 0 || reader.at + length > reader.end) return undefined;
    const start = reader.at;
    const end = start + length;
    reader.at = end;
    switch (tag) {
      case 0x0a:
      case 0x12:
      case 0x1a:
      case 0x22:
      case 0x2a: {
        const text = utf8(buf, start, end);
        if (text === undefined) return undefined;
        event[STRING_FIELDS[(tag >> 3) - 1]!] = text;
        break;
      }
      case TAG_OCCURRED_AT: {
        // A second occurrence merges into the first in protobuf: left to protobuf-es.
        if (event.occurredAt) return undefined;
        const ts = readTimestamp(buf, start, end);
        if (!ts) return undefined;
        event.occurredAt = ts;
        break;
      }
      case TAG_RECEIVED_AT: {
        if (event.receivedAt) return undefined;
        const ts = readTimestamp(buf, start, end);
        if (!ts) return undefined;
        event.receivedAt = ts;
        break;
      }
      case TAG_ATTRIBUTE: {
        const entry = new Reader(buf, start, end);
        let key = '';
        let value = '';
        while (entry.more()) {
          const entryTag = entry.varint();
          const entryLength = entryTag === 0x0a || entryTag === 0x12 ? entry.varint() : -1;
          if (entryLength < 0 || entry.at + entryLength > end) return undefined;
          const text = utf8(buf, entry.at, entry.at + entryLength);
          if (text === undefined) return undefined;
          entry.at += entryLength;
          if (entryTag === 0x0a) key = text;
          else value = text;
        }
        if (key === '__proto__') return undefined; // an own property, which protobuf-es sets
        event.attributes[key] = value;
        break;
      }
      default:
        return undefined; // a field this version does not know, or an unexpected wire type
    }
  }
  return event;
}

/**
 * The text of a string field; undefined when it may not be valid UTF-8, which protobuf-es refuses
 * (decoding replaces bad bytes with U+FFFD, which valid text may also hold: protobuf-es decides).
 */
function utf8(buf: Buffer, start: number, end: number): string | undefined {
  const text = buf.toString('utf8', start, end);
  return text.includes('\uFFFD') ? undefined : text;
}

function readTimestamp(buf: Buffer, start: number, end: number): Timestamp | undefined {
  const reader = new Reader(buf, start, end);
  let seconds = 0;
  let nanos = 0;
  while (reader.more()) {
    const tag = reader.varint();
    const value = tag === 0x08 || tag === 0x10 ? reader.varint() : -1;
    if (value < 0) return undefined;
    if (tag === 0x08) seconds = value;
    else if (value > 0x7fffffff) return undefined;
    else nanos = value;
  }
  return { $typeName: 'google.protobuf.Timestamp', seconds: BigInt(seconds), nanos };
}

/** A cursor over `buf` from `at` to `end`. */
class Reader {
  readonly buf: Buffer;
  at: number;
  readonly end: number;

  constructor(buf: Buffer, at: number, end: number) {
    this.buf = buf;
    this.at = at;
    this.end = end;
  }

  more(): boolean {
    return this.at < this.end;
  }

  /** An unsigned varint up to 2^53 − 1; -1 when it is longer, larger or cut off. */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.at >= this.end) return -1;
      const byte = this.buf[this.at++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result <= Number.MAX_SAFE_INTEGER ? result : -1;
      scale *= 128;
    }
    return -1;
  }
}
