/**
 * The counter store contract: every adapter passes the same tests.
 * `environment()` gives a fresh, isolated place; `open` may be called again on
 * it to reopen the same state (a restart).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CounterIncrement, CounterStore } from './counter-store.ts';

export interface CounterStoreEnvironment {
  open(options: { dedupWindowMs: number }): Promise<CounterStore>;
  cleanup(): Promise<void>;
}

const inc = (eventId: string, target: string, type: string, value?: number): CounterIncrement => ({
  eventId,
  target,
  type,
  value,
});

export function counterStoreContract(
  adapter: string,
  environment: () => Promise<CounterStoreEnvironment>,
): void {
  describe(`counter store contract: ${adapter}`, () => {
    const withStore = async (
      t: { after(fn: () => Promise<void>): void },
      dedupWindowMs = 60_000,
    ): Promise<{ store: CounterStore; env: CounterStoreEnvironment }> => {
      const env = await environment();
      const store = await env.open({ dedupWindowMs });
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
        await store.apply([
          inc('1', 'post/1', 'like'),
          inc('2', 'post/1', 'like', 2.5),
          inc('3', 'post/1', 'comment'),
          inc('4', 'post/2', 'like', 0.25),
        ]),
        4,
      );
      assert.deepEqual(await store.read('post/1'), [
        { type: 'comment', count: 1, sum: 0 },
        { type: 'like', count: 2, sum: 2.5 },
      ]);
      assert.deepEqual(await store.read('post/2'), [{ type: 'like', count: 1, sum: 0.25 }]);
      assert.deepEqual(await store.read('post/never'), []);
    });

    test('an event id is applied once per target: across calls and within one call', async (t) => {
      const { store } = await withStore(t);
      assert.equal(
        await store.apply([inc('a', 'x', 'CLICK'), inc('a', 'x', 'CLICK'), inc('b', 'x', 'CLICK')]),
        2,
      );
      assert.equal(
        await store.apply([inc('a', 'x', 'CLICK'), inc('b', 'x', 'CLICK'), inc('c', 'x', 'CLICK')]),
        1,
      );
      // The scope of an id is its target (docs/architecture.md): another target counts it.
      assert.equal(await store.apply([inc('a', 'y', 'CLICK')]), 1);
      assert.deepEqual(await store.read('x'), [{ type: 'CLICK', count: 3, sum: 0 }]);
    });

    test('concurrent applies on one target are all counted, each once', async (t) => {
      const { store } = await withStore(t);
      const calls = Array.from({ length: 20 }, (_, c) =>
        store.apply(Array.from({ length: 50 }, (_, i) => inc(`e${(c * 50 + i) % 700}`, 'hot', 'VIEW', 1))),
      );
      const applied = (await Promise.all(calls)).reduce((a, b) => a + b, 0);
      assert.equal(applied, 700);
      assert.deepEqual(await store.read('hot'), [{ type: 'VIEW', count: 700, sum: 700 }]);
    });

    test('an id is forgotten after the dedup window', async (t) => {
      const { store } = await withStore(t, 200);
      assert.equal(await store.apply([inc('w', 'win', 'CLICK')]), 1);
      assert.equal(await store.apply([inc('w', 'win', 'CLICK')]), 0);
      const deadline = Date.now() + 10_000;
      let again = 0;
      while (again === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        again = await store.apply([inc('w', 'win', 'CLICK')]);
      }
      assert.equal(again, 1, 'counted again once the window passed');
      assert.deepEqual(await store.read('win'), [{ type: 'CLICK', count: 2, sum: 0 }]);
    });

    test('top ranks targets per type, highest first, limited, every type when none named', async (t) => {
      const { store } = await withStore(t);
      const events: CounterIncrement[] = [];
      let id = 0;
      const add = (target: string, type: string, n: number) => {
        for (let i = 0; i < n; i++) events.push(inc(`t${id++}`, target, type));
      };
      add('a', 'VIEW', 5);
      add('b', 'VIEW', 9);
      add('c', 'VIEW', 1);
      add('d', 'VIEW', 7);
      add('a', 'CLICK', 2);
      await store.apply(events);
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
      await store.apply([
        inc('more-c', 'c', 'VIEW'),
        inc('more-c2', 'c', 'VIEW'),
        inc('more-c3', 'c', 'VIEW'),
      ]);
      assert.deepEqual((await store.top(['VIEW'], 4))[0]?.targets.at(-1), { target: 'c', count: 4 });
    });

    test('a reopened store has the same counts and still knows the applied ids', async (t) => {
      const env = await environment();
      t.after(() => env.cleanup());
      const first = await env.open({ dedupWindowMs: 60_000 });
      await first.apply([inc('r1', 'keep', 'like', 1), inc('r2', 'keep', 'like', 1)]);
      await first.close();
      const second = await env.open({ dedupWindowMs: 60_000 });
      t.after(() => second.close());
      assert.deepEqual(await second.read('keep'), [{ type: 'like', count: 2, sum: 2 }]);
      assert.equal(await second.apply([inc('r1', 'keep', 'like', 1), inc('r3', 'keep', 'like', 1)]), 1);
      assert.deepEqual(await second.read('keep'), [{ type: 'like', count: 3, sum: 3 }]);
    });
  });
}
