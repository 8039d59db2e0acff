import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildDayReport, HOUR_MS, hourStart, parseReportDate, summarize } from './report.ts';

test('parseReportDate gives the UTC day and names bad dates', () => {
  assert.deepEqual(parseReportDate('2026-11-22'), {
    startMs: Date.UTC(2026, 10, 22),
    endMs: Date.UTC(2026, 10, 23),
  });
  assert.deepEqual(parseReportDate(''), { field: 'date', description: 'is required' });
  assert.match((parseReportDate('22/11/2026') as { description: string }).description, /YYYY-MM-DD/);
  assert.match((parseReportDate('2026-02-30') as { description: string }).description, /not a calendar date/);
});

test('buildDayReport zero-fills 24 hours with every type of the day, ordered', () => {
  const day = Date.UTC(2026, 10, 22);
  const report = buildDayReport(day, [
    { hourStartMs: day + 3 * HOUR_MS, type: 'VIEW', count: 2, sum: 0 },
    { hourStartMs: day + 3 * HOUR_MS, type: 'CLICK', count: 5, sum: 1.5 },
    { hourStartMs: day + 23 * HOUR_MS, type: 'CLICK', count: 1, sum: 0 },
  ]);
  assert.equal(report.hours.length, 24);
  assert.deepEqual(
    report.hours.map((h) => h.hour),
    Array.from({ length: 24 }, (_, i) => i),
  );
  assert.deepEqual(report.hours[0]!.counts, [
    { type: 'CLICK', count: 0, sum: 0 },
    { type: 'VIEW', count: 0, sum: 0 },
  ]);
  assert.deepEqual(report.hours[3]!.counts, [
    { type: 'CLICK', count: 5, sum: 1.5 },
    { type: 'VIEW', count: 2, sum: 0 },
  ]);
  assert.deepEqual(report.hours[23]!.counts, [
    { type: 'CLICK', count: 1, sum: 0 },
    { type: 'VIEW', count: 0, sum: 0 },
  ]);
});

test('buildDayReport of a day without rows has 24 empty hours', () => {
  const report = buildDayReport(0, []);
  assert.equal(report.hours.length, 24);
  assert.ok(report.hours.every((h) => h.counts.length === 0));
});

test('summarize folds events into (target, hour, type) by event time', () => {
  const h = Date.UTC(2026, 10, 22, 10);
  const deltas = summarize([
    { target: 'a', type: 'CLICK', eventTimeMs: h + 1, value: 2 },
    { target: 'a', type: 'CLICK', eventTimeMs: h + HOUR_MS - 1, value: undefined },
    { target: 'a', type: 'CLICK', eventTimeMs: h + HOUR_MS, value: 1 },
    { target: 'b', type: 'CLICK', eventTimeMs: h, value: 3 },
  ]);
  assert.deepEqual(deltas, [
    { target: 'a', hourStartMs: h, type: 'CLICK', count: 2, sum: 2 },
    { target: 'a', hourStartMs: h + HOUR_MS, type: 'CLICK', count: 1, sum: 1 },
    { target: 'b', hourStartMs: h, type: 'CLICK', count: 1, sum: 3 },
  ]);
  assert.equal(hourStart(h + 59 * 60_000), h);
});
