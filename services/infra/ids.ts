/**
 * Event ids generated for events that arrive without one: UUIDv7 (RFC 9562),
 * time-ordered so that ids sort roughly by arrival.
 *
 * Ingest makes one for most events it accepts, so this is on the hot path: the random bits come
 * from a pool refilled 256 ids at a time (one call into the CSPRNG instead of one per id), and the
 * text is built from a byte → hex table.
 */
import { randomFillSync } from 'node:crypto';

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Random bytes for 256 ids (10 each: 74 random bits and the 6 version and variant bits set over them). */
const POOL_IDS = 256;
const pool = Buffer.alloc(POOL_IDS * 10);
let next = POOL_IDS;

/** A new UUIDv7 string. */
export function uuidv7(nowMs: number = Date.now()): string {
  if (next === POOL_IDS) {
    randomFillSync(pool);
    next = 0;
  }
  const r = next++ * 10;
  // 48 bits of milliseconds, big-endian: the high 16 and the low 32 apart (no BigInt).
  const high = Math.floor(nowMs / 0x1_0000_0000);
  const low = nowMs >>> 0;
  return (
    HEX[(high >>> 8) & 0xff]! +
    HEX[high & 0xff]! +
    HEX[low >>> 24]! +
    HEX[(low >>> 16) & 0xff]! +
    '-' +
    HEX[(low >>> 8) & 0xff]! +
    HEX[low & 0xff]! +
    '-' +
    HEX[(pool[r]! & 0x0f) | 0x70]! +
    HEX[pool[r + 1]!]! +
    '-' +
    HEX[(pool[r + 2]! & 0x3f) | 0x80]! +
    HEX[pool[r + 3]!]! +
    '-' +
    HEX[pool[r + 4]!]! +
    HEX[pool[r + 5]!]! +
    HEX[pool[r + 6]!]! +
    HEX[pool[r + 7]!]! +
    HEX[pool[r + 8]!]! +
    HEX[pool[r + 9]!]!
  );
}
