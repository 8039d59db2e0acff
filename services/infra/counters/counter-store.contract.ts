/**
 * The counter store contract: every adapter passes the same tests.
 * `environment()` gives a fresh, isolated place; `open` may be called again on
 * it to reopen the same state (a restart).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dayHoldingMs, hoursOf } from '../../domain/windows.ts';
import {
  type CounterIncrement,
  type CounterStore,
  UNIQUES_RELATIVE_STANDARD_ERROR,
  WINDOW_RETENTION_MS,
} from './counter-store.ts';

/** What a test may set on a store it opens. */
export interface CounterStoreTestOptions {
  windowMaxMembers?: number;
  now?: () => number;
}

export interface CounterStoreEnvironment {
  open(options?: CounterStoreTestOptions): Promise<CounterStore>;
  cleanup(): Promise<void>;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** An event with its time and user. */
const timed = (
  position: number,
  target: string,
  type: string,
  timeMs: number,
  userId?: string,
): Unplaced => ({ position: BigInt(position), target, type, value: undefined, timeMs, userId });

/** An increment of no partition yet: `inPartition` gives it one. */
type Unplaced = Omit<CounterIncrement, 'partition'>;

const inc = (position: number, target: string, type: string, value?: number): Unplaced => ({
  position: BigInt(position),
  target,
  type,
  value,
});

/** `increments`, each of events-topic partition `partition`. */
export function inPartition(partition: number, increments: readonly Unplaced[]): CounterIncrement[] {
  return increments.map((i) => ({ partition, ...i }));
}

export function counterStoreContract(
  adapter: string,
  environment: () => Promise<CounterStoreEnvironment>,
): void {
  describe(`counter store contract: ${adapter}`, () => {
    const withStore = async (
      t: {
        after(fn: () => Promise<void>): void;
      },
      options?: CounterStoreTestOptions,
    ): Promise<{ store: CounterStore; env: CounterStoreEnvironment }> => {
      const env = await environment();
      const store = await env.open(options);
      t.after(async () => {
        await store.close();
        await env.cleanup();
      });
      return { store, env };
    };

    test('ping answers, and counts nothing', async (t) => {
      const { store } = await withStore(t);
      await store.ping();
      assert.deepEqual(await store.read('post/ping'), []);
    });

    test('counts and sums per (target, type), read ordered by type', async (t) => {
      const { store } = await withStore(t);
      assert.equal(
        await store.apply(
          inPartition(0, [
            inc(1, 'post/1', 'like'),
            inc(2, 'post/1', 'like', 2.5),
            inc(3, 'post/1', 'comment'),
            inc(4, 'post/2', 'like', 0.25),
          ]),
        ),
        4,
      );
      assert.deepEqual(await store.read('post/1'), [
        { type: 'comment', count: 1, sum: 0 },
        { type: 'like', count: 2, sum: 2.5 },
      ]);
      assert.deepEqual(await store.read('post/2'), [{ type: 'like', count: 1, sum: 0.25 }]);
      assert.deepEqual(await store.read('post/never'), []);
    });

    test("an event applies once: above its target's mark for its partition, which it moves", async (t) => {
      const { store } = await withStore(t);
      assert.equal(await store.apply(inPartition(0, [inc(10, 'x', 'CLICK'), inc(11, 'x', 'CLICK', 2)])), 2);
      // A redelivered batch, and one that overlaps it: only what lies above the mark.
      assert.equal(await store.apply(inPartition(0, [inc(10, 'x', 'CLICK'), inc(11, 'x', 'CLICK', 2)])), 0);
      assert.equal(await store.apply(inPartition(0, [inc(11, 'x', 'CLICK', 2), inc(12, 'x', 'CLICK')])), 1);
      // A forward repeated within one call (10..12 again after 13): the repeat is skipped.
      assert.equal(
        await store.apply(
          inPartition(0, [
            inc(13, 'x', 'CLICK'),
            inc(12, 'x', 'CLICK'),
            inc(13, 'x', 'CLICK'),
            inc(14, 'x', 'CLICK'),
          ]),
        ),
        2,
      );
      // Each partition and each target keeps a mark of its own.
      assert.equal(await store.apply(inPartition(1, [inc(3, 'x', 'CLICK')])), 1);
      assert.equal(await store.apply(inPartition(0, [inc(3, 'y', 'CLICK'), inc(20, 'x', 'VIEW')])), 2);
      assert.deepEqual(await store.read('x'), [
        { type: 'CLICK', count: 6, sum: 2 },
        { type: 'VIEW', count: 1, sum: 0 },
      ]);
      assert.deepEqual(await store.read('y'), [{ type: 'CLICK', count: 1, sum: 0 }]);
    });

    test('one call of many partitions: each partition against its own mark, in its own order', async (t) => {
      const { store } = await withStore(t);
      assert.equal(await store.apply(inPartition(0, [inc(5, 'm', 'like'), inc(6, 'n', 'like')])), 2);
      // Partition 0 redelivered (5, 6 below their marks) beside partitions 1 and 2 seen first, and
      // partition 1 interleaved with partition 2 in the call: positions compare within a partition
      // (2 after 3 on partition 2 lies below the mark by then, as a repeated forward does).
      assert.equal(
        await store.apply([
          ...inPartition(0, [inc(5, 'm', 'like'), inc(6, 'n', 'like'), inc(7, 'm', 'like')]),
          ...inPartition(1, [inc(0, 'm', 'like', 1)]),
          ...inPartition(2, [inc(3, 'm', 'like', 1)]),
          ...inPartition(1, [inc(1, 'm', 'like', 1), inc(1, 'm', 'like', 1)]),
          ...inPartition(2, [inc(2, 'm', 'like', 1), inc(4, 'n', 'like')]),
        ]),
        5,
      );
      assert.deepEqual(await store.read('m'), [{ type: 'like', count: 5, sum: 3 }]);
      assert.deepEqual(await store.read('n'), [{ type: 'like', count: 2, sum: 0 }]);
      // Every mark moved: the same call again applies nothing.
      assert.equal(
        await store.apply([
          ...inPartition(0, [inc(7, 'm', 'like')]),
          ...inPartition(1, [inc(1, 'm', 'like', 1)]),
          ...inPartition(2, [inc(3, 'm', 'like', 1), inc(4, 'n', 'like')]),
        ]),
        0,
      );
    });

    test('concurrent applies on one target: every partition counted, a call raced by its own redelivery once', async (t) => {
      const { store } = await withStore(t);
      const partitions = Array.from({ length: 20 }, (_, p) =>
        store.apply(
          inPartition(
            p,
            Array.from({ length: 50 }, (_, i) => inc(i, 'hot', 'VIEW', 1)),
          ),
        ),
      );
      const twins = Array.from({ length: 10 }, () =>
        store.apply(
          inPartition(
            20,
            Array.from({ length: 50 }, (_, i) => inc(i, 'hot', 'VIEW', 1)),
          ),
        ),
      );
      const applied = (await Promise.all([...partitions, ...twins])).reduce((a, b) => a + b, 0);
      assert.equal(applied, 21 * 50);
      assert.deepEqual(await store.read('hot'), [{ type: 'VIEW', count: 1050, sum: 1050 }]);
    });

    test('top ranks targets per type, highest first, limited, every type when none named', async (t) => {
      const { store } = await withStore(t);
      const events: Unplaced[] = [];
      let offset = 0;
      const add = (target: string, type: string, n: number) => {
        for (let i = 0; i < n; i++) events.push(inc(offset++, target, type));
      };
      add('a', 'VIEW', 5);
      add('b', 'VIEW', 9);
      add('c', 'VIEW', 1);
      add('d', 'VIEW', 7);
      add('a', 'CLICK', 2);
      await store.apply(inPartition(0, events));
      assert.deepEqual(await store.top(['VIEW'], 3), [
        {
          type: 'VIEW',
          targets: [
            { target: 'b', count: 9 },
            { target: 'd', count: 7 },
            { target: 'a', count: 5 },
          ],
        },
      ]);
      assert.deepEqual(await store.top([], 1), [
        { type: 'CLICK', targets: [{ target: 'a', count: 2 }] },
        { type: 'VIEW', targets: [{ target: 'b', count: 9 }] },
      ]);
      assert.deepEqual(await store.top(['nothing'], 5), [{ type: 'nothing', targets: [] }]);
      await store.apply(
        inPartition(0, [inc(100, 'c', 'VIEW'), inc(101, 'c', 'VIEW'), inc(102, 'c', 'VIEW')]),
      );
      assert.deepEqual((await store.top(['VIEW'], 4))[0]?.targets.at(-1), { target: 'c', count: 4 });
    });

    // Windows and days are kept for a time after their end, by the wall clock: tests place their
    // events relative to the current hour.
    const thisHour = () => Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    const board = async (store: CounterStore, type: string, hours: number[], limit = 10) =>
      (await store.topWindow([type], hours, limit))[0]?.targets.map((t) => [t.target, t.count]);

    test('hour windows count by event time, not arrival; several hours add up', async (t) => {
      const { store } = await withStore(t);
      const h = thisHour();
      await store.apply(
        inPartition(0, [
          timed(1, 'a', 'VIEW', h - HOUR_MS + 10),
          timed(2, 'a', 'VIEW', h - 1),
          timed(3, 'b', 'VIEW', h - 2 * HOUR_MS + 5),
          timed(4, 'b', 'VIEW', h + 1),
          timed(5, 'c', 'VIEW', h + HOUR_MS - 1),
          timed(6, 'c', 'VIEW', h),
          timed(7, 'a', 'CLICK', h),
          inc(8, 'd', 'VIEW'), // no time: all time only
        ]),
      );
      assert.deepEqual(await board(store, 'VIEW', [h - HOUR_MS]), [['a', 2]]);
      assert.deepEqual(await board(store, 'VIEW', [h]), [
        ['c', 2],
        ['b', 1],
      ]);
      assert.deepEqual(await board(store, 'VIEW', [h - 2 * HOUR_MS, h - HOUR_MS, h]), [
        ['c', 2],
        ['b', 2],
        ['a', 2],
      ]);
      assert.deepEqual(await board(store, 'VIEW', [h - 2 * HOUR_MS, h - HOUR_MS, h], 1), [['c', 2]]);
      assert.deepEqual(await store.topWindow([], [h], 5), [
        { type: 'CLICK', targets: [{ target: 'a', count: 1 }] },
        {
          type: 'VIEW',
          targets: [
            { target: 'c', count: 2 },
            { target: 'b', count: 1 },
          ],
        },
      ]);
      assert.deepEqual(await board(store, 'VIEW', [h + HOUR_MS]), []);
      assert.deepEqual(await board(store, 'VIEW', []), []);
      // All time is unchanged by windows: d counts there.
      assert.deepEqual((await store.top(['VIEW'], 1))[0]?.targets, [{ target: 'c', count: 2 }]);
      assert.equal((await store.top(['VIEW'], 10))[0]?.targets.length, 4);
    });

    test('a redelivered batch counts nothing twice in the windows, per partition', async (t) => {
      const { store } = await withStore(t);
      const h = thisHour();
      const batch = inPartition(0, [
        timed(10, 'x', 'like', h),
        timed(11, 'y', 'like', h),
        timed(12, 'x', 'like', h - HOUR_MS),
      ]);
      assert.equal(await store.apply(batch), 3);
      assert.equal(await store.apply(batch), 0);
      // Overlapping, beside another partition with lower offsets, raced by its own redelivery.
      const next = [
        ...inPartition(0, [timed(12, 'x', 'like', h - HOUR_MS), timed(13, 'x', 'like', h)]),
        ...inPartition(1, [timed(0, 'y', 'like', h), timed(1, 'y', 'like', h)]),
      ];
      assert.deepEqual(
        await Promise.all([store.apply(next), store.apply(next)]).then((n) => n[0]! + n[1]!),
        3,
      );
      assert.deepEqual(await board(store, 'like', [h]), [
        ['y', 3],
        ['x', 2],
      ]);
      assert.deepEqual(await board(store, 'like', [h - HOUR_MS, h]), [
        ['y', 3],
        ['x', 3],
      ]);
    });

    test('a window keeps its highest members only; a trimmed target counts again from its next event', async (t) => {
      const { store } = await withStore(t, { windowMaxMembers: 3 });
      const h = thisHour();
      const events: Unplaced[] = [];
      let offset = 0;
      for (const [target, n] of [
        ['a', 5],
        ['b', 4],
        ['c', 3],
        ['d', 2],
        ['e', 1],
      ] as const)
        for (let i = 0; i < n; i++) events.push(timed(offset++, target, 'VIEW', h));
      await store.apply(inPartition(0, events));
      assert.deepEqual(await board(store, 'VIEW', [h]), [
        ['a', 5],
        ['b', 4],
        ['c', 3],
      ]);
      // d had 2 when trimmed; 3 more make 3, not 5, and tie with c: the lower target goes.
      await store.apply(
        inPartition(
          0,
          [0, 1, 2].map((i) => timed(100 + i, 'd', 'VIEW', h)),
        ),
      );
      assert.deepEqual(await board(store, 'VIEW', [h]), [
        ['a', 5],
        ['b', 4],
        ['d', 3],
      ]);
      // All time keeps every target, exact.
      assert.deepEqual((await store.top(['VIEW'], 10))[0]?.targets.length, 5);
      assert.deepEqual((await store.top(['VIEW'], 1))[0]?.targets, [{ target: 'd', count: 5 }]);
    });

    test('hour windows are kept 50 hours after the hour, then dropped', async (t) => {
      const { store } = await withStore(t);
      const h = thisHour();
      const kept = h - WINDOW_RETENTION_MS + HOUR_MS; // ends 2 h before it expires
      const gone = h - WINDOW_RETENTION_MS - HOUR_MS; // ended 50 h ago
      assert.equal(
        await store.apply(inPartition(0, [timed(1, 'old', 'VIEW', kept), timed(2, 'old', 'VIEW', gone)])),
        2,
      );
      assert.deepEqual(await board(store, 'VIEW', [kept]), [['old', 1]]);
      assert.deepEqual(await board(store, 'VIEW', [gone]), []);
      assert.deepEqual((await store.top(['VIEW'], 1))[0]?.targets, [{ target: 'old', count: 2 }]);
    });

    test('a day in a time zone is the union of the hours that begin within it', async (t) => {
      const { store } = await withStore(t);
      const h = thisHour();
      // One event in each of the last 50 hours, its target by the hour's parity.
      const events: Unplaced[] = [];
      for (let i = 0; i < 50; i++)
        events.push(timed(i, i % 2 === 0 ? 'even' : 'odd', 'VIEW', h - i * HOUR_MS + 7));
      await store.apply(inPartition(0, events));
      for (const zone of ['UTC', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe']) {
        const day = dayHoldingMs(h - 25 * HOUR_MS, zone);
        const hours = hoursOf(day);
        const expected = new Map<string, number>();
        for (let i = 0; i < 50; i++) {
          const at = h - i * HOUR_MS;
          if (at < day.startMs || at >= day.endMs) continue;
          const target = i % 2 === 0 ? 'even' : 'odd';
          expected.set(target, (expected.get(target) ?? 0) + 1);
        }
        const got = new Map((await board(store, 'VIEW', hours)) as [string, number][]);
        assert.deepEqual(got, expected, zone);
        assert.equal(
          [...got.values()].reduce((a, b) => a + b, 0),
          hours.length,
          zone,
        );
      }
    });

    test('unique users: within 3 standard errors on 100,000 distinct users, once however often sent', async (t) => {
      const { store } = await withStore(t);
      const now = Date.now();
      const today = Math.floor(now / DAY_MS) * DAY_MS;
      const users = 100_000;
      for (let from = 0; from < users; from += 10_000) {
        const batch = Array.from({ length: 10_000 }, (_, i) =>
          timed(from + i, 'hll', 'VIEW', now, `user-${from + i}`),
        );
        await store.apply(inPartition(0, batch));
        // The same users again, as new events: no new user.
        await store.apply(inPartition(1, batch));
      }
      const [uniques] = await store.uniques('hll', ['VIEW'], today);
      const bound = 3 * UNIQUES_RELATIVE_STANDARD_ERROR;
      assert.ok(Math.abs(uniques!.day - users) / users < bound, `day: ${uniques!.day}`);
      assert.ok(Math.abs(uniques!.allTime - users) / users < bound, `all time: ${uniques!.allTime}`);
      assert.deepEqual(
        (await store.read('hll')).map((c) => c.count),
        [2 * users],
      );
    });

    test('unique users per UTC day and all time; events without a user count in neither', async (t) => {
      const { store } = await withStore(t);
      const now = Date.now();
      const today = Math.floor(now / DAY_MS) * DAY_MS;
      const past = today - 3 * DAY_MS;
      await store.apply(
        inPartition(0, [
          timed(1, 'p', 'like', past + 5, 'ann'),
          timed(2, 'p', 'like', past + 6, 'bob'),
          timed(3, 'p', 'like', past + DAY_MS - 1, 'ann'),
          timed(4, 'p', 'like', now, 'ann'),
          timed(5, 'p', 'like', now, 'cid'),
          timed(6, 'p', 'like', now),
          timed(7, 'p', 'share', now),
          timed(8, 'p', 'like', today - 40 * DAY_MS, 'old'), // a day no longer kept
        ]),
      );
      // Redelivered: the same users, nothing more.
      await store.apply(
        inPartition(0, [timed(5, 'p', 'like', now, 'cid'), timed(9, 'p', 'like', now, 'dan')]),
      );
      assert.deepEqual(await store.uniques('p', [], today), [
        { type: 'like', day: 3, allTime: 5 },
        { type: 'share', day: 0, allTime: 0 },
      ]);
      assert.deepEqual(await store.uniques('p', ['like'], past), [{ type: 'like', day: 2, allTime: 5 }]);
      assert.deepEqual(await store.uniques('p', ['like'], today - 40 * DAY_MS), [
        { type: 'like', day: 0, allTime: 5 },
      ]);
      assert.deepEqual(await store.uniques('nobody', [], today), []);
      assert.deepEqual(await store.uniques('nobody', ['like'], today), [
        { type: 'like', day: 0, allTime: 0 },
      ]);
    });

    test('a reopened store has the same counts and marks', async (t) => {
      const env = await environment();
      t.after(() => env.cleanup());
      const first = await env.open();
      await first.apply(inPartition(2, [inc(7, 'keep', 'like', 1), inc(8, 'keep', 'like', 1)]));
      await first.close();
      const second = await env.open();
      t.after(() => second.close());
      assert.deepEqual(await second.read('keep'), [{ type: 'like', count: 2, sum: 2 }]);
      assert.equal(
        await second.apply(inPartition(2, [inc(8, 'keep', 'like', 1), inc(9, 'keep', 'like', 1)])),
        1,
      );
      assert.deepEqual(await second.read('keep'), [{ type: 'like', count: 3, sum: 3 }]);
    });

    test('a reopened store has the same windows and unique users', async (t) => {
      const env = await environment();
      t.after(() => env.cleanup());
      const h = thisHour();
      const first = await env.open();
      await first.apply(
        inPartition(0, [
          timed(1, 'w', 'VIEW', h, 'ann'),
          timed(2, 'w', 'VIEW', h, 'bob'),
          timed(3, 'v', 'VIEW', h),
        ]),
      );
      await first.close();
      const second = await env.open();
      t.after(() => second.close());
      assert.deepEqual(await board(second, 'VIEW', [h]), [
        ['w', 2],
        ['v', 1],
      ]);
      assert.equal(await second.apply(inPartition(0, [timed(2, 'w', 'VIEW', h, 'bob')])), 0);
      assert.deepEqual(await second.uniques('w', [], Math.floor(h / DAY_MS) * DAY_MS), [
        { type: 'VIEW', day: 2, allTime: 2 },
      ]);
    });
  });
}
