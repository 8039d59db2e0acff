import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HOUR_MS } from './report.ts';
import {
  dayHoldingMs,
  hourHoldingMs,
  hoursOf,
  parsePastDate,
  parsePastMonth,
  parseTimeZone,
} from './windows.ts';

const iso = (ms: number) => new Date(ms).toISOString().slice(0, 16);
const span = (s: { startMs: number; endMs: number } | { field: string }) => {
  assert.ok(!('field' in s), JSON.stringify(s));
  return [iso(s.startMs), iso(s.endMs), (s.endMs - s.startMs) / HOUR_MS];
};
const NOW = Date.UTC(2026, 11, 6, 19, 55);

test('the current day in a zone: its UTC hours; a fractional offset shifts the day later by the fraction', () => {
  assert.deepEqual(span(dayHoldingMs(NOW, 'UTC')), ['2026-12-06T00:00', '2026-12-07T00:00', 24]);
  assert.deepEqual(span(dayHoldingMs(NOW, 'Europe/Paris')), ['2026-12-05T23:00', '2026-12-06T23:00', 24]);
  assert.deepEqual(span(dayHoldingMs(NOW, 'America/New_York')), ['2026-12-06T05:00', '2026-12-07T05:00', 24]);
  // 01:25 on the 7th in Kolkata (+05:30): the day began 18:30Z, its first whole hour 19:00Z.
  assert.deepEqual(span(dayHoldingMs(NOW, 'Asia/Kolkata')), ['2026-12-06T19:00', '2026-12-07T19:00', 24]);
  // 00:10 in Kolkata: still before that first hour, so in the previous shifted day.
  assert.deepEqual(span(dayHoldingMs(Date.UTC(2026, 11, 6, 18, 40), 'Asia/Kolkata')), [
    '2026-12-05T19:00',
    '2026-12-06T19:00',
    24,
  ]);
  assert.deepEqual(span(dayHoldingMs(NOW, 'Asia/Kathmandu')), ['2026-12-06T19:00', '2026-12-07T19:00', 24]);
  assert.deepEqual(span(dayHoldingMs(NOW, 'America/St_Johns')), ['2026-12-06T04:00', '2026-12-07T04:00', 24]);
  assert.deepEqual(span(dayHoldingMs(NOW, 'Pacific/Kiritimati')), [
    '2026-12-06T10:00',
    '2026-12-07T10:00',
    24,
  ]);
  for (let i = 0; i < 500; i++) {
    const at = NOW - i * 7 * 3_600_000 - i * 61_000;
    for (const zone of ['UTC', 'Asia/Kolkata', 'America/Santiago', 'Australia/Lord_Howe']) {
      const day = dayHoldingMs(at, zone);
      assert.ok(day.startMs <= at && at < day.endMs, `${zone} ${iso(at)}`);
      assert.equal(day.startMs % HOUR_MS, 0);
      assert.ok(at - day.startMs <= 26 * HOUR_MS);
    }
  }
});

test('transition days have 23 or 25 hours, also when the transition skips midnight', () => {
  assert.deepEqual(span(parsePastDate('2026-03-29', 'Europe/Paris', NOW)), [
    '2026-03-28T23:00',
    '2026-03-29T22:00',
    23,
  ]);
  assert.deepEqual(span(parsePastDate('2026-10-25', 'Europe/Paris', NOW)), [
    '2026-10-24T22:00',
    '2026-10-25T23:00',
    25,
  ]);
  // Chile moves its clocks at midnight: the 6th of September 2026 begins at 01:00 local.
  assert.deepEqual(span(parsePastDate('2026-09-06', 'America/Santiago', NOW)), [
    '2026-09-06T04:00',
    '2026-09-07T03:00',
    23,
  ]);
  assert.deepEqual(hoursOf({ startMs: Date.UTC(2026, 0, 1), endMs: Date.UTC(2026, 0, 1, 3) }).map(iso), [
    '2026-01-01T00:00',
    '2026-01-01T01:00',
    '2026-01-01T02:00',
  ]);
  assert.deepEqual(span(hourHoldingMs(NOW)), ['2026-12-06T19:00', '2026-12-06T20:00', 1]);
});

test('dates, months and zones: refused with the field and what was wrong', () => {
  assert.deepEqual(span(parsePastMonth('2026-02', 'Asia/Tokyo', NOW)), [
    '2026-01-31T15:00',
    '2026-02-28T15:00',
    672,
  ]);
  assert.deepEqual(span(parsePastMonth('2026-12', 'UTC', NOW)), [
    '2026-12-01T00:00',
    '2027-01-01T00:00',
    744,
  ]);
  assert.deepEqual(span(parsePastDate('2026-12-06', 'UTC', NOW)), [
    '2026-12-06T00:00',
    '2026-12-07T00:00',
    24,
  ]);
  assert.deepEqual(parsePastDate('2026-12-07', 'UTC', NOW), {
    field: 'date',
    description: 'is in the future: 2026-12-07',
  });
  // Already the 7th in Kiritimati (+14).
  assert.ok(!('field' in parsePastDate('2026-12-07', 'Pacific/Kiritimati', NOW)));
  assert.deepEqual(parsePastDate('', 'UTC', NOW), { field: 'date', description: 'is required' });
  assert.deepEqual(parsePastDate('2026-2-3', 'UTC', NOW), {
    field: 'date',
    description: 'must be a date as YYYY-MM-DD',
  });
  assert.deepEqual(parsePastDate('2025-02-29', 'UTC', NOW), {
    field: 'date',
    description: 'is not a calendar date: 2025-02-29',
  });
  assert.deepEqual(parsePastMonth('2026-00', 'UTC', NOW), {
    field: 'month',
    description: 'is not a calendar month: 2026-00',
  });
  assert.deepEqual(parsePastMonth('2027-01', 'UTC', NOW), {
    field: 'month',
    description: 'is in the future: 2027-01',
  });
  assert.deepEqual(parsePastMonth('2026', 'UTC', NOW), {
    field: 'month',
    description: 'must be a month as YYYY-MM',
  });
  assert.deepEqual(parseTimeZone(''), { zone: 'UTC' });
  assert.deepEqual(parseTimeZone('europe/paris'), { zone: 'Europe/Paris' });
  assert.deepEqual(parseTimeZone('Mars/Olympus'), {
    field: 'time_zone',
    description: 'is not a known time zone: Mars/Olympus',
  });
  assert.deepEqual(parseTimeZone('A'.repeat(65)), {
    field: 'time_zone',
    description: 'must be at most 64 characters',
  });
});
