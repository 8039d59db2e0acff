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
  version: string;
  license: string;
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

test('the base image is pinned to its exact Node version and Debian release (a digest may follow)', () => {
  for (const stage of stages)
    assert.match(
      stage.from,
      /^node:\d+\.\d+\.\d+-(bookworm|trixie)-slim(@sha256:[0-9a-f]{64})?$/,
      `${stage.name}: node:<x.y.z>-<debian>-slim, the tag that names one image build line`,
    );
});

test('Renovate pins the base image by digest and moves it with package.json’s node', () => {
  const config = JSON.parse(readFileSync(join(REPO, 'renovate.json'), 'utf8')) as {
    packageRules: {
      matchManagers?: string[];
      matchPackageNames?: string[];
      pinDigests?: boolean;
      groupName?: string;
      allowedVersions?: string;
    }[];
  };
  const forNode = (manager: string) =>
    config.packageRules.filter(
      (r) => r.matchManagers?.includes(manager) && r.matchPackageNames?.includes('node'),
    );
  assert.ok(
    forNode('dockerfile').some((r) => r.pinDigests === true),
    'a rule pinning the node image digest',
  );
  const group = forNode('dockerfile').find((r) => r.groupName && forNode('npm').includes(r));
  assert.ok(group, 'one group updates the image and the npm `node` dependency together');
  const major = pkg.dependencies.node!.split('.')[0];
  assert.equal(group.allowedVersions, `/^${major}\\./`, "kept on package.json's Node major");
});

test('the runtime stage has no package manager, no VOLUME, and OCI labels', () => {
  const runs = final.body.filter((i) => i.op === 'RUN').map((i) => i.args);
  for (const path of [
    '/usr/local/lib/node_modules/npm',
    '/usr/local/lib/node_modules/corepack',
    '/usr/local/bin/npm',
    '/usr/local/bin/npx',
    '/usr/local/bin/corepack',
    '/usr/local/bin/yarn',
    '/usr/local/bin/yarnpkg',
    '/opt/yarn-*',
  ])
    assert.ok(
      runs.some((r) => /\brm -rf\b/.test(r) && r.split(/\s+/).includes(path)),
      `the runtime removes ${path}`,
    );
  for (const run of runs)
    assert.doesNotMatch(
      run.replace(/\brm -rf\b[^&;]*/g, ''),
      /\b(npm|npx|corepack|yarn)\b/,
      'no package manager runs in the runtime stage',
    );
  assert.equal(final.body.filter((i) => i.op === 'VOLUME').length, 0, 'no VOLUME (docs/deploy.md: /data)');
  const labels = final.body
    .filter((i) => i.op === 'LABEL')
    .flatMap((i) => [...i.args.matchAll(/([\w.-]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!] as const));
  const label = new Map(labels);
  const finalArgs = new Set(final.body.filter((i) => i.op === 'ARG').map((i) => i.args.split('=')[0]));
  for (const [name, arg] of [
    ['org.opencontainers.image.source', 'SOURCE'],
    ['org.opencontainers.image.version', 'VERSION'],
    ['org.opencontainers.image.revision', 'REVISION'],
  ] as const) {
    assert.equal(label.get(name), `\${${arg}}`, `${name} from the build argument ${arg}`);
    assert.ok(finalArgs.has(arg), `ARG ${arg} in the runtime stage`);
  }
  assert.equal(label.get('org.opencontainers.image.licenses'), pkg.license);
  const version = final.body.find((i) => i.op === 'ARG' && i.args.startsWith('VERSION='))?.args.split('=')[1];
  assert.equal(version, pkg.version, "VERSION's default is package.json's version");
});
