/**
 * The README's configuration table lists exactly the variables the code reads.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { configVariables, loadConfig } from '../services/infra/config.ts';

const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
const table = /<!-- config-table:start -->([\s\S]*?)<!-- config-table:end -->/.exec(readme)?.[1] ?? '';
const rows = new Map(
  [...table.matchAll(/^\|\s*`(TALLY_[A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|/gm)].map((m) => [m[1]!, m[2]!]),
);

test('the README configuration table lists every variable, and only those', () => {
  assert.deepEqual([...rows.keys()].sort(), [...configVariables].sort());
});

test('the README states the defaults the code applies', () => {
  const config = loadConfig({});
  const documented = (name: string) => rows.get(name)?.replace(/^`|`.*$/g, '');
  assert.equal(documented('TALLY_HTTP_PORT'), String(config.http.port));
  assert.equal(documented('TALLY_GRPC_PORT'), String(config.grpc.port));
  assert.equal(documented('TALLY_EVENTS_PARTITIONS'), String(config.topics.eventsPartitions));
  assert.equal(documented('TALLY_MAX_LATENESS_MS'), String(config.ingest.maxLatenessMs));
  assert.equal(documented('TALLY_MAX_FUTURE_MS'), String(config.ingest.maxFutureMs));
  assert.equal(documented('TALLY_MAX_BATCH_EVENTS'), String(config.ingest.maxBatchEvents));
  assert.equal(documented('TALLY_HTTP_MAX_BODY_BYTES'), String(config.http.maxBodyBytes));
  assert.equal(documented('TALLY_GRPC_MAX_MESSAGE_BYTES'), String(config.grpc.maxMessageBytes));
  assert.equal(documented('TALLY_PRODUCE_TIMEOUT_MS'), String(config.ingest.produceTimeoutMs));
  assert.equal(documented('TALLY_DRAIN_TIMEOUT_MS'), String(config.drainTimeoutMs));
});
