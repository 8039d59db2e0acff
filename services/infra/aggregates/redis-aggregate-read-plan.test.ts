/** The READ script's arguments (redis-aggregate-store.ts readPlan): each piece once, each span whole. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { windowPieces } from '../../domain/window-aggregates.ts';
import { readPlan } from './redis-aggregate-store.ts';

/** The pieces of [from, to) runs at their places in the answer. */
const expand = (runs: [number, number][], answer: number[]) =>
  runs.flatMap(([from, to]) => answer.slice(from, to));

/** The plan's arguments read back as the script reads them. */
function decode(args: string[]) {
  let a = 0;
  const next = () => args[a++]!;
  const ranges: string[] = [];
  for (let n = Number(next()); n > 0; n--) ranges.push(`${next()} ${next()}`);
  const groups = (per: number) => {
    const pieces: number[] = [];
    for (let g = Number(next()); g > 0; g--) {
      const key = Number(next());
      for (let n = Number(next()); n > 0; n--) {
        const from = Number(next());
        const to = Number(next());
        assert.ok(from < to, `run [${from}, ${to}) is not empty`);
        for (let piece = from; piece < to; piece++) {
          assert.equal(Math.floor(piece / per), key, `piece ${piece} is in its hash's group`);
          pieces.push(piece);
        }
      }
    }
    return pieces;
  };
  const minutes = groups(60);
  const hours = groups(24);
  assert.equal(a, args.length);
  return { ranges, minutes, hours };
}

test('windows ending together: each span gets exactly its pieces, and shared pieces are sent once', () => {
  const end = Date.UTC(2026, 11, 7, 10, 37, 12, 345);
  for (const offset of [0, 1, 59_999, 60_000, 3_599_999, 12_345_678]) {
    const endMs = end + offset;
    const spans = [1, 6, 24].map((h) => ({ startMs: endMs - h * 3_600_000, endMs }));
    const plan = readPlan(spans);
    const sent = decode(plan.args);
    spans.forEach((span, i) => {
      const want = windowPieces(span.startMs, span.endMs);
      const got = plan.spans[i]!;
      assert.deepEqual(
        got.ranges.map((r) => sent.ranges[r]),
        want.raw.map((r) => `${r.fromMs} ${r.toMs}`),
      );
      assert.deepEqual(expand(got.minutes, sent.minutes), want.minutes);
      assert.deepEqual(expand(got.hours, sent.hours), want.hours);
    });
    const each = spans.map((s) => windowPieces(s.startMs, s.endMs));
    const unique = (list: number[]) => new Set(list).size;
    assert.equal(sent.minutes.length, unique(each.flatMap((p) => p.minutes)));
    assert.equal(sent.hours.length, unique(each.flatMap((p) => p.hours)));
    assert.equal(new Set(sent.ranges).size, sent.ranges.length);
  }
});

test('spans that share nothing, one whose minutes cross an hour, and an empty span', () => {
  const t = Date.UTC(2026, 0, 1);
  const spans = [
    { startMs: t + 30 * 60_000, endMs: t + 80 * 60_000 + 5 },
    { startMs: t + 3 * 86_400_000 + 17, endMs: t + 3 * 86_400_000 + 20 },
    { startMs: t, endMs: t },
  ];
  const plan = readPlan(spans);
  const sent = decode(plan.args);
  assert.deepEqual(
    expand(plan.spans[0]!.minutes, sent.minutes),
    windowPieces(spans[0]!.startMs, spans[0]!.endMs).minutes,
  );
  assert.deepEqual(
    expand(plan.spans[0]!.hours, sent.hours),
    windowPieces(spans[0]!.startMs, spans[0]!.endMs).hours,
  );
  assert.deepEqual(
    plan.spans[1]!.ranges.map((r) => sent.ranges[r]),
    [`${spans[1]!.startMs} ${spans[1]!.endMs}`],
  );
  assert.deepEqual(plan.spans[2], { ranges: [], minutes: [], hours: [] });
});

test('random spans, overlapping or not: each gets exactly its pieces, each piece is sent once', () => {
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const base = Date.UTC(2026, 5, 1);
  for (let round = 0; round < 300; round++) {
    const spans = Array.from({ length: 1 + Math.floor(random() * 5) }, () => {
      const startMs = base + Math.floor(random() * 3 * 86_400_000);
      return { startMs, endMs: startMs + Math.floor(random() * random() * 2 * 86_400_000) };
    });
    const plan = readPlan(spans);
    const sent = decode(plan.args);
    spans.forEach((span, i) => {
      const want = windowPieces(span.startMs, span.endMs);
      assert.deepEqual(expand(plan.spans[i]!.minutes, sent.minutes), want.minutes);
      assert.deepEqual(expand(plan.spans[i]!.hours, sent.hours), want.hours);
    });
    assert.equal(new Set(sent.minutes).size, sent.minutes.length);
    assert.equal(new Set(sent.hours).size, sent.hours.length);
  }
});
