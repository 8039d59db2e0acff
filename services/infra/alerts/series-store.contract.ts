/**
 * The series store contract, run on each adapter (embedded, Redis, Redis Cluster): each event
 * added to its minute once per partition offset, closed minutes taking nothing (counted late), a
 * commit refused when the series changed since it was read, notifications pending until
 * confirmed and kept once per id, minutes dropped before the keep-from minute, idle series
 * forgotten, and all of it across a reopen (a restart). `environment()` gives a fresh, isolated
 * place; `open` may be called again on it to reopen the same state.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SeriesCommit, SeriesIncrement, SeriesStore } from './series-store.ts';

export interface SeriesStoreEnvironment {
  open(): Promise<SeriesStore>;
  cleanup(): Promise<void>;
}

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 11, 7, 9, 0);
const M0 = T0 / MINUTE;
const TTL = 3_600_000;

/** `n` events of `series` in `partition` from `offset`, in minute `M0 + minute`, adding `amount` each. */
function events(series: string, partition: number, offset: number, n: number, minute = 0, amount = 1) {
  return Array.from(
    { length: n },
    (_, i): SeriesIncrement => ({
      series,
      partition,
      offset: BigInt(offset + i),
      minute: M0 + minute,
      occurredAtMs: T0 + minute * MINUTE + i,
      amount,
      ttlMs: TTL,
    }),
  );
}

const commitOf = (series: string, version: number, over: Partial<SeriesCommit> = {}): SeriesCommit => ({
  series,
  expectedVersion: version,
  state: '{"armed":true}',
  closedMinute: M0 - 1,
  keepFromMinute: M0 - 10,
  notifications: new Map(),
  ttlMs: TTL,
  ...over,
});

export function seriesStoreContract(
  adapter: string,
  environment: () => Promise<SeriesStoreEnvironment>,
): void {
  describe(`series store contract: ${adapter}`, () => {
    const setUp = async (t: { after: (fn: () => Promise<void>) => void }) => {
      const env = await environment();
      const opened: SeriesStore[] = [];
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

    test('adds each event to its minute once per partition offset; the latest time follows the events', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      const [first] = await store.apply([...events('a', 0, 0, 3, 0), ...events('a', 1, 0, 2, 1, 2.5)]);
      assert.equal(first!.series, 'a');
      assert.deepEqual([...first!.totals].sort(), [
        [M0, 3],
        [M0 + 1, 5],
      ]);
      assert.equal(first!.latestMs, T0 + MINUTE + 1);
      assert.equal(first!.late, 0);
      assert.equal(first!.state, undefined);
      // A redelivery of both, and one new event on partition 0: only the new one counts.
      const [again] = await store.apply([...events('a', 0, 0, 4, 0), ...events('a', 1, 0, 2, 1, 2.5)]);
      assert.deepEqual([...again!.totals].sort(), [
        [M0, 4],
        [M0 + 1, 5],
      ]);
      assert.ok(again!.version > first!.version, 'a change moves the version');
      const [unchanged] = await store.apply(events('a', 0, 0, 4, 0));
      assert.equal(unchanged!.version, again!.version, 'nothing new: the version stays');
      assert.deepEqual(await store.read(['a']), [unchanged]);
      const [fresh] = await store.read(['never']);
      assert.deepEqual(
        {
          version: fresh!.version,
          latestMs: fresh!.latestMs,
          totals: fresh!.totals.size,
          pending: fresh!.pending.size,
        },
        { version: 0, latestMs: 0, totals: 0, pending: 0 },
      );
    });

    test('a commit is refused once the series changed since it was read; it keeps state, the closed minute and pending notifications', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      const [read] = await store.apply(events('b', 0, 0, 2, 0));
      // Another process adds to the series between this read and its commit.
      await store.apply(events('b', 1, 0, 1, 0));
      assert.equal(await store.commit(commitOf('b', read!.version)), undefined);
      const [now] = await store.read(['b']);
      assert.equal(now!.state, undefined, 'the refused commit wrote nothing');
      const pending = await store.commit(
        commitOf('b', now!.version, {
          state: '{"armed":false}',
          closedMinute: M0,
          notifications: new Map([['threshold:r:b:1', '{"value":3}']]),
        }),
      );
      assert.deepEqual([...pending!], [['threshold:r:b:1', '{"value":3}']]);
      const [after] = await store.read(['b']);
      assert.equal(after!.state, '{"armed":false}');
      assert.equal(after!.closedMinute, M0);
      assert.deepEqual([...after!.pending], [['threshold:r:b:1', '{"value":3}']]);
      assert.ok(after!.version > now!.version);
      // A second commit adds its own; the first stays pending and keeps its first content.
      const both = await store.commit(
        commitOf('b', after!.version, {
          closedMinute: M0 - 5,
          notifications: new Map([
            ['threshold:r:b:1', '{"value":99}'],
            ['threshold:r:b:2', '{"value":4}'],
          ]),
        }),
      );
      assert.deepEqual([...both!].sort(), [
        ['threshold:r:b:1', '{"value":3}'],
        ['threshold:r:b:2', '{"value":4}'],
      ]);
      assert.equal((await store.read(['b']))[0]!.closedMinute, M0, 'the closed minute never moves back');
      await store.confirm('b', ['threshold:r:b:1', 'threshold:r:b:2', 'unknown']);
      assert.equal((await store.read(['b']))[0]!.pending.size, 0);
    });

    test('a closed minute takes no more events: they are counted late, and still marked applied', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      const [read] = await store.apply(events('c', 0, 0, 2, 0));
      await store.commit(commitOf('c', read!.version, { closedMinute: M0 }));
      const [late] = await store.apply([...events('c', 0, 2, 3, 0), ...events('c', 0, 5, 1, 1)]);
      assert.equal(late!.late, 3);
      assert.deepEqual([...late!.totals].sort(), [
        [M0, 2],
        [M0 + 1, 1],
      ]);
      const [again] = await store.apply(events('c', 0, 2, 3, 0));
      assert.equal(again!.late, 0, 'a redelivered late event is not counted late twice');
    });

    test('a commit drops the minutes before its keep-from minute', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      const [read] = await store.apply([
        ...events('d', 0, 0, 1, 0),
        ...events('d', 0, 1, 1, 1),
        ...events('d', 0, 2, 1, 2),
      ]);
      await store.commit(commitOf('d', read!.version, { closedMinute: M0 + 1, keepFromMinute: M0 + 1 }));
      const [after] = await store.read(['d']);
      assert.deepEqual([...after!.totals.keys()].sort(), [M0 + 1, M0 + 2]);
    });

    test('series keep to themselves, and everything survives a reopen', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      const snapshots = await store.apply([...events('e', 0, 0, 2, 0), ...events('f', 0, 2, 5, 3)]);
      assert.deepEqual(
        snapshots.map((s) => [s.series, [...s.totals]]),
        [
          ['e', [[M0, 2]]],
          ['f', [[M0 + 3, 5]]],
        ],
      );
      const e = snapshots[0]!;
      await store.commit(
        commitOf('e', e.version, { state: 'S', notifications: new Map([['spike:r:e:1', 'N']]) }),
      );
      await store.close();
      const reopened = await open();
      const [again] = await reopened.apply(events('e', 0, 0, 3, 0));
      assert.deepEqual([...again!.totals], [[M0, 3]], 'the marks survived: only the third event is new');
      assert.equal(again!.state, 'S');
      assert.deepEqual([...again!.pending], [['spike:r:e:1', 'N']]);
      await reopened.ping();
    });

    test('an idle series is forgotten after its time to live', async (t) => {
      const { open } = await setUp(t);
      const store = await open();
      await store.apply(events('g', 0, 0, 1, 0).map((i) => ({ ...i, ttlMs: 150 })));
      assert.equal((await store.read(['g']))[0]!.totals.size, 1);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const [gone] = await store.read(['g']);
      assert.equal(gone!.version, 0);
      assert.equal(gone!.totals.size, 0);
    });
  });
}
