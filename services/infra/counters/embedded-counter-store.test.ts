import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { counterStoreContract, inPartition } from './counter-store.contract.ts';
import { createEmbeddedCounterStore } from './embedded-counter-store.ts';

counterStoreContract('embedded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-counters-'));
  return {
    open: async (options) => createEmbeddedCounterStore({ dataDir: dir, ...options }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

test('compaction into a snapshot keeps counts and marks across reopen', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-counters-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const open = () => createEmbeddedCounterStore({ dataDir: dir, compactAfterBytes: 2_000 });
  const store = open();
  for (let b = 0; b < 50; b++) {
    await store.apply(
      inPartition(
        0,
        Array.from({ length: 10 }, (_, i) => ({
          position: BigInt(b * 10 + i),
          target: `t${i % 3}`,
          type: 'X',
          value: 1,
        })),
      ),
    );
  }
  await store.close();
  const again = open();
  t.after(() => again.close());
  const total = (await Promise.all(['t0', 't1', 't2'].map((t) => again.read(t))))
    .flat()
    .reduce((n, c) => n + c.count, 0);
  assert.equal(total, 500);
  assert.equal(await again.apply(inPartition(0, [{ position: 71n, target: 't1', type: 'X', value: 1 }])), 0);
  assert.equal(await again.apply(inPartition(0, [{ position: 500n, target: 't1', type: 'X', value: 1 }])), 1);
});
