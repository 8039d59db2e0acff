import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedMilestoneStore } from './embedded-milestone-store.ts';
import { milestoneStoreContract } from './milestone-store.contract.ts';

milestoneStoreContract('embedded', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-milestones-'));
  return {
    open: async () => createEmbeddedMilestoneStore({ dataDir }),
    cleanup: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
});
