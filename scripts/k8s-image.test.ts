/**
 * The Dockerfile, which cannot be built here, read as a build would: its stages, base image, user,
 * entry point and dependency install; and what the image holds (by .dockerignore) imports only
 * production dependencies, since dev dependencies are not installed in it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { test } from 'node:test';

const REPO = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  type: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Instruction {
  op: string;
  args: string;
}

/** The instructions of a Dockerfile: continuation lines joined, comments and blank lines dropped. */
function parseDockerfile(text: string): Instruction[] {
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  const joined = lines.join('\n').replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => {
      const [, op, args] = /^(\S+)\s*(.*)$/.exec(l)!;
      return { op: op!.toUpperCase(), args: args! };
    });
}

const instructions = parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8'));
const args = new Map(
  instructions.filter((i) => i.op === 'ARG').map((i) => i.args.split('=', 2) as [string, string]),
);
/** The stages, each with its base image (ARGs substituted) and its instructions. */
const stages: { name: string; from: string; body: Instruction[] }[] = [];
for (const i of instructions) {
  if (i.op === 'FROM') {
    const [image, , name] = i.args.split(/\s+/);
    const from = image!.replace(/\$\{?([A-Z_]+)\}?/g, (_, n: string) => args.get(n) ?? '');
    stages.push({ name: name ?? String(stages.length), from, body: [] });
  } else stages.at(-1)?.body.push(i);
}
const final = stages.at(-1)!;
const last = (stage: (typeof stages)[number], op: string) => stage.body.filter((i) => i.op === op).at(-1);

test('a multi-stage build on a pinned Node 24 slim image, the Node version of package.json', () => {
  assert.ok(stages.length >= 2, 'a dependencies stage and a runtime stage');
  for (const stage of stages) {
    assert.match(
      stage.from,
      /^node:\d+\.\d+\.\d+-[a-z-]*slim$/,
      `${stage.name}: pinned to a full version, slim`,
    );
    assert.equal(
      stage.from.split(':')[1]!.split('-')[0],
      pkg.dependencies.node,
      `${stage.name}: package.json's node`,
    );
  }
});

test('the runtime runs `tally <role…>` as a numeric non-root user', () => {
  const user = last(final, 'USER')?.args;
  assert.match(user ?? '', /^[1-9][0-9]*(:[0-9]+)?$/, 'USER by number (runAsNonRoot checks it), not root');
  assert.deepEqual(JSON.parse(last(final, 'ENTRYPOINT')?.args ?? 'null'), ['tally']);
  assert.ok(JSON.parse(last(final, 'CMD')?.args ?? '[]').length > 0, 'a default role');
  const path = final.body.filter((i) => i.op === 'ENV').find((i) => /\bPATH=/.test(i.args))?.args ?? '';
  assert.match(path, /PATH=\/app\/bin:/, 'bin/ on PATH, where `tally` is');
  assert.equal(pkg.bin.tally, './bin/tally');
  assert.ok(statSync(join(REPO, 'bin', 'tally')).mode & 0o111, 'bin/tally is executable');
});

test('only production dependencies are installed, and the runtime installs nothing', () => {
  const installs = stages.flatMap((s) =>
    s.body
      .filter((i) => i.op === 'RUN' && /\bnpm (ci|install|i)\b/.test(i.args))
      .map((i) => ({ stage: s, i })),
  );
  assert.ok(installs.length > 0, 'an npm install');
  for (const { stage, i } of installs) {
    assert.notEqual(stage, final, 'no npm install in the runtime stage');
    assert.match(i.args, /--omit=dev/, `${stage.name}: npm without dev dependencies`);
    assert.match(i.args, /--ignore-scripts/, `${stage.name}: no install scripts`);
  }
  const copies = final.body.filter((i) => i.op === 'COPY').map((i) => i.args);
  assert.ok(
    copies.some((c) => /^--from=\S+ \/app\/node_modules /.test(c)),
    'node_modules from the install stage',
  );
  for (const dir of ['package.json', 'bin', 'services'])
    assert.ok(
      copies.some((c) => c.split(/\s+/)[0] === dir),
      `the runtime copies ${dir}`,
    );
  assert.equal(pkg.type, 'module', 'package.json (copied) makes the .ts sources ES modules');
});

/** Files the build context holds: .dockerignore's patterns (`*`, `**`, `!` re-includes) applied in order. */
function contextFiles(): string[] {
  const patterns = readFileSync(join(REPO, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negated = l.startsWith('!');
      const glob = (negated ? l.slice(1) : l).replace(/\/$/, '');
      const source = glob
        .split('/')
        .map((part) =>
          part === '**' ? '.*' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'),
        )
        .join('/')
        .replace(/\.\*\//g, '(.*/)?');
      return { negated, re: new RegExp(`^${source}(/.*)?$`) };
    });
  const included = (file: string) =>
    patterns.reduce((keep, p) => (p.re.test(file) ? p.negated : keep), true as boolean);
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return e.name === 'node_modules' || e.name === '.git' ? [] : walk(path);
      return [relative(REPO, path)];
    });
  return walk(REPO).filter(included);
}

test('.dockerignore keeps the context to the sources the image needs, without tests', () => {
  const files = contextFiles();
  assert.ok(
    files.includes('package.json') && files.includes('package-lock.json') && files.includes('bin/tally'),
  );
  assert.ok(files.includes('services/main.ts'));
  assert.ok(
    files.some((f) => f.startsWith('services/gen/')),
    'the generated code',
  );
  assert.ok(
    files.some((f) => f.startsWith('services/infra/sql/migrations/')),
    'the migrations',
  );
  assert.ok(
    files.some((f) => f.startsWith('services/gateway/dashboard/')),
    "the dashboard's assets",
  );
  const unwanted = files.filter((f) =>
    /\.test\.ts$|\.contract\.ts$|^services\/testing\/|^(charts|cdk8s|docs|scripts|data)\//.test(f),
  );
  assert.deepEqual(unwanted, []);
});

test('the code in the image imports only production dependencies', () => {
  const production = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
  const bad: string[] = [];
  for (const file of contextFiles().filter((f) => /\.(ts|js)$/.test(f))) {
    const source = readFileSync(join(REPO, file), 'utf8');
    const specifiers = [
      // Static imports and re-exports, unless type-only (erased when Node strips the types).
      ...[...source.matchAll(/^\s*(?:import|export)\s+(?!type\s)[^;]*?\sfrom\s+['"]([^'"]+)['"]/gms)].map(
        (m) => m[1]!,
      ),
      ...[...source.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!),
      ...[...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!),
    ];
    for (const s of specifiers) {
      if (s.startsWith('.') || s.startsWith('node:')) continue;
      const name = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!;
      if (!production.has(name))
        bad.push(`${file}: ${s}${name in pkg.devDependencies ? ' (a dev dependency)' : ''}`);
    }
  }
  assert.deepEqual(bad, [], 'imports the image cannot satisfy (npm install --omit=dev)');
});
