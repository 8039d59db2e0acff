/**
 * Offline validation of Kubernetes manifests: core kinds against `kubernetes-models` (the
 * Kubernetes OpenAPI schemas), custom resources and skaffold.yaml against the JSON schemas
 * vendored in k8s/schemas/ (ajv, `strict: false`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';

export const REPO = join(import.meta.dirname, '..', '..');
export const SCHEMAS_DIR = join(REPO, 'k8s', 'schemas');

/** A Kubernetes object as parsed from YAML. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  [field: string]: unknown;
}

/** The documents of a multi-document YAML text, empty ones dropped; throws on a YAML error. */
export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`YAML error: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as K8sObject | null;
    return value ? [value] : [];
  });
}

/** The API groups whose kinds are checked against k8s/schemas/ rather than kubernetes-models. */
const CUSTOM_GROUPS = new Set([
  'keda.sh',
  'monitoring.coreos.com',
  'kafka.strimzi.io',
  'postgresql.cnpg.io',
  'redis.redis.opstreelabs.in',
]);

// The schemas come from Go code: `(?i)` (case-insensitive) is the one Go-only regex syntax in them.
const goRegExp = Object.assign(
  (pattern: string, flags: string) =>
    pattern.includes('(?i)')
      ? new RegExp(pattern.replaceAll('(?i)', ''), `${flags}i`)
      : new RegExp(pattern, flags),
  { code: 'new RegExp' },
);
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, code: { regExp: goRegExp } });
const compiled = new Map<string, ValidateFunction>();

/** The ajv validator of a vendored schema, `k8s/schemas/<path>.json`. */
export function vendoredSchema(path: string): ValidateFunction {
  let validate = compiled.get(path);
  if (!validate) {
    const file = join(SCHEMAS_DIR, `${path}.json`);
    if (!existsSync(file)) throw new Error(`no vendored schema ${file}`);
    validate = ajv.compile(JSON.parse(readFileSync(file, 'utf8')) as object);
    compiled.set(path, validate);
  }
  return validate;
}

/** ajv's errors as lines `path: message`. */
export function ajvErrors(validate: ValidateFunction): string[] {
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? e.keyword}`);
}

interface ValidatingModel {
  validate(): void;
}
type ModelClass = new (data: unknown) => ValidatingModel;

/**
 * What is wrong with `object` (empty when valid): a custom resource against its vendored schema,
 * any other kind against kubernetes-models' class for its apiVersion and kind.
 */
export async function validateObject(object: K8sObject): Promise<string[]> {
  const { apiVersion, kind } = object;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return ['apiVersion and kind are required'];
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (!object.metadata?.name) return ['metadata.name is required'];
  if (CUSTOM_GROUPS.has(group!)) {
    const validate = vendoredSchema(`${group}/${kind.toLowerCase()}_${version}`);
    return validate(object) ? [] : ajvErrors(validate);
  }
  const modulePath = `kubernetes-models/${group ? `${group}/` : ''}${version}/${kind}`;
  let Model: ModelClass | undefined;
  try {
    Model = ((await import(modulePath)) as Record<string, ModelClass>)[kind];
  } catch {
    return [`no Kubernetes model for ${apiVersion} ${kind} (${modulePath})`];
  }
  if (!Model) return [`no Kubernetes model for ${apiVersion} ${kind}`];
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    const details = (error as { errors?: { instancePath: string; message?: string }[] }).errors;
    return details?.map((e) => `${e.instancePath || '/'}: ${e.message}`) ?? [String(error)];
  }
}

/** Every problem of every object, as `Kind/name: problem` lines. */
export async function validateAll(objects: readonly K8sObject[]): Promise<string[]> {
  const problems: string[] = [];
  for (const object of objects) {
    for (const problem of await validateObject(object))
      problems.push(`${object.kind}/${object.metadata?.name}: ${problem}`);
  }
  return problems;
}

/** The objects of `kind`. */
export const ofKind = (objects: readonly K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);

/** The object of `kind` named `name`, if any. */
export const named = (objects: readonly K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);
