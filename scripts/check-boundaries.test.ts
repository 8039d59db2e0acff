import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { findViolations } from './check-boundaries.ts';

function tree(t: { after(fn: () => void): void }, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'tally-boundaries-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test('the services tree respects its boundaries', () => {
  assert.deepEqual(findViolations(join(import.meta.dirname, '..', 'services')), []);
});

test('each forbidden import is reported with its rule', (t) => {
  const root = tree(t, {
    'domain/a.ts': "import { x } from '../infra/x.ts';\nimport fs from 'node:fs';\n",
    'infra/x.ts': "import { start } from '../counter/counter.ts';\nimport { y } from '../domain/a.ts';\n",
    'counter/counter.ts': "import * as q from '../query/query.ts';\nimport { x } from '../infra/x.ts';\n",
    'query/query.ts': "import { run } from '../main.ts';\n",
    'main.ts': "import * as c from './counter/counter.ts';\n",
    'pipeline/loop.ts':
      "import { x } from '../infra/x.ts';\nimport { y } from '../domain/a.ts';\nimport { s } from '../counter/counter.ts';\n",
    'infra/log.ts': "import { loop } from '../pipeline/loop.ts';\n",
    'persister/persister.ts': "import { loop } from '../pipeline/loop.ts';\n",
  });
  const found = findViolations(root).map((v) => `${v.file.split('/').slice(-2).join('/')} ${v.specifier}`);
  assert.deepEqual(found.sort(), [
    'counter/counter.ts ../query/query.ts',
    'domain/a.ts ../infra/x.ts',
    'domain/a.ts node:fs',
    'infra/log.ts ../pipeline/loop.ts',
    'infra/x.ts ../counter/counter.ts',
    'pipeline/loop.ts ../counter/counter.ts',
    'query/query.ts ../main.ts',
  ]);
});
