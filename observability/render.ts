/**
 * Renders Tally's observability files from their TypeScript sources: the Grafana dashboards
 * (dashboards/json/*.json) and the Prometheus rule files (prometheus/*.rules.yml). The rendered
 * files are committed and shipped as they are; a test fails when they differ from a fresh render.
 *
 *   node observability/render.ts           # rewrites the files
 *   node observability/render.ts --check   # exits 1, naming them, when a file is stale
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { backendsDashboard } from './dashboards/backends.ts';
import { businessDashboard } from './dashboards/business.ts';
import { overviewDashboard } from './dashboards/overview.ts';
import { slosDashboard } from './dashboards/slos.ts';
import { RULE_FILES, renderRuleFile } from './prometheus/rules.ts';

export const OBSERVABILITY_DIR = import.meta.dirname;

/** Each dashboard by its file under dashboards/json/. */
export const DASHBOARDS: Record<string, () => Dashboard> = {
  'tally-overview.json': overviewDashboard,
  'tally-slos.json': slosDashboard,
  'tally-backends.json': backendsDashboard,
  'tally-business.json': businessDashboard,
};

/** Every rendered file: absolute path → content. */
export function renderAll(): Map<string, string> {
  const files = new Map<string, string>();
  for (const [name, dashboard] of Object.entries(DASHBOARDS))
    files.set(
      join(OBSERVABILITY_DIR, 'dashboards', 'json', name),
      `${JSON.stringify(dashboard(), null, 2)}\n`,
    );
  for (const [name, groups] of Object.entries(RULE_FILES))
    files.set(join(OBSERVABILITY_DIR, 'prometheus', name), renderRuleFile(groups()));
  return files;
}

/** The rendered files whose committed copy is missing or differs, relative to the repository. */
export function staleFiles(): string[] {
  const stale: string[] = [];
  for (const [path, content] of renderAll()) {
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== content) stale.push(relative(join(OBSERVABILITY_DIR, '..'), path));
  }
  return stale;
}

if (import.meta.main) {
  if (process.argv.includes('--check')) {
    const stale = staleFiles();
    if (stale.length > 0) {
      console.error(`stale, run node observability/render.ts: ${stale.join(', ')}`);
      process.exit(1);
    }
  } else {
    for (const [path, content] of renderAll()) writeFileSync(path, content);
  }
}
