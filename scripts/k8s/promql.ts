/**
 * The PromQL of the rules and dashboards the chart ships, and the series names it reads.
 */
import type { K8sObject } from './manifests.ts';

/**
 * Every PromQL expression of the PrometheusRules and of the dashboards in ConfigMaps among `objects`;
 * a panel, target or variable of another data source (the business dashboard's PostgreSQL: SQL in
 * `rawSql` and `query`) is left out.
 */
export function promqlOf(objects: readonly K8sObject[]): string[] {
  const exprs: string[] = [];
  for (const r of objects.filter((o) => o.kind === 'PrometheusRule'))
    for (const g of (r.spec as { groups: { rules: { expr: string | number }[] }[] }).groups)
      for (const rule of g.rules) exprs.push(String(rule.expr));
  // Dashboards: panel targets' `expr`, template variables' `query` (a string, or an object holding one).
  const walk = (node: unknown, key?: string): void => {
    if (typeof node === 'string') {
      if (key === 'expr' || key === 'query') exprs.push(node);
    } else if (Array.isArray(node)) for (const n of node) walk(n);
    else if (node && typeof node === 'object' && !ofOtherSource(node))
      for (const [k, v] of Object.entries(node))
        walk(v, k === 'query' && typeof v === 'object' ? undefined : k);
  };
  for (const map of objects.filter((o) => o.kind === 'ConfigMap'))
    for (const json of Object.values((map as { data?: Record<string, string> }).data ?? {}))
      walk(JSON.parse(json));
  return exprs;
}

/** Whether a dashboard node (panel, target, variable) names a data source other than Prometheus. */
function ofOtherSource(node: object): boolean {
  const source = (node as { datasource?: { type?: unknown } }).datasource;
  return typeof source?.type === 'string' && source.type !== 'prometheus';
}

/**
 * The series names in a PromQL expression that are Tally's (`tally_…`) or recorded (`a:b:c`):
 * strings, label matchers, range and subquery brackets and grouping clauses left out.
 */
export function seriesNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((n) => /^tally_|:/.test(n));
}
