/** The destination topics contract on the embedded log, checked against its data directory. */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedEventLog } from '../log/embedded-event-log.ts';
import { createLogger } from '../logger.ts';
import { destinationTopicsContract } from './destination-topics.contract.ts';

destinationTopicsContract('embedded log', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-destination-topics-'));
  const log = createEmbeddedEventLog({ dataDir, logger: createLogger('warn') });
  return {
    log,
    exists: async (topic) =>
      existsSync(dataDir) &&
      (await readdir(dataDir, { recursive: true })).some((p) => p.split(/[\\/]/).includes(topic)),
    cleanup: async () => {
      await log.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});
