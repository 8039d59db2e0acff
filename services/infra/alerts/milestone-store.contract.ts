/**
 * The milestone store contract, run on each adapter (embedded, Redis, Redis Cluster): counts
 * exactly once per partition offset, each threshold claimed once ever, pending crossings answered
 * again until confirmed, and all of it across a reopen (a restart). `environment()` gives a
 * fresh, isolated place; `open` may be called again on it to reopen the same state.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MilestoneIncrement, MilestoneStore } from './milestone-store.ts';

export interface MilestoneStoreEnvironment {
  open(): Promise<MilestoneStore>;
  cleanup(): Promise<void>;
}

const THRESHOLDS = [3, 5, 10];

/** `n` events of `series` in `partition` from `offset`, one each. */
function events(series: string, partition: number, offset: number, n: number, thresholds = THRESHOLDS) {
  return Array.from(
    { length: n },
    (_, i): MilestoneIncrement => ({ series, partition, offset: BigInt(offset + i), amount: 1, thresholds }),
  );
}

export function milestoneStoreContract(
  adapter: string,
  environment: () => Promise<MilestoneStoreEnvironment>,
): void {
  describe(`milestone store contract: ${adapter}`, () => {
    const setUp = async (t: { after: (fn: () => Promise<void>) => void }) => {
      const env = await environment();
      const opened: MilestoneStore[] = [];
      const open = async () => {
        const store = await env.open();
        opened.push(store);
        return store;
      };
      t.after(async () => {
        for (const store of opened) await store.close();
        await env.cleanup();
      });
      return { open };
    };

    test('crossings are claimed once, lowest first, also several in one step; a confirmed one is not answered again', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      assert.deepEqual(await store.apply(events('r1|post/1', 0, 0, 2)), []);
      assert.deepEqual(await store.apply(events('r1|post/1', 0, 2, 1)), [
        { series: 'r1|post/1', threshold: 3, count: 3 },
      ]);
      // Unconfirmed: answered again with the next step, beside what that step crossed.
      const jump = await store.apply(events('r1|post/1', 1, 0, 8));
      assert.deepEqual(jump, [
        { series: 'r1|post/1', threshold: 3, count: 3 },
        { series: 'r1|post/1', threshold: 5, count: 11 },
        { series: 'r1|post/1', threshold: 10, count: 11 },
      ]);
      await store.confirm(jump);
      assert.deepEqual(await store.apply(events('r1|post/1', 1, 8, 100)), [], 'no threshold left');
      assert.deepEqual(await store.inspect('r1|post/1'), { count: 111, notifiedUpTo: 10, pending: [] });
    });

    test('a redelivered batch counts nothing and answers its unconfirmed crossings again', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      const batch = [...events('r1|a', 0, 10, 3), ...events('r1|b', 0, 13, 4), ...events('r1|a', 2, 0, 2)];
      const first = await store.apply(batch);
      assert.deepEqual(first, [
        { series: 'r1|a', threshold: 3, count: 5 },
        { series: 'r1|a', threshold: 5, count: 5 },
        { series: 'r1|b', threshold: 3, count: 4 },
      ]);
      // The notifications were not written (a crash): the batch comes again, counts nothing, and
      // the same crossings come back with the same counts.
      assert.deepEqual(await store.apply(batch), first);
      // Part of it again, and part of it new: only the new part counts.
      assert.deepEqual(await store.apply([...events('r1|b', 0, 15, 4)]), [
        { series: 'r1|b', threshold: 3, count: 4 },
        { series: 'r1|b', threshold: 5, count: 6 },
      ]);
      assert.equal((await store.inspect('r1|a')).count, 5);
      assert.equal((await store.inspect('r1|b')).count, 6);
      await store.confirm(first);
      assert.deepEqual((await store.inspect('r1|a')).pending, []);
      assert.deepEqual((await store.inspect('r1|b')).pending, [5]);
    });

    test('partitions keep their own marks; amounts add', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      await store.apply([
        { series: 's', partition: 0, offset: 100n, amount: 2, thresholds: [10] },
        { series: 's', partition: 1, offset: 5n, amount: 2, thresholds: [10] },
      ]);
      // Offset 6 of partition 0 is below its mark (100): a redelivery. Partition 1's 6 is new.
      await store.apply([
        { series: 's', partition: 0, offset: 6n, amount: 50, thresholds: [10] },
        { series: 's', partition: 1, offset: 6n, amount: 3, thresholds: [10] },
      ]);
      assert.deepEqual(await store.inspect('s'), { count: 7, notifiedUpTo: 0, pending: [] });
      // Offsets past 2^32 and up to 2^53 are exact.
      const big = 2n ** 52n + 7n;
      assert.deepEqual(
        await store.apply([{ series: 's', partition: 2, offset: big, amount: 3, thresholds: [10] }]),
        [{ series: 's', threshold: 10, count: 10 }],
      );
      assert.deepEqual(
        await store.apply([{ series: 's', partition: 2, offset: big, amount: 3, thresholds: [10] }]),
        [{ series: 's', threshold: 10, count: 10 }],
      );
      assert.equal((await store.inspect('s')).count, 10);
    });

    test('state, marks and pending crossings survive a reopen', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      const crossed = await store.apply(events('r2|post/9', 3, 0, 5));
      assert.equal(crossed.length, 2);
      await store.close();
      const again = await open();
      assert.deepEqual(
        await again.apply(events('r2|post/9', 3, 0, 5)),
        crossed,
        'redelivered after a restart',
      );
      await again.confirm(crossed);
      assert.deepEqual(await again.inspect('r2|post/9'), { count: 5, notifiedUpTo: 5, pending: [] });
    });

    test('series whose names look alike, or hold braces, are apart', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      await store.apply([
        ...events('r1|{x}', 0, 0, 3),
        ...events('r1|{x', 0, 0, 1),
        ...events('r1|', 0, 0, 2),
      ]);
      assert.equal((await store.inspect('r1|{x}')).count, 3);
      assert.equal((await store.inspect('r1|{x')).count, 1);
      assert.equal((await store.inspect('r1|')).count, 2);
      assert.equal((await store.inspect('never')).count, 0);
    });
  });
}
