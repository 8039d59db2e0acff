import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedSeriesStore } from './embedded-series-store.ts';
import { seriesStoreContract } from './series-store.contract.ts';

seriesStoreContract('embedded', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-series-'));
  return {
    open: async () => createEmbeddedSeriesStore({ dataDir }),
    cleanup: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
});
