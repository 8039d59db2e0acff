import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aggregateStoreContract } from './aggregate-store.contract.ts';
import { createEmbeddedAggregateStore } from './embedded-aggregate-store.ts';

aggregateStoreContract('embedded', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-aggregates-'));
  return {
    open: async (options = {}) => createEmbeddedAggregateStore({ dataDir, ...options }),
    cleanup: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
});

// A tiny journal limit: every apply compacts into a snapshot, which the reopen reads.
aggregateStoreContract('embedded, compacting at every apply', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-aggregates-'));
  return {
    open: async (options = {}) => createEmbeddedAggregateStore({ dataDir, compactAfterBytes: 1, ...options }),
    cleanup: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
});
