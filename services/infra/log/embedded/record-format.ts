/**
 * How the embedded log stores a record: a frame `u32 bodyLength | u32 crc32(body) | body`,
 * big-endian, where body is
 * `u8 version=1 | u64 offset | f64 timestampMs | i32 keyLength (-1: null) | key |
 *  u32 headerCount | (u32 nameLength | name | u32 valueLength | value)* | u32 valueLength | value`
 * (strings UTF-8). The offset inside each frame lets recovery check that offsets are dense.
 */
import { crc32 } from 'node:zlib';
import type { ConsumedRecord, LogRecord } from '../event-log.ts';

export const FRAME_HEADER_BYTES = 8;
const VERSION = 1;
const MIN_BODY_BYTES = 1 + 8 + 8 + 4 + 4 + 4;

/** A record ready to be written: its encoded parts, measured once. */
export interface EncodedRecord {
  key: Buffer | null;
  headers: [Buffer, Buffer][];
  value: Uint8Array;
  /** Frame size in bytes, header included. */
  frameBytes: number;
}

/** Encodes a record's strings and measures its frame (without offset and timestamp, filled at write time). */
export function prepareRecord(record: LogRecord): EncodedRecord {
  const key = record.key === null ? null : Buffer.from(record.key, 'utf8');
  const headers: [Buffer, Buffer][] = Object.entries(record.headers ?? {}).map(([name, value]) => [
    Buffer.from(name, 'utf8'),
    Buffer.from(value, 'utf8'),
  ]);
  let body = MIN_BODY_BYTES + (key?.length ?? 0) + record.value.byteLength;
  for (const [name, value] of headers) body += 8 + name.length + value.length;
  return { key, headers, value: record.value, frameBytes: FRAME_HEADER_BYTES + body };
}

/** Writes `record`'s frame at `position` of `target`; returns the position after it. */
export function writeFrame(
  target: Buffer,
  position: number,
  record: EncodedRecord,
  offset: bigint,
  timestampMs: number,
): number {
  const bodyStart = position + FRAME_HEADER_BYTES;
  let at = bodyStart;
  at = target.writeUInt8(VERSION, at);
  at = target.writeBigUInt64BE(offset, at);
  at = target.writeDoubleBE(timestampMs, at);
  if (record.key === null) at = target.writeInt32BE(-1, at);
  else {
    at = target.writeInt32BE(record.key.length, at);
    at += record.key.copy(target, at);
  }
  at = target.writeUInt32BE(record.headers.length, at);
  for (const [name, value] of record.headers) {
    at = target.writeUInt32BE(name.length, at);
    at += name.copy(target, at);
    at = target.writeUInt32BE(value.length, at);
    at += value.copy(target, at);
  }
  at = target.writeUInt32BE(record.value.byteLength, at);
  target.set(record.value, at);
  at += record.value.byteLength;
  target.writeUInt32BE(at - bodyStart, position);
  target.writeUInt32BE(crc32(target.subarray(bodyStart, at)), position + 4);
  return at;
}

/** What a frame at some position holds, or why it is not a valid frame. */
export type FrameRead =
  | { kind: 'record'; frameBytes: number; offset: bigint; timestampMs: number }
  | { kind: 'incomplete'; needBytes: number }
  | { kind: 'invalid'; reason: string };

/**
 * Checks the frame at `position` of `chunk` (length, CRC, version) without
 * decoding it. `maxFrameBytes` bounds a sane length: a larger one is garbage.
 */
export function checkFrame(chunk: Buffer, position: number, maxFrameBytes: number): FrameRead {
  if (chunk.length - position < FRAME_HEADER_BYTES)
    return { kind: 'incomplete', needBytes: FRAME_HEADER_BYTES };
  const bodyLength = chunk.readUInt32BE(position);
  if (bodyLength < MIN_BODY_BYTES || bodyLength + FRAME_HEADER_BYTES > maxFrameBytes)
    return { kind: 'invalid', reason: `implausible record length ${bodyLength}` };
  const frameBytes = FRAME_HEADER_BYTES + bodyLength;
  if (chunk.length - position < frameBytes) return { kind: 'incomplete', needBytes: frameBytes };
  const body = chunk.subarray(position + FRAME_HEADER_BYTES, position + frameBytes);
  if (crc32(body) !== chunk.readUInt32BE(position + 4)) return { kind: 'invalid', reason: 'CRC mismatch' };
  if (body.readUInt8(0) !== VERSION) return { kind: 'invalid', reason: `unknown record version ${body[0]}` };
  return { kind: 'record', frameBytes, offset: body.readBigUInt64BE(1), timestampMs: body.readDoubleBE(9) };
}

/**
 * Decodes the (already checked) frame at `position`. Key, value and header
 * strings are copied out of `chunk`; the value is a view of a fresh buffer.
 */
export function decodeFrame(chunk: Buffer, position: number): ConsumedRecord {
  let at = position + FRAME_HEADER_BYTES + 1;
  const offset = chunk.readBigUInt64BE(at);
  at += 8;
  const timestampMs = chunk.readDoubleBE(at);
  at += 8;
  const keyLength = chunk.readInt32BE(at);
  at += 4;
  let key: string | null = null;
  if (keyLength >= 0) {
    key = chunk.toString('utf8', at, at + keyLength);
    at += keyLength;
  }
  const headerCount = chunk.readUInt32BE(at);
  at += 4;
  const headers: Record<string, string> = {};
  for (let i = 0; i < headerCount; i++) {
    const nameLength = chunk.readUInt32BE(at);
    at += 4;
    const name = chunk.toString('utf8', at, at + nameLength);
    at += nameLength;
    const valueLength = chunk.readUInt32BE(at);
    at += 4;
    headers[name] = chunk.toString('utf8', at, at + valueLength);
    at += valueLength;
  }
  const valueLength = chunk.readUInt32BE(at);
  at += 4;
  const value = new Uint8Array(valueLength);
  value.set(chunk.subarray(at, at + valueLength));
  return { key, value, headers, offset, timestampMs };
}
