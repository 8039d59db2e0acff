/**
 * Fails on an import that crosses the layout's boundaries (docs/architecture.md):
 * - domain/ imports only domain/ (no packages, no node: modules: pure logic);
 * - gen/ imports only gen/ and @bufbuild/protobuf;
 * - infra/ (ports and adapters) imports domain/, gen/, infra/ and packages, never pipeline/ or a role;
 * - pipeline/ (application plumbing shared by roles) imports domain/, gen/, infra/ and pipeline/;
 * - a role imports domain/, gen/, infra/, pipeline/ and itself, never another role;
 * - services/*.ts at the top (main.ts, end-to-end tests) may import anything;
 * - tests (*.test.ts) follow their folder's rules, but may use any package and testing/;
 * - testing/ (test support) is imported by tests only, and follows the rules of a role.
 * Usage: node scripts/check-boundaries.ts [services-dir]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export interface Violation {
  file: string;
  specifier: string;
  rule: string;
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;

/** The layer of a file under `root`: 'domain', 'gen', 'infra', 'pipeline', 'top', or the role's folder name. */
function layerOf(root: string, file: string): string {
  const parts = relative(root, file).split(sep);
  return parts.length === 1 ? 'top' : parts[0]!;
}

/** What `file` may not import, as a reason, or undefined when allowed. */
function check(root: string, file: string, specifier: string): string | undefined {
  const from = layerOf(root, file);
  const relativeImport = specifier.startsWith('.');
  if (from === 'top') return undefined;
  if (!relativeImport) {
    if (file.endsWith('.test.ts')) return undefined; // tests may use test libraries
    if (from === 'domain') return 'domain/ is pure: it imports no packages or node: modules';
    if (from === 'gen' && !specifier.startsWith('@bufbuild/protobuf'))
      return 'gen/ imports only @bufbuild/protobuf';
    return undefined;
  }
  const target = resolve(dirname(file), specifier);
  if (!target.startsWith(root + sep)) return 'imports from outside services/';
  const to = layerOf(root, target);
  if (to === 'top') return 'only the top level (main.ts) may import the entry point';
  if (from === to) return undefined;
  if (to === 'testing') return file.endsWith('.test.ts') ? undefined : 'only tests import testing/';
  if (from === 'domain') return `domain/ imports nothing of ours (imports ${to}/)`;
  if (from === 'gen') return `gen/ imports only gen/ (imports ${to}/)`;
  if (to === 'domain' || to === 'gen') return undefined;
  if (to === 'infra') return undefined;
  if (from === 'infra')
    return to === 'pipeline'
      ? 'infra/ (adapters) never imports pipeline/: the plumbing builds on the ports, not the reverse'
      : `infra/ imports only domain/ and gen/ (imports the ${to} role)`;
  if (to === 'pipeline') return undefined;
  if (from === 'pipeline') return `pipeline/ imports only domain/, gen/ and infra/ (imports the ${to} role)`;
  return `a role never imports another role: ${from} imports ${to} (talk through Kafka or gRPC)`;
}

function* typescriptFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* typescriptFiles(path);
    else if (/\.(ts|js)$/.test(name) && !name.endsWith('.d.ts')) yield path;
  }
}

/** Every boundary violation under `root` (a services/ directory). */
export function findViolations(root: string): Violation[] {
  const absRoot = resolve(root);
  const violations: Violation[] = [];
  for (const file of typescriptFiles(absRoot)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const specifier = m[1] ?? m[2] ?? m[3]!;
      const rule = check(absRoot, file, specifier);
      if (rule) violations.push({ file: relative(process.cwd(), file), specifier, rule });
    }
  }
  return violations;
}

if (import.meta.main) {
  const root = process.argv[2] ?? join(import.meta.dirname, '..', 'services');
  const violations = findViolations(root);
  for (const v of violations) process.stderr.write(`${v.file}: import '${v.specifier}': ${v.rule}\n`);
  if (violations.length > 0) {
    process.stderr.write(`${violations.length} boundary violation(s)\n`);
    process.exit(1);
  }
  process.stdout.write('boundaries: ok\n');
}
