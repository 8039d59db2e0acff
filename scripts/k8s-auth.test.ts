/**
 * The chart's access control, rendered offline: TALLY_AUTH on in every role unless auth.enabled is
 * false; the bootstrap admin key and the metrics token only by reference to Secrets, never as
 * text; the ServiceMonitor sending the metrics token; the JWT values reaching the code as
 * TALLY_JWT_*; ingest given PostgreSQL (its keys) whenever access control is on; and NOTES.txt
 * warning when it is off. Each environment is read by the code's own loadConfig.
 *
 * Needs helm (scripts/install-helm.sh): skipped without it, except under CI=true.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { formatApiKey } from '../services/domain/api-keys.ts';
import { PUBLIC_KEY_JWT_ALGORITHMS } from '../services/infra/auth/jwt-verifier.ts';
import { resolveAuthMode } from '../services/infra/config.ts';
import { portsOf } from '../services/run-roles.ts';
import { grpcRoles, loadConfig, ROLES } from './k8s/code-facts.ts';
import {
  CHART,
  findHelm,
  helm,
  helmTemplate,
  NAMESPACE,
  RELEASE,
  renderCache,
  renderChart,
  valueArgs,
} from './k8s/helm.ts';
import { type K8sObject, named, ofKind } from './k8s/manifests.ts';

const HELM = findHelm();
const needsHelm = { skip: !HELM && process.env.CI !== 'true' ? 'helm is not installed' : false } as const;
const helmBinary = (): string => {
  assert.ok(HELM, 'helm is not installed: scripts/install-helm.sh');
  return HELM;
};

const JWT_KEY_VALUES = {
  'auth.jwt.publicKeySecret.name': 'tally-jwt',
  'auth.jwt.publicKeySecret.key': 'idp.pem',
  'auth.jwt.issuer': 'https://idp.example.com/',
};
const SETS = {
  defaults: {},
  'access control': { files: ['ci/auth-values.yaml'], set: { 'monitoring.prometheusRule.enabled': 'false' } },
  'JWT public key': { set: JWT_KEY_VALUES, setJson: { 'auth.jwt.audience': '["tally"]' } },
  off: { set: { 'auth.enabled': 'false' } },
  'off, with a metrics token': {
    set: {
      'auth.enabled': 'false',
      'auth.metricsToken.existingSecret': 'tally-metrics',
      'monitoring.enabled': 'true',
      'monitoring.prometheusRule.enabled': 'false',
      'monitoring.dashboards.enabled': 'false',
    },
  },
  HA: { files: ['ci/ha-values.yaml'], set: { 'monitoring.prometheusRule.enabled': 'false' } },
  'TLS listeners': { files: ['ci/tls-values.yaml'] },
  'one role': { files: ['ci/one-role-values.yaml'] },
} as const;
const rendered = renderCache(helmBinary, SETS);

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Container {
  env?: EnvVar[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] } }[];
}
const podSpec = (o: K8sObject) => (o.spec as { template: { spec: PodSpec } }).template.spec;
const roleOf = (o: K8sObject) => o.metadata.labels?.['app.kubernetes.io/component'] ?? '';
const envOf = (o: K8sObject) => new Map((podSpec(o).containers[0]!.env ?? []).map((e) => [e.name, e]));
const deployments = (objects: readonly K8sObject[]) =>
  new Map(ofKind(objects, 'Deployment').map((d) => [roleOf(d), d]));

/** What the Secrets would hold: a well-formed key, a token long enough, and stand-ins for the backends. */
const FROM_SECRETS: Record<string, string> = {
  TALLY_BOOTSTRAP_ADMIN_KEY: formatApiKey('secret', new Uint8Array(32).fill(3)),
  TALLY_METRICS_TOKEN: 'a-metrics-token-of-32-characters',
  TALLY_PG_URL: 'postgres://user:password@pg.example:5432/tally',
  TALLY_PG_READ_URLS: 'postgres://user:password@pg-ro.example:5432/tally',
  TALLY_REDIS_URL: 'redis://redis.example:6379',
  TALLY_KAFKA_SASL_PASSWORD: 'kafka-password',
  TALLY_REDIS_PASSWORD: 'redis-password',
  PGUSER: 'tally',
  PGPASSWORD: 'password',
};

/** A Deployment's environment as the kubelet would set it, Secrets replaced by stand-ins. */
function resolvedEnv(o: K8sObject): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of podSpec(o).containers[0]!.env ?? []) {
    env[v.name] = v.valueFrom?.secretKeyRef
      ? (FROM_SECRETS[v.name] ?? 'from-a-secret')
      : (v.value ?? '').replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, n: string) => env[n] ?? all);
  }
  return env;
}

const secretRef = (o: K8sObject, name: string) => envOf(o).get(name)?.valueFrom?.secretKeyRef;

/**
 * `helm template` of a copy of the chart changed by `edit` (the directory of the copy), showing
 * `show` only when given; the chart's `observability` link is left out.
 */
function templateCopy(
  edit: (copy: string) => void,
  set: Record<string, string>,
  show?: string,
): ReturnType<typeof helm> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-chart-copy-'));
  try {
    const copy = join(dir, 'tally');
    cpSync(CHART, copy, { recursive: true, filter: (src) => src !== join(CHART, 'observability') });
    edit(copy);
    return helm(helmBinary(), [
      'template',
      RELEASE,
      copy,
      '--namespace',
      NAMESPACE,
      ...(show ? ['--show-only', show] : []),
      ...valueArgs({ set }),
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * NOTES.txt as `helm install` prints it (`helm template` leaves it out): in a copy of the chart, a
 * template renders the file's text through `tpl` into a YAML string.
 */
function notes(set: Record<string, string>): string {
  const result = templateCopy(
    (copy) => {
      cpSync(join(CHART, 'templates', 'NOTES.txt'), join(copy, 'notes.txt'));
      writeFileSync(
        join(copy, 'templates', 'notes.yaml'),
        'notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n',
      );
    },
    set,
    'templates/notes.yaml',
  );
  assert.equal(result.status, 0, result.stderr);
  return (parseYaml(result.stdout) as { notes: string }).notes;
}

/**
 * The chart rendered as `helm install` would against a cluster whose `lookup` finds `secret` (a
 * Secret object, or undefined: not there): checks.yaml's lookups replaced by those answers.
 */
function installAgainst(secret: object | undefined, set: Record<string, string> = {}) {
  const one = 'lookup "v1" "Secret" .Release.Namespace $name';
  const all = 'lookup "v1" "Secret" .Release.Namespace ""';
  return templateCopy((copy) => {
    const file = join(copy, 'templates', 'checks.yaml');
    const text = readFileSync(file, 'utf8');
    assert.ok(text.includes(one) && text.includes(all), "checks.yaml's lookups of the bootstrap Secret");
    const found = secret === undefined ? 'dict' : `(${JSON.stringify(JSON.stringify(secret))} | fromJson)`;
    writeFileSync(file, text.replace(one, found).replace(all, '(dict "kind" "SecretList" "items" list)'));
  }, set);
}

describe('access control in the chart', needsHelm, () => {
  test('on by default: TALLY_AUTH=on in every role of every value set that does not turn it off', () => {
    for (const setName of [
      'defaults',
      'access control',
      'JWT public key',
      'HA',
      'TLS listeners',
      'one role',
    ]) {
      const byRole = deployments(rendered(setName));
      assert.ok(byRole.size > 0, setName);
      for (const [role, d] of byRole) {
        const where = `${setName}: ${role}`;
        assert.equal(envOf(d).get('TALLY_AUTH')?.value, 'on', where);
        const config = loadConfig(resolvedEnv(d));
        assert.deepEqual(resolveAuthMode(config), { on: true, why: 'explicit' }, where);
      }
    }
    assert.equal(
      (parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as { auth: { enabled: boolean } }).auth
        .enabled,
      true,
      'values.yaml: auth.enabled defaults to true',
    );
  });

  test('the bootstrap admin key reaches ingest and query from its Secret only, never as text', () => {
    for (const [setName, secret, key] of [
      ['defaults', 'tally-bootstrap-admin', 'key'],
      ['access control', 'tally-admin', 'admin-key'],
    ] as const) {
      const objects = rendered(setName);
      for (const [role, d] of deployments(objects)) {
        const where = `${setName}: ${role}`;
        const variable = envOf(d).get('TALLY_BOOTSTRAP_ADMIN_KEY');
        if (!grpcRoles().includes(role)) {
          assert.equal(variable, undefined, `${where}: only the roles that check keys hold it`);
          continue;
        }
        assert.equal(variable?.value, undefined, `${where}: never a literal`);
        assert.deepEqual(variable?.valueFrom?.secretKeyRef, { name: secret, key }, where);
        assert.ok(loadConfig(resolvedEnv(d)).auth.bootstrapAdminKey, where);
      }
      // The chart makes no Secret of its own for it, and no key text is anywhere in the manifests.
      assert.equal(named(objects, 'Secret', secret), undefined, `${setName}: the operator's Secret`);
      assert.doesNotMatch(JSON.stringify(objects), /tly_(sk|ik)_/, setName);
    }
    const withoutKey = deployments(
      renderChart(helmBinary(), { set: { 'auth.bootstrapAdminKey.enabled': 'false' } }),
    );
    for (const [role, d] of withoutKey) {
      assert.equal(envOf(d).get('TALLY_BOOTSTRAP_ADMIN_KEY'), undefined, role);
      assert.equal(envOf(d).get('TALLY_AUTH')?.value, 'on', role);
    }
  });

  test('install and upgrade stop, saying how to make it, when the bootstrap Secret is missing or holds no key', () => {
    const key = formatApiKey('secret', new Uint8Array(32).fill(9));
    const secret = (data: Record<string, string>) => ({
      kind: 'Secret',
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    });
    const missing = installAgainst(undefined);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /auth\.bootstrapAdminKey: access control is on/);
    assert.match(
      missing.stderr,
      /kubectl -n tally create secret generic tally-bootstrap-admin --from-literal=key="\$\(docker run --rm tally:\S+ keys generate\)"/,
    );
    for (const bad of [
      secret({ other: key }),
      secret({ key: 'hunter2' }),
      secret({ key: key.replace('tly_sk_', 'tly_ik_') }),
    ]) {
      const result = installAgainst(bad);
      assert.notEqual(result.status, 0);
      assert.match(
        result.stderr,
        /Secret tally-bootstrap-admin in namespace tally has no tly_sk_ key under "key"/,
      );
      assert.doesNotMatch(result.stderr, /hunter2/, 'the message never shows what the Secret holds');
    }
    assert.equal(installAgainst(secret({ key })).status, 0, 'a Secret with a key: installed');
    // Nothing is looked up when nothing reads the key.
    assert.equal(installAgainst(undefined, { 'auth.enabled': 'false' }).status, 0);
    assert.equal(installAgainst(undefined, { 'auth.bootstrapAdminKey.enabled': 'false' }).status, 0);
  });

  test('with access control on, ingest gets PostgreSQL for its keys, a path to it, and the migrations', () => {
    const only = {
      set: Object.fromEntries(
        ROLES.filter((r) => r !== 'ingest').map((r) => [`roles.${r}.enabled`, 'false']),
      ),
    };
    for (const [values, on] of [
      [only, true],
      [{ set: { ...only.set, 'auth.enabled': 'false' } }, false],
    ] as const) {
      const objects = renderChart(helmBinary(), values);
      const ingest = deployments(objects).get('ingest')!;
      const config = loadConfig(resolvedEnv(ingest));
      // What the process opens (services/run-roles.ts) is what the chart gives it.
      assert.equal(portsOf(['ingest'], resolveAuthMode(config).on).has('sql'), on);
      assert.equal(config.pg.url !== undefined, on, `TALLY_PG_URL with auth ${on ? 'on' : 'off'}`);
      const policy = named(objects, 'NetworkPolicy', 'tally-ingest')!;
      const ports = JSON.stringify((policy.spec as { egress: unknown[] }).egress);
      assert.equal(ports.includes('"port":5432'), on, 'egress to PostgreSQL');
      assert.equal(ofKind(objects, 'Job').length, on ? 1 : 0, 'the migration Job');
      if (on) assert.equal(config.pg.migrate, false, 'the Job migrates, ingest does not');
    }
  });

  test('off: TALLY_AUTH=off everywhere, no key, and NOTES.txt warns', () => {
    for (const [role, d] of deployments(rendered('off'))) {
      assert.equal(envOf(d).get('TALLY_AUTH')?.value, 'off', role);
      assert.equal(envOf(d).get('TALLY_BOOTSTRAP_ADMIN_KEY'), undefined, role);
      assert.equal(resolveAuthMode(loadConfig(resolvedEnv(d))).on, false, role);
    }
    assert.match(notes({ 'auth.enabled': 'false' }), /WARNING: access control is off/);
    const on = notes({});
    assert.doesNotMatch(on, /WARNING/);
    assert.match(on, /exec deploy\/tally-query -- tally keys create --name \S+ --scopes ingest,read/);
  });

  test('the metrics token: every role from the Secret, and the ServiceMonitor sends it', () => {
    for (const setName of ['access control', 'off, with a metrics token']) {
      const objects = rendered(setName);
      for (const [role, d] of deployments(objects)) {
        assert.deepEqual(secretRef(d, 'TALLY_METRICS_TOKEN'), { name: 'tally-metrics', key: 'token' }, role);
        assert.equal(envOf(d).get('TALLY_METRICS_TOKEN')?.value, undefined, `${role}: never a literal`);
        assert.ok(loadConfig(resolvedEnv(d)).auth.metricsToken, role);
      }
      const monitors = ofKind(objects, 'ServiceMonitor');
      assert.equal(monitors.length, 1, setName);
      const endpoints = (monitors[0]!.spec as { endpoints: { authorization?: unknown }[] }).endpoints;
      assert.equal(endpoints.length, 1);
      assert.deepEqual(endpoints[0]!.authorization, {
        type: 'Bearer',
        credentials: { name: 'tally-metrics', key: 'token' },
      });
    }
    for (const [role, d] of deployments(rendered('defaults')))
      assert.equal(envOf(d).get('TALLY_METRICS_TOKEN'), undefined, `${role}: no token unless one is given`);
  });

  test('JWT values become TALLY_JWT_* on ingest and query, with a path to the key set', () => {
    const objects = rendered('access control');
    for (const [role, d] of deployments(objects)) {
      const { jwt } = loadConfig(resolvedEnv(d));
      if (!grpcRoles().includes(role)) {
        assert.equal(jwt, undefined, `${role}: only the roles that check tokens`);
        continue;
      }
      assert.deepEqual(
        jwt,
        {
          jwksUrl: 'https://idp.example.com/.well-known/jwks.json',
          publicKeyFile: undefined,
          issuer: 'https://idp.example.com/',
          audience: ['tally', 'tally-staging'],
          algorithms: ['RS256', 'ES256'],
          scopesClaim: 'permissions',
          clockToleranceSec: 10,
        },
        role,
      );
      const egress = (named(objects, 'NetworkPolicy', d.metadata.name)!.spec as { egress: unknown[] }).egress;
      assert.ok(
        egress.some(
          (rule) =>
            JSON.stringify(rule) ===
            JSON.stringify({
              ports: [{ port: 443, protocol: 'TCP' }],
              to: [{ ipBlock: { cidr: '203.0.113.0/24' } }],
            }),
        ),
        `${role}: egress to the identity provider on 443`,
      );
    }
    // A public key from a Secret: mounted read-only, the file named by TALLY_JWT_PUBLIC_KEY_FILE.
    for (const [role, d] of deployments(rendered('JWT public key'))) {
      const { jwt } = loadConfig(resolvedEnv(d));
      if (!grpcRoles().includes(role)) continue;
      assert.equal(jwt?.publicKeyFile, '/etc/tally/jwt/idp.pem', role);
      const mount = podSpec(d).containers[0]!.volumeMounts?.find((m) => m.mountPath === '/etc/tally/jwt');
      const volume = podSpec(d).volumes?.find((v) => v.name === mount?.name);
      assert.equal(volume?.secret?.secretName, 'tally-jwt', role);
      assert.deepEqual(volume?.secret?.items, [{ key: 'idp.pem', path: 'idp.pem' }], role);
    }
  });

  test('values.schema.json allows exactly the public-key algorithms the code verifies', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as {
      properties: {
        auth: { properties: { jwt: { properties: { algorithms: { items: { enum: string[] } } } } } };
      };
    };
    assert.deepEqual(
      [...schema.properties.auth.properties.jwt.properties.algorithms.items.enum].sort(),
      [...PUBLIC_KEY_JWT_ALGORITHMS].sort(),
    );
  });

  test('bad access control values are refused, naming the value', () => {
    const cases: [Parameters<typeof helmTemplate>[1], RegExp][] = [
      [{ set: { 'auth.enabled': 'maybe' } }, /\/auth\/enabled/],
      [{ set: { 'config.env.TALLY_AUTH': 'off' } }, /TALLY_AUTH is set by the chart from its values/],
      [
        { set: { 'config.env.TALLY_BOOTSTRAP_ADMIN_KEY': 'tly_sk_x' } },
        /TALLY_BOOTSTRAP_ADMIN_KEY is set by the chart from its values/,
      ],
      [{ set: { 'roles.ingest.env.TALLY_JWT_ISSUER': 'x' } }, /TALLY_JWT_ISSUER is set by the chart/],
      [{ set: { 'auth.jwt.jwksUrl': 'http://idp.example.com/jwks' } }, /\/auth\/jwt\/jwksUrl/],
      [
        { set: { 'auth.jwt.jwksUrl': 'https://idp.example.com/jwks' } },
        /auth\.jwt\.issuer and auth\.jwt\.audience are required/,
      ],
      [
        { set: { 'auth.enabled': 'false', 'auth.jwt.jwksUrl': 'https://idp.example.com/jwks' } },
        /auth\.jwt: JWTs are configured with auth\.enabled=false/,
      ],
      [
        {
          set: { ...JWT_KEY_VALUES, 'auth.jwt.jwksUrl': 'https://idp.example.com/jwks' },
          setJson: { 'auth.jwt.audience': '["a"]' },
        },
        /auth\.jwt\.jwksUrl or auth\.jwt\.publicKeySecret\.name, not both/,
      ],
      [{ setJson: { 'auth.jwt.algorithms': '["HS256"]' } }, /\/auth\/jwt\/algorithms\/0/],
      [{ set: { 'auth.jwt.clockToleranceSeconds': '301' } }, /\/auth\/jwt\/clockToleranceSeconds/],
      [{ set: { 'auth.metricsToken.key': '' } }, /\/auth\/metricsToken\/key/],
    ];
    for (const [values, message] of cases) {
      const result = helmTemplate(helmBinary(), values);
      assert.notEqual(result.status, 0, `accepted: ${JSON.stringify(values)}`);
      assert.match(result.stderr, message, `the message for ${JSON.stringify(values)}`);
    }
  });
});
