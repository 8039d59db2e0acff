/**
 * `tally projections …` with no PostgreSQL configured: the projections live in the embedded
 * PGlite database under TALLY_DATA_DIR, the order projection there from the first start.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const TALLY = join(import.meta.dirname, '..', '..', 'bin', 'tally');

test('projections are listed, put with field-named errors, read and deleted in the embedded database', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-projections-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
    TALLY_DATA_DIR: dataDir,
  };
  const tally = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(TALLY, ['projections', ...args], { env, timeout: 120_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
      ),
    );

  const listed = await tally('list');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(
    listed.stdout,
    /^order\s+order_id\s+created,assigned,preparing,picked_up,delivered\s+6\s+city,restaurant\s+1$/m,
  );

  const bad = join(dataDir, 'bad.json');
  writeFileSync(
    bad,
    JSON.stringify({
      idAttribute: 'parcel_id',
      states: ['sent'],
      events: [{ type: 'parcel.sent', state: 'lost' }],
    }),
  );
  const refused = await tally('put', 'parcel', '--file', bad);
  assert.equal(refused.code, 2);
  assert.equal(refused.stderr, 'tally: events[0].state: is not one of states: "lost"\n');

  const good = join(dataDir, 'good.json');
  writeFileSync(
    good,
    JSON.stringify({
      id_attribute: 'parcel_id',
      states: ['sent', 'received'],
      events: [
        { type: 'parcel.sent', state: 'sent' },
        { type: 'parcel.received', state: 'received' },
      ],
      transitions: [{ from: 'sent', to: 'received' }],
    }),
  );
  const made = await tally('put', 'parcel', '--file', good);
  assert.equal(made.code, 0, made.stderr);
  assert.equal(JSON.parse(made.stdout).idAttribute, 'parcel_id');
  assert.equal(JSON.parse((await tally('get', 'parcel')).stdout).revision, 1);
  assert.equal((await tally('delete', 'parcel')).code, 0);
  const gone = await tally('get', 'parcel');
  assert.equal(gone.code, 1);
  assert.equal(gone.stderr, 'tally: no projection of kind "parcel"\n');
  assert.equal((await tally('nonsense')).code, 2);
});
