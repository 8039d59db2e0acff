/**
 * services/gen/ is what `npm run generate` makes from proto/: regenerating into
 * a scratch directory must reproduce it byte for byte.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';

const root = join(import.meta.dirname, '..');

function files(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.set(relative(dir, path), readFileSync(path, 'utf8'));
    }
  };
  walk(dir);
  return out;
}

test('the committed generated code matches the proto files', (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'tally-gen-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  execFileSync(join(root, 'node_modules', '.bin', 'buf'), ['generate', '--output', scratch], {
    cwd: root,
    env: { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}:${process.env.PATH}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const fresh = files(join(scratch, 'services', 'gen'));
  const committed = files(join(root, 'services', 'gen'));
  assert.deepEqual(
    [...committed.keys()].sort(),
    [...fresh.keys()].sort(),
    'the same files: run `npm run generate`',
  );
  for (const [path, text] of fresh)
    assert.equal(committed.get(path), text, `${path} is stale: run \`npm run generate\``);
});
