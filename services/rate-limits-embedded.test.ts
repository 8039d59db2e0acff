/**
 * Rate limits in embedded mode (`tally all` with no servers, the limiter in process): the same
 * contract as on the real servers (rate-limits.contract.ts), with one gateway.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { rateLimitContract } from './rate-limits.contract.ts';
import { freePort } from './testing/tally-process.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

rateLimitContract('embedded', {
  roles: ['all'],
  gateways: 1,
  async place() {
    const dir = mkdtempSync(join(tmpdir(), 'tally-limits-'));
    dirs.push(dir);
    return {
      TALLY_DATA_DIR: dir,
      TALLY_HTTP_PORT: '0',
      TALLY_GRPC_PORT: '0',
      TALLY_BIND_HOST: '127.0.0.1',
      TALLY_EVENTS_PARTITIONS: '2',
    };
  },
  // The embedded mode's limiter is in process; pointed at a Redis, it uses that one.
  unreachableRedis: async () => ({ TALLY_RATE_LIMIT_REDIS_URL: `redis://127.0.0.1:${await freePort()}` }),
});
