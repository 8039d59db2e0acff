/**
 * The counter store contract: every adapter passes the same tests.
 * `environment()` gives a fresh, isolated place; `open` may be called again on
 * it to reopen the same state (a restart).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CounterIncrement, CounterStore } from './counter-store.ts';

export interface CounterStoreEnvironment {
  open(): Promise<CounterStore>;
  cleanup(): Promise<void>;
}

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
    const withStore = async (t: {
      after(fn: () => Promise<void>): void;
    }): Promise<{ store: CounterStore; env: CounterStoreEnvironment }> => {
      const env = await environment();
      const store = await env.open();
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
  });
}
