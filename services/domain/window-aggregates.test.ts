import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { Principal } from './api-keys.ts';
import {
  AGGREGATE_HORIZON_MS,
  MAX_AT_FUTURE_MS,
  MINUTE_MS,
  parseWindowsQuery,
  userAggregatesDenial,
  windowPieces,
} from './window-aggregates.ts';

const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

describe('windowPieces', () => {
  test('the pieces cover every millisecond of [start, end) exactly once, with at most two raw ranges of under a minute', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }),
        fc.integer({ min: 0, max: 7 * DAY_MS }),
        fc.array(fc.integer({ min: -DAY_MS, max: 8 * DAY_MS }), { maxLength: 40 }),
        (startMs, length, probes) => {
          const endMs = startMs + length;
          const pieces = windowPieces(startMs, endMs);
          assert.ok(pieces.raw.length <= 2);
          for (const r of pieces.raw) assert.ok(r.toMs - r.fromMs <= 2 * MINUTE_MS && r.fromMs < r.toMs);
          assert.ok(pieces.minutes.length <= 2 * 59 + 1);
          // Points near every boundary as well as anywhere.
          const points = [...probes.map((p) => startMs + p), startMs - 1, startMs, endMs - 1, endMs];
          for (const p of [
            ...pieces.raw.flatMap((r) => [r.fromMs, r.toMs]),
            ...pieces.minutes.map((m) => m * MINUTE_MS),
          ])
            points.push(p - 1, p, p + 1);
          for (const p of points) {
            const covers =
              pieces.raw.filter((r) => p >= r.fromMs && p < r.toMs).length +
              pieces.minutes.filter((m) => Math.floor(p / MINUTE_MS) === m).length +
              pieces.hours.filter((h) => Math.floor(p / HOUR_MS) === h).length;
            assert.equal(covers, p >= startMs && p < endMs ? 1 : 0, `point ${p - startMs} of [0, ${length})`);
          }
        },
      ),
    );
  });

  test('a 7-day window on odd boundaries reads two raw edges, at most 118 minutes and 167 hours', () => {
    const start = Date.UTC(2026, 0, 1, 10, 30, 12, 345);
    const pieces = windowPieces(start, start + 7 * DAY_MS);
    assert.equal(pieces.raw.length, 2);
    assert.equal(pieces.minutes.length, 29 + 30);
    assert.equal(pieces.hours.length, 7 * 24 - 1);
  });
});

describe('parseWindowsQuery', () => {
  const now = Date.UTC(2026, 5, 1, 12);
  test('windows 1m to 7d, comma-separated or repeated, in the order asked; at defaults to now', () => {
    assert.deepEqual(parseWindowsQuery(['1h,6h', '24h', '7d', '1m'], undefined, now), {
      windows: [
        { name: '1h', ms: HOUR_MS },
        { name: '6h', ms: 6 * HOUR_MS },
        { name: '24h', ms: DAY_MS },
        { name: '7d', ms: 7 * DAY_MS },
        { name: '1m', ms: MINUTE_MS },
      ],
      atMs: now,
    });
  });
  test('bad input names its field', () => {
    const field = (entries: string[], at?: number) => {
      const parsed = parseWindowsQuery(entries, at, now);
      return 'field' in parsed ? parsed.field : 'ok';
    };
    assert.equal(field([]), 'windows');
    assert.equal(field(['1h,8d']), 'windows[1]');
    assert.equal(field(['1h', '0m']), 'windows[1]');
    assert.equal(field(['1h', '1w']), 'windows[1]');
    assert.equal(field(['1h', '168h', '169h']), 'windows[2]');
    assert.equal(field(['1h,']), 'windows[1]');
    assert.equal(field(Array.from({ length: 11 }, () => '1m')), 'windows');
    assert.equal(field(['1h'], now + MAX_AT_FUTURE_MS), 'ok');
    assert.equal(field(['1h'], now + MAX_AT_FUTURE_MS + 1), 'at');
    assert.equal(field(['1d'], now - AGGREGATE_HORIZON_MS + DAY_MS), 'ok');
    assert.equal(field(['1d', '2d'], now - AGGREGATE_HORIZON_MS + DAY_MS), 'at');
    assert.equal(field(['1h'], Number.NaN), 'at');
  });
});

test('an end user reads its own user only; keys, admins and targets are not limited', () => {
  const jwt = (scopes: string[], userId?: string): Principal =>
    ({ kind: 'jwt', id: 'jwt', scopes: new Set(scopes), ...(userId && { userId }) }) as Principal;
  assert.equal(userAggregatesDenial(jwt(['read'], 'alice'), 'alice'), undefined);
  assert.match(userAggregatesDenial(jwt(['read'], 'alice'), 'bob') ?? '', /alice/);
  assert.equal(userAggregatesDenial(jwt(['read', 'admin'], 'alice'), 'bob'), undefined);
  assert.equal(userAggregatesDenial(jwt(['read']), 'bob'), undefined);
  assert.equal(userAggregatesDenial({ kind: 'key', id: 'k', scopes: new Set(['read']) }, 'bob'), undefined);
  assert.equal(userAggregatesDenial(undefined, 'bob'), undefined);
});
