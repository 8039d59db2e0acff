/** Generated event ids: UUIDv7 text, the time in the first 48 bits, version and variant set, no repeats. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uuidv7 } from './ids.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The milliseconds a UUIDv7's first 48 bits carry. */
const timeOf = (id: string) => Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);

test('a UUIDv7: version 7, RFC 9562 variant, the given time in its first 48 bits', () => {
  for (const ms of [0, 1, 0xffff_ffff, 0x1_0000_0000, Date.UTC(2026, 11, 6, 16, 40), 2 ** 48 - 1]) {
    const id = uuidv7(ms);
    assert.match(id, UUID_V7, id);
    assert.equal(timeOf(id), ms, id);
  }
});

test('ids never repeat, across refills of the random pool, and sort by time', () => {
  const seen = new Set<string>();
  const now = Date.now();
  for (let i = 0; i < 100_000; i++) seen.add(uuidv7(now));
  assert.equal(seen.size, 100_000);
  const earlier = uuidv7(now - 1);
  const later = uuidv7(now + 1);
  assert.ok(earlier < later);
  // The random bits differ between ids of one millisecond: not a counter.
  const [a, b] = [uuidv7(now), uuidv7(now)].map((id) => id.replaceAll('-', '').slice(12));
  assert.notEqual(a, b);
});
