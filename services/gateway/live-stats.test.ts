import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type LiveEvent, LiveStats } from './live-stats.ts';

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);

function events(n: number, receivedAtMs: number, type = 'click', target = 'home'): LiveEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${type}-${receivedAtMs}-${i}`,
    type,
    target,
    userId: `u${i}`,
    value: null,
    timeMs: receivedAtMs,
    receivedAtMs,
  }));
}

test('the rate is the events received in the moving window per second, shorter right after start', () => {
  const stats = new LiveStats(T0, { rateWindowMs: 5_000 });
  stats.add(events(30, T0 + 1_500), T0 + 1_600);
  // 2 s after start the window is 2 s long.
  assert.equal(stats.snapshot(T0 + 2_000).ratePerSecond, 15);
  stats.add(events(20, T0 + 5_500), T0 + 5_600);
  const s = stats.snapshot(T0 + 6_000);
  assert.equal(s.rateWindowMs, 5_000);
  assert.equal(s.ratePerSecond, 10); // 50 events in (1 s, 6 s]
  assert.equal(stats.snapshot(T0 + 7_000).ratePerSecond, 4); // only the 20 of 5.5 s are left
  assert.equal(stats.snapshot(T0 + 11_000).ratePerSecond, 0);
});

test('the history holds one count per second of the last minute, oldest first', () => {
  const stats = new LiveStats(T0, { historySeconds: 60 });
  stats.add(events(3, T0 + 1_200), T0 + 1_300);
  stats.add(events(5, T0 + 2_900), T0 + 3_000);
  const s = stats.snapshot(T0 + 3_100);
  assert.equal(s.history.length, 60);
  assert.deepEqual(s.history.slice(-3), [3, 5, 0]);
  const later = stats.snapshot(T0 + 61_000);
  assert.deepEqual(later.history.slice(0, 2), [5, 0]); // second 1 left the window, second 2 is first
  assert.equal(
    stats.snapshot(T0 + 70_000).history.reduce((a, b) => a + b, 0),
    0,
  );
});

test('events are bucketed by ingest time, clamped to now', () => {
  const stats = new LiveStats(T0);
  stats.add(events(4, T0 + 60_000), T0 + 1_000); // a clock ahead of ours
  assert.equal(stats.snapshot(T0 + 1_000).history.at(-1), 4);
});

test('totals count every event since start per type; latest keeps the newest, newest first', () => {
  const stats = new LiveStats(T0, { latestEvents: 3, maxTypes: 2 });
  stats.add([...events(2, T0 + 100, 'view'), ...events(3, T0 + 200, 'click')], T0 + 300);
  stats.add(events(1, T0 + 400, 'like'), T0 + 500);
  const s = stats.snapshot(T0 + 600);
  assert.equal(s.total, 6);
  assert.deepEqual(s.byType, [
    { type: 'click', count: 3 },
    { type: 'view', count: 2 },
  ]);
  assert.equal(s.otherTypes, 1);
  assert.deepEqual(
    s.latest.map((e) => e.id),
    [
      'like-1000000000400-0'.replace('1000000000400', String(T0 + 400)),
      `click-${T0 + 200}-2`,
      `click-${T0 + 200}-1`,
    ],
  );
  assert.equal(s.sinceMs, T0);
});
