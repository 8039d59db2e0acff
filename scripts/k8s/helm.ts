/**
 * Runs helm on charts/tally: the binary of scripts/install-helm.sh (or HELM, or helm on PATH).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type K8sObject, parseManifests, REPO } from './manifests.ts';

export const CHART = join(REPO, 'charts', 'tally');
/** The Kubernetes version the chart is rendered for (cdk8s-plus-33's): fixed, whatever helm was built with. */
export const KUBE_VERSION = '1.33.0';
export const RELEASE = 'tally';
export const NAMESPACE = 'tally';

/** The helm binary to use, or undefined when there is none. */
export function findHelm(): string | undefined {
  if (process.env.HELM) return process.env.HELM;
  const installed = execFileSync(join(REPO, 'scripts', 'install-helm.sh'), ['--print-path'], {
    encoding: 'utf8',
  }).trim();
  if (existsSync(installed)) return installed;
  const onPath = spawnSync('helm', ['version', '--short'], { encoding: 'utf8' });
  return onPath.status === 0 ? 'helm' : undefined;
}

export interface HelmResult {
  status: number | null;
  stdout: string;
  /** Without helm's notices about the chart's `observability` link. */
  stderr: string;
}

/** Runs `helm <args>`. */
export function helm(binary: string, args: readonly string[]): HelmResult {
  const result = spawnSync(binary, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  const stderr = result.stderr
    .split('\n')
    .filter((line) => !/found symbolic link in path/.test(line))
    .join('\n')
    .trim();
  return { status: result.status, stdout: result.stdout, stderr };
}

/** Values for one render: files under charts/tally/, then `--set`, then `--set-json` pairs. */
export interface ValueSet {
  files?: readonly string[];
  set?: Readonly<Record<string, string>>;
  setJson?: Readonly<Record<string, string>>;
}

export function valueArgs(values: ValueSet): string[] {
  return [
    ...(values.files ?? []).flatMap((f) => ['--values', join(CHART, f)]),
    ...Object.entries(values.set ?? {}).flatMap(([k, v]) => ['--set', `${k}=${v}`]),
    ...Object.entries(values.setJson ?? {}).flatMap(([k, v]) => ['--set-json', `${k}=${v}`]),
  ];
}

/** `helm template` of the chart as release `tally` in namespace `tally`. */
export function helmTemplate(binary: string, values: ValueSet = {}): HelmResult {
  return helm(binary, [
    'template',
    RELEASE,
    CHART,
    '--namespace',
    NAMESPACE,
    '--kube-version',
    KUBE_VERSION,
    ...valueArgs(values),
  ]);
}

/** The rendered objects; throws with helm's message when the render fails. */
export function renderChart(binary: string, values: ValueSet = {}): K8sObject[] {
  const result = helmTemplate(binary, values);
  if (result.status !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  return parseManifests(result.stdout);
}

/** Renders the chart with each named value set once, on first use, for tests that read it many times. */
export function renderCache(binary: () => string, sets: Readonly<Record<string, ValueSet>>) {
  const renders = new Map<string, K8sObject[]>();
  return (name: string): K8sObject[] => {
    let objects = renders.get(name);
    if (!objects) {
      objects = renderChart(binary(), sets[name]!);
      renders.set(name, objects);
    }
    return objects;
  };
}
