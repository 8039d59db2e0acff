/**
 * The deployment as a cluster would run it, beyond schema validity: KEDA reaching and
 * authenticating to Kafka from its own namespace, backends closed to other pods, PostgreSQL
 * connections within budget through PgBouncer, the migration hook's network path, spreading, the
 * roll of pods on a changed Secret, names within DNS limits. Rendered offline (helm template, a
 * fresh cdk8s synth).
 *
 * Needs helm (scripts/install-helm.sh): the chart tests skip without it, except under CI=true.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { platformObjects } from '../cdk8s/platform.ts';
import {
  OPERATOR_NAMESPACES,
  type PlatformConfig,
  platformSizes,
  TALLY_POD_LABELS,
} from '../cdk8s/platform-config.ts';
import { consumerRoles, loadConfig, roleBackends } from './k8s/code-facts.ts';
import {
  CHART,
  findHelm,
  helm,
  helmTemplate,
  KUBE_VERSION,
  NAMESPACE,
  renderCache,
  renderChart,
  type ValueSet,
  valueArgs,
} from './k8s/helm.ts';
import { type K8sObject, named, ofKind, parseManifests, REPO, validateAll } from './k8s/manifests.ts';

const HELM = findHelm();
const needsHelm = { skip: !HELM && process.env.CI !== 'true' ? 'helm is not installed' : false } as const;
const helmBinary = (): string => {
  assert.ok(HELM, 'helm is not installed: scripts/install-helm.sh');
  return HELM;
};

const VALUE_SETS: Record<string, ValueSet> = {
  defaults: {},
  dev: { files: ['values-dev.yaml'] },
  HA: { files: ['ci/ha-values.yaml'] },
  'external backends': { files: ['ci/external-values.yaml'] },
  monitoring: { files: ['ci/monitoring-values.yaml'] },
};
const rendered = renderCache(helmBinary, VALUE_SETS);
const roleOf = (o: K8sObject) => o.metadata.labels?.['app.kubernetes.io/component'] ?? '';
const chartValues = (file: string) => parseYaml(readFileSync(join(CHART, file), 'utf8')) as ChartValues;

interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}
interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
}
/** The values files, as far as these tests read them. */
interface ChartValues {
  kafka: { sasl: unknown };
  redis: { auth: { passwordSecret: unknown } };
  postgres: { host: string; readHost: string; maxConnections?: number };
  networkPolicy: { egress: { kafka: Peer[]; redis: Peer[]; postgres: Peer[] } };
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface PodSpec {
  containers: { env?: EnvVar[]; volumeMounts?: { name: string; mountPath: string }[] }[];
  volumes?: { name: string; secret?: { secretName: string; items?: { key: string }[] } }[];
  topologySpreadConstraints?: { matchLabelKeys?: string[]; topologyKey: string }[];
}
const podSpec = (o: K8sObject) => (o.spec as { template: { spec: PodSpec } }).template.spec;
const podAnnotations = (o: K8sObject) =>
  (o.spec as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata
    .annotations ?? {};
const envOf = (o: K8sObject) => new Map((podSpec(o).containers[0]!.env ?? []).map((e) => [e.name, e]));

interface Trigger {
  type: string;
  metadata: Record<string, string>;
  authenticationRef?: { name: string };
}
const triggersOf = (so: K8sObject) => (so.spec as { triggers: Trigger[] }).triggers;

/** The Kubernetes selector semantics of matchLabels and matchExpressions (In, NotIn, Exists). */
function selects(
  selector: {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
  },
  labels: Record<string, string>,
): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const value = labels[e.key];
    if (e.operator === 'In' && !(value !== undefined && e.values?.includes(value))) return false;
    if (e.operator === 'NotIn' && value !== undefined && e.values?.includes(value)) return false;
    if (e.operator === 'Exists' && value === undefined) return false;
    if (e.operator === 'DoesNotExist' && value !== undefined) return false;
  }
  return true;
}

describe('KEDA', needsHelm, () => {
  test('every trigger reaches Kafka by a name that resolves from KEDA’s namespace', () => {
    for (const setName of Object.keys(VALUE_SETS)) {
      const objects = rendered(setName);
      const deployment = ofKind(objects, 'Deployment').find((d) => roleOf(d) === 'persister');
      const podBrokers = deployment ? envOf(deployment).get('TALLY_KAFKA_BROKERS')?.value : undefined;
      for (const so of ofKind(objects, 'ScaledObject'))
        for (const trigger of triggersOf(so)) {
          const where = `${setName}: ${so.metadata.name}`;
          for (const address of trigger.metadata.bootstrapServers!.split(',')) {
            const host = address.replace(/:\d+$/, '');
            // A Service of the release's namespace, fully qualified; or a name with a domain of
            // its own (external Kafka), exactly as the roles are given it.
            const qualified = host.endsWith(`.${NAMESPACE}.svc`) || host.endsWith('.svc.cluster.local');
            const external =
              host.includes('.') && !host.endsWith('.svc') && podBrokers?.split(',').includes(address);
            assert.ok(
              qualified || external,
              `${where}: ${address} resolves only in the release's namespace, not from KEDA's`,
            );
          }
        }
    }
    // The dev platform's bootstrap Service, as KEDA must name it.
    const so = ofKind(rendered('dev'), 'ScaledObject')[0]!;
    const dev = platformSizes.dev;
    assert.equal(
      triggersOf(so)[0]!.metadata.bootstrapServers,
      `${dev.kafka.name}-kafka-bootstrap.${dev.namespace}.svc:9092`,
    );
    // keda.bootstrapServers wins, for a Kafka KEDA sees by another name.
    const external = renderChart(helmBinary(), {
      set: { 'keda.bootstrapServers': 'kafka.example.net:9093' },
    });
    for (const s of ofKind(external, 'ScaledObject'))
      assert.equal(triggersOf(s)[0]!.metadata.bootstrapServers, 'kafka.example.net:9093');
  });

  test('a TriggerAuthentication from the roles’ own Secrets, referenced from every trigger', () => {
    const kedaSasl: Record<string, string> = {
      plain: 'plaintext',
      'scram-sha-256': 'scram_sha256',
      'scram-sha-512': 'scram_sha512',
    };
    for (const setName of ['external backends', 'HA', 'defaults']) {
      const objects = rendered(setName);
      const scaled = ofKind(objects, 'ScaledObject');
      assert.ok(scaled.length > 0, setName);
      const persister = ofKind(objects, 'Deployment').find((d) => roleOf(d) === 'persister')!;
      const env = envOf(persister);
      const needsAuth = env.has('TALLY_KAFKA_SASL_MECHANISM') || env.has('TALLY_KAFKA_TLS');
      for (const so of scaled)
        for (const trigger of triggersOf(so)) {
          const where = `${setName}: ${so.metadata.name}`;
          if (!needsAuth) {
            assert.equal(trigger.authenticationRef, undefined, `${where}: Kafka asks for nothing`);
            continue;
          }
          assert.ok(trigger.authenticationRef, `${where}: Kafka asks for SASL or TLS: an authenticationRef`);
          const auth = named(objects, 'TriggerAuthentication', trigger.authenticationRef.name);
          assert.ok(auth, `${where}: TriggerAuthentication ${trigger.authenticationRef.name}`);
          const refs = new Map(
            (
              auth.spec as { secretTargetRef: { parameter: string; name: string; key: string }[] }
            ).secretTargetRef.map((r) => [r.parameter, r]),
          );
          const secretValue = (parameter: string) => {
            const ref = refs.get(parameter);
            assert.ok(ref, `${where}: no ${parameter}`);
            const secret = named(objects, 'Secret', ref.name) as
              | { stringData?: Record<string, string> }
              | undefined;
            return secret?.stringData?.[ref.key];
          };
          const mechanism = env.get('TALLY_KAFKA_SASL_MECHANISM')?.value;
          if (mechanism) {
            assert.equal(secretValue('sasl'), kedaSasl[mechanism], `${where}: KEDA's name of ${mechanism}`);
            assert.equal(secretValue('username'), env.get('TALLY_KAFKA_SASL_USERNAME')?.value, where);
            const { name, key } = refs.get('password')!;
            assert.deepEqual(
              { name, key },
              env.get('TALLY_KAFKA_SASL_PASSWORD')?.valueFrom?.secretKeyRef,
              `${where}: the password of the roles' Secret`,
            );
          } else assert.equal(refs.has('sasl'), false, where);
          assert.equal(
            secretValue('tls'),
            env.has('TALLY_KAFKA_TLS') ? 'enable' : 'disable',
            `${where}: tls`,
          );
          const caFile = env.get('TALLY_KAFKA_TLS_CA_FILE')?.value;
          if (caFile) {
            const mount = podSpec(persister).containers[0]!.volumeMounts!.find((m) =>
              caFile.startsWith(`${m.mountPath}/`),
            )!;
            const volume = podSpec(persister).volumes!.find((v) => v.name === mount.name)!;
            assert.deepEqual(
              { name: refs.get('ca')?.name, key: refs.get('ca')?.key },
              { name: volume.secret!.secretName, key: caFile.slice(mount.mountPath.length + 1) },
              `${where}: the CA the roles trust`,
            );
          } else assert.equal(refs.has('ca'), false, where);
        }
      if (!needsAuth) assert.equal(ofKind(objects, 'TriggerAuthentication').length, 0, setName);
    }
    assert.deepEqual(
      ofKind(rendered('HA'), 'TriggerAuthentication').length,
      1,
      'one TriggerAuthentication for every trigger',
    );
  });

  test('limitToPartitionsWithLag, a fallback within the bounds, and no setting KEDA ignores', () => {
    const ignoredByDefault = ['allowIdleConsumers', 'scaleToZeroOnInvalidOffset', 'excludePersistentLag'];
    for (const setName of Object.keys(VALUE_SETS)) {
      for (const so of ofKind(rendered(setName), 'ScaledObject')) {
        const where = `${setName}: ${so.metadata.name}`;
        const spec = so.spec as {
          minReplicaCount: number;
          maxReplicaCount: number;
          cooldownPeriod?: number;
          fallback?: { failureThreshold: number; replicas: number };
        };
        const { metadata } = triggersOf(so)[0]!;
        assert.equal(metadata.limitToPartitionsWithLag, 'true', `${where}: limitToPartitionsWithLag`);
        for (const key of ignoredByDefault)
          assert.equal(metadata[key], undefined, `${where}: ${key} only restates KEDA's default`);
        assert.ok(spec.minReplicaCount >= 1, `${where}: the shipped values keep a replica`);
        // Activation and cooldown act only between 0 and 1 replica.
        assert.equal(
          metadata.activationLagThreshold,
          undefined,
          `${where}: activationLagThreshold unused above 0`,
        );
        assert.equal(spec.cooldownPeriod, undefined, `${where}: cooldownPeriod unused above 0`);
        assert.ok(spec.fallback, `${where}: a fallback`);
        assert.ok(
          spec.fallback.replicas >= Math.max(1, spec.minReplicaCount) &&
            spec.fallback.replicas <= spec.maxReplicaCount,
          `${where}: fallback ${spec.fallback.replicas} within ${spec.minReplicaCount}..${spec.maxReplicaCount}`,
        );
      }
    }
    const toZero = renderChart(helmBinary(), { set: { 'roles.persister.keda.minReplicaCount': '0' } });
    const so = named(toZero, 'ScaledObject', 'tally-persister')!;
    assert.equal(triggersOf(so)[0]!.metadata.activationLagThreshold, '10', 'used from zero');
    assert.equal((so.spec as { cooldownPeriod?: number }).cooldownPeriod, 300);
  });

  test('scaling to zero is refused where correctness or alerting needs the role running', () => {
    const cases: [ValueSet, RegExp][] = [
      [
        { set: { 'roles.counter.keda.minReplicaCount': '0' } },
        /roles\.counter\.keda\.minReplicaCount is 0: the live counters/,
      ],
      [
        { files: ['ci/monitoring-values.yaml'], set: { 'roles.aggregator.keda.minReplicaCount': '0' } },
        /roles\.aggregator\.keda\.minReplicaCount is 0 with monitoring\.enabled/,
      ],
    ];
    for (const [values, message] of cases) {
      const result = helmTemplate(helmBinary(), values);
      assert.notEqual(result.status, 0, `accepted: ${JSON.stringify(values)}`);
      assert.match(result.stderr, message);
    }
  });

  test('an alert on KEDA scaler errors names every ScaledObject of the release', () => {
    const objects = rendered('monitoring');
    const rule = named(objects, 'PrometheusRule', 'tally-keda');
    assert.ok(rule, 'PrometheusRule tally-keda');
    const alert = (rule.spec as { groups: { rules: { alert?: string; expr: string }[] }[] }).groups
      .flatMap((g) => g.rules)
      .find((r) => r.alert === 'TallyKedaScalerErrors');
    assert.ok(alert);
    assert.match(alert.expr, /keda_scaled_object_errors_total/);
    const names = /scaledObject=~"([^"]+)"/.exec(alert.expr)?.[1]?.split('|').sort();
    assert.deepEqual(
      names,
      ofKind(objects, 'ScaledObject')
        .map((s) => s.metadata.name)
        .sort(),
    );
  });
});

describe('PostgreSQL connections', needsHelm, () => {
  test('helm template refuses maxima that can exceed the connection budget, naming the values', () => {
    const result = helmTemplate(helmBinary(), {
      files: ['ci/ha-values.yaml'],
      set: { 'postgres.maxConnections': String(platformSizes.prod.postgres.maxConnections) },
    });
    assert.notEqual(result.status, 0, 'the HA maxima straight on PostgreSQL (500 connections) are refused');
    assert.match(
      result.stderr,
      /up to \d+ connections \(postgres\.poolSize 10 × \d+ pods: persister \d+, aggregator \d+, alerter \d+, router \d+, projector \d+, sender \d+, query \d+/,
    );
    assert.match(result.stderr, /exceed postgres\.maxConnections \(500\)/);
    const dev = helmTemplate(helmBinary(), {
      files: ['values-dev.yaml'],
      set: {
        'postgres.poolSize': '100',
        'postgres.maxConnections': String(platformSizes.dev.postgres.maxConnections),
      },
    });
    assert.notEqual(dev.status, 0);
    const schema = helmTemplate(helmBinary(), { set: { 'postgres.schema': 'tally' } });
    assert.notEqual(schema.status, 0, 'a schema other than public through PgBouncer');
    assert.match(schema.stderr, /PgBouncer ignores the search_path/);
  });

  test('the shipped values fit their platform’s poolers, and the poolers fit PostgreSQL', () => {
    for (const [file, size] of [
      ['values.yaml', 'dev'],
      ['ci/ha-values.yaml', 'prod'],
    ] as const) {
      const config = platformSizes[size];
      const objects = platformObjects(config) as unknown as K8sObject[];
      const poolers = ofKind(objects, 'Pooler');
      assert.deepEqual(
        poolers.map((p) => (p.spec as { type: string }).type).sort(),
        ['ro', 'rw'],
        `${size}: a pooler for writes and one for reads`,
      );
      for (const p of poolers) {
        const spec = p.spec as {
          cluster: { name: string };
          instances: number;
          pgbouncer: { poolMode: string; parameters: Record<string, string> };
        };
        assert.equal(spec.cluster.name, config.postgres.name);
        assert.equal(spec.pgbouncer.poolMode, 'transaction');
        const server =
          spec.instances *
          (Number(spec.pgbouncer.parameters.default_pool_size) +
            Number(spec.pgbouncer.parameters.reserve_pool_size));
        assert.ok(
          server <= config.postgres.maxConnections - config.postgres.reservedConnections,
          `${size}: ${p.metadata.name} may open ${server} server connections, max_connections is ${config.postgres.maxConnections}`,
        );
        // node-postgres sends search_path in `options`: PgBouncer must not refuse the connection.
        assert.match(spec.pgbouncer.parameters.ignore_startup_parameters ?? '', /(^|,)options(,|$)/);
        const values =
          file === 'values.yaml'
            ? chartValues(file)
            : { ...chartValues('values.yaml'), ...chartValues(file) };
        const maxConnections =
          (values.postgres as { maxConnections?: number }).maxConnections ??
          chartValues('values.yaml').postgres.maxConnections;
        assert.equal(
          maxConnections,
          spec.instances * Number(spec.pgbouncer.parameters.max_client_conn),
          `${file}: postgres.maxConnections is the ${size} pooler's max_client_conn × instances`,
        );
      }
      const defaults = chartValues('values.yaml').postgres as { host: string; readHost: string };
      assert.equal(defaults.host, `${platformSizes.dev.postgres.name}-pooler-rw`);
      assert.equal(defaults.readHost, `${platformSizes.dev.postgres.name}-pooler-ro`);
    }
  });
});

describe('the migration hook', needsHelm, () => {
  test('its NetworkPolicy and Secret exist before the Job runs, and leave with it', () => {
    for (const setName of ['defaults', 'external backends']) {
      const objects = rendered(setName);
      const job = ofKind(objects, 'Job')[0]!;
      const weight = (o: K8sObject) => Number(o.metadata.annotations?.['helm.sh/hook-weight'] ?? Number.NaN);
      const labels = (job.spec as { template: { metadata: { labels: Record<string, string> } } }).template
        .metadata.labels;
      const policies = ofKind(objects, 'NetworkPolicy').filter((p) =>
        selects((p.spec as { podSelector: object }).podSelector, labels),
      );
      assert.equal(policies.length, 1, `${setName}: one NetworkPolicy for the Job's pods`);
      const policy = policies[0]!;
      assert.match(
        policy.metadata.annotations?.['helm.sh/hook'] ?? '',
        /pre-install/,
        `${setName}: a pre-install hook`,
      );
      assert.ok(weight(policy) < weight(job), `${setName}: created before the Job`);
      assert.match(policy.metadata.annotations?.['helm.sh/hook-delete-policy'] ?? '', /hook-succeeded/);
      for (const ref of podSpec(job).containers[0]!.env ?? []) {
        const name = ref.valueFrom?.secretKeyRef?.name;
        const secret = name && named(objects, 'Secret', name);
        if (!secret) continue; // a Secret of the user's
        assert.ok(weight(secret) < weight(job), `${setName}: Secret ${name} is a hook before the Job`);
      }
    }
  });

  test('the roles read a Secret of the release, not a hook left behind on uninstall', () => {
    const objects = rendered('external backends');
    const read = new Set(
      ofKind(objects, 'Deployment').flatMap((d) =>
        [...envOf(d).values()].flatMap((e) =>
          e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef.name] : [],
        ),
      ),
    );
    const ours = ofKind(objects, 'Secret').filter((s) => read.has(s.metadata.name));
    assert.ok(ours.length > 0, 'the roles read the chart’s Secret');
    for (const s of ours)
      assert.equal(s.metadata.annotations?.['helm.sh/hook'], undefined, `${s.metadata.name}: not a hook`);
  });
});

describe('pods', needsHelm, () => {
  test('a changed URL in the chart’s Secret rolls the pods that read it', () => {
    const render = (url: string) =>
      renderChart(helmBinary(), { files: ['ci/external-values.yaml'], set: { 'postgres.url': url } });
    const before = render('postgres://tally:one@pg.example.net:5432/tally');
    const after = render('postgres://tally:two@pg.example.net:5432/tally');
    const backends = roleBackends();
    for (const d of ofKind(before, 'Deployment')) {
      const role = roleOf(d);
      const changed = named(after, 'Deployment', d.metadata.name)!;
      if (backends.get(role)?.has('postgres'))
        assert.notDeepEqual(podAnnotations(changed), podAnnotations(d), `${role}: its pods roll`);
    }
  });

  test('Tally’s spread constraints count only the pods of the same ReplicaSet', () => {
    for (const d of ofKind(rendered('HA'), 'Deployment')) {
      const constraints = podSpec(d).topologySpreadConstraints ?? [];
      assert.ok(constraints.length > 0, d.metadata.name);
      for (const c of constraints)
        assert.deepEqual(c.matchLabelKeys, ['pod-template-hash'], `${d.metadata.name} ${c.topologyKey}`);
    }
  });

  test('every name stays within 63 characters and distinct with the longest release name', () => {
    // Helm refuses release names above 53 characters.
    const release = 'a-release-name-of-fifty-three-characters-for-testing';
    const longest = `${release}x`;
    assert.equal(longest.length, 53);
    for (const files of [['ci/ha-values.yaml'], ['ci/external-values.yaml'], ['ci/monitoring-values.yaml']]) {
      const result = helm(helmBinary(), [
        'template',
        longest,
        CHART,
        '--namespace',
        NAMESPACE,
        '--kube-version',
        KUBE_VERSION,
        ...valueArgs({ files }),
      ]);
      assert.equal(result.status, 0, result.stderr);
      const objects = parseManifests(result.stdout);
      const seen = new Set<string>();
      for (const o of objects) {
        assert.ok(o.metadata.name.length <= 63, `${o.kind} ${o.metadata.name} (${o.metadata.name.length})`);
        assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${o.kind} ${o.metadata.name}`);
        const key = `${o.kind}/${o.metadata.name}`;
        assert.ok(!seen.has(key), `${key} twice`);
        seen.add(key);
      }
    }
  });

  test('PrometheusRule and dashboard names carry the release prefix once', () => {
    for (const o of [
      ...ofKind(rendered('monitoring'), 'PrometheusRule'),
      ...ofKind(rendered('monitoring'), 'ConfigMap'),
    ])
      assert.doesNotMatch(o.metadata.name, /tally-(dashboard-)?tally-/, o.metadata.name);
  });

  test('a Service on 443 has TLS terminated in front of it, never plain HTTP', () => {
    for (const setName of Object.keys(VALUE_SETS))
      for (const s of ofKind(rendered(setName), 'Service')) {
        const ports = (s.spec as { ports: { port: number; appProtocol?: string }[] }).ports;
        if (!ports.some((p) => p.port === 443)) continue;
        const a = s.metadata.annotations ?? {};
        assert.ok(
          a['service.beta.kubernetes.io/aws-load-balancer-ssl-cert'] &&
            (a['service.beta.kubernetes.io/aws-load-balancer-ssl-ports'] ?? '').split(',').includes('443'),
          `${setName}: ${s.metadata.name} serves plain HTTP on 443`,
        );
      }
  });
});

describe('backends closed to strangers', () => {
  const kafkaSpec = (objects: K8sObject[]) =>
    ofKind(objects, 'Kafka')[0]!.spec as {
      kafka: {
        listeners: { port: number; authentication?: { type: string }; networkPolicyPeers?: object[] }[];
        rack?: { topologyKey: string };
        authorization?: { type: string };
      };
      entityOperator: { template?: { topicOperatorContainer?: { env?: { name: string; value: string }[] } } };
    };

  test('Kafka’s listener admits Tally’s pods and KEDA only; the prod size asks for SCRAM', () => {
    for (const [size, config] of Object.entries(platformSizes) as [string, PlatformConfig][]) {
      const objects = platformObjects(config) as unknown as K8sObject[];
      for (const listener of kafkaSpec(objects).kafka.listeners) {
        assert.deepEqual(
          listener.networkPolicyPeers,
          [
            { podSelector: { matchLabels: TALLY_POD_LABELS } },
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': OPERATOR_NAMESPACES.keda } },
            },
          ],
          `${size}: listener ${listener.port}`,
        );
        if (size === 'prod') assert.equal(listener.authentication?.type, 'scram-sha-512', `${size}: SCRAM`);
      }
    }
    // The chart's pods carry the labels the peers select.
    const prod = platformSizes.prod;
    assert.equal(
      kafkaSpec(platformObjects(prod) as unknown as K8sObject[]).kafka.authorization?.type,
      'simple',
    );
  });

  test('the prod size’s SCRAM user and Redis password are the ones the HA values give the roles', () => {
    const prod = platformSizes.prod;
    assert.equal(prod.kafka.authentication.type, 'scram-sha-512');
    const user = prod.kafka.authentication.type === 'scram-sha-512' ? prod.kafka.authentication.user : '';
    const objects = platformObjects(prod) as unknown as K8sObject[];
    const kafkaUser = named(objects, 'KafkaUser', user);
    assert.ok(kafkaUser, `KafkaUser ${user}`);
    const ha = chartValues('ci/ha-values.yaml');
    assert.deepEqual(ha.kafka.sasl, {
      mechanism: 'scram-sha-512',
      username: user,
      passwordSecret: { name: user, key: 'password' },
    });
    assert.deepEqual(ha.redis.auth.passwordSecret, prod.redis.passwordSecret);
    const redis = ofKind(objects, 'RedisCluster')[0]!.spec as { kubernetesConfig: { redisSecret?: object } };
    assert.deepEqual(redis.kubernetesConfig.redisSecret, prod.redis.passwordSecret);
    // Its ACLs cover what the roles, KEDA and the gateway's live feed do.
    const acls = (
      kafkaUser.spec as {
        authorization: {
          acls: { resource: { type: string; name?: string; patternType?: string }; operations: string[] }[];
        };
      }
    ).authorization.acls;
    const allows = (type: string, name: string, operation: string) =>
      acls.some(
        (a) =>
          a.resource.type === type &&
          a.operations.includes(operation) &&
          (a.resource.name === '*' ||
            (a.resource.patternType === 'prefix'
              ? name.startsWith(a.resource.name!)
              : a.resource.name === name)),
      );
    const defaults = loadConfig({});
    for (const topic of [
      defaults.topics.events,
      defaults.topics.accepted,
      defaults.topics.dlq,
      defaults.topics.notifications,
    ])
      for (const op of ['Read', 'Write', 'Describe']) assert.ok(allows('topic', topic, op), `${op} ${topic}`);
    assert.ok(allows('topic', 'deliveries.shop', 'Create'), 'Create deliveries.<destination>');
    assert.ok(allows('topic', 'deliveries.shop', 'Write'), "the router writes the destinations' topics");
    // Each consumer role (and KEDA, for its lag) reads its own topic with its group; the persister
    // writes what it accepted to the accepted topic, which the counter and the aggregator read.
    const consumers = consumerRoles();
    for (const [role, facts] of consumers) {
      const topic = facts.topic === 'deliveries' ? 'deliveries.ds_0123456789' : defaults.topics[facts.topic];
      for (const op of ['Read', 'Describe'])
        assert.ok(allows('topic', topic, op), `${role}: ${op} on ${topic}, the topic it reads`);
      for (const op of ['Read', 'Describe'])
        assert.ok(allows('group', facts.group, op), `${role}: ${op} on its group ${facts.group}`);
      assert.ok(allows('topic', defaults.topics.dlq, 'Write'), `${role}: Write on the dead-letter topic`);
    }
    assert.equal(consumers.get('persister')?.topic, 'events', 'the persister reads the events topic');
    assert.ok(allows('topic', defaults.topics.accepted, 'Write'), 'the persister writes the accepted topic');
    assert.ok(
      allows('topic', defaults.topics.notifications, 'Write'),
      'the alerter writes the notifications topic',
    );
    const main = readFileSync(join(REPO, 'services', 'roles.ts'), 'utf8'); // the role table wires the gateway
    const live = /groupId: `\$\{config\.groupPrefix\}(gateway-live-)\$\{/.exec(main)?.[1];
    assert.equal(
      live,
      'gateway-live-',
      "the role table names the gateway's live-feed groups gateway-live-<host>-<pid>",
    );
    assert.ok(allows('group', 'gateway-live-tally-gateway-6d9f-1', 'Read'), 'the live feed’s groups');
  });

  test('a NetworkPolicy admits to the Redis nodes only Tally, the other nodes and the operator', () => {
    for (const config of Object.values(platformSizes)) {
      const objects = platformObjects(config) as unknown as K8sObject[];
      const policies = ofKind(objects, 'NetworkPolicy');
      for (const group of ['leader', 'follower']) {
        const labels = { app: `${config.redis.name}-${group}`, redis_setup_type: 'cluster', role: group };
        const policy = policies.find((p) => selects((p.spec as { podSelector: object }).podSelector, labels));
        assert.ok(policy, `${config.size}: the ${group}s are selected`);
        const ingress = (policy.spec as { ingress: { from: Peer[]; ports: { port: number }[] }[] }).ingress;
        const peersOn = (port: number) =>
          ingress.filter((r) => r.ports.some((p) => p.port === port)).flatMap((r) => r.from);
        assert.ok(
          peersOn(6379).some((p) => p.podSelector && selects(p.podSelector, { ...TALLY_POD_LABELS })),
          'Tally',
        );
        assert.ok(
          peersOn(16379).some((p) => p.podSelector && selects(p.podSelector, labels)),
          'the cluster bus',
        );
        assert.ok(
          peersOn(6379).some(
            (p) =>
              p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === OPERATOR_NAMESPACES.redis,
          ),
          'the operator',
        );
        for (const rule of ingress) assert.ok(rule.from.length > 0, 'no rule open to everyone');
      }
    }
  });

  test(
    'the chart’s egress rules name their destinations, and those are the platform’s pods',
    needsHelm,
    async () => {
      const objects = rendered('defaults');
      const platform = platformObjects(platformSizes.dev) as unknown as K8sObject[];
      assert.deepEqual(await validateAll(platform), []);
      for (const p of ofKind(objects, 'NetworkPolicy')) {
        const egress =
          (
            p.spec as {
              egress?: {
                to?: Peer[];
                ports?: { port: number }[];
              }[];
            }
          ).egress ?? [];
        assert.ok(egress.length > 0, `${p.metadata.name}: egress restricted`);
        for (const rule of egress)
          assert.ok(
            rule.to && rule.to.length > 0,
            `${p.metadata.name}: a rule to anywhere on ${JSON.stringify(rule.ports)}`,
          );
      }
      // The default peers select the pods the operators label: Strimzi's brokers, the OT operator's
      // Redis nodes, CloudNativePG's instances and poolers.
      const values = chartValues('values.yaml').networkPolicy.egress;
      const dev = platformSizes.dev;
      const podSelects = (peers: Peer[], labels: Record<string, string>) =>
        peers.some((peer) => peer.podSelector && selects(peer.podSelector, labels));
      assert.ok(
        podSelects(values.kafka, { 'strimzi.io/cluster': dev.kafka.name, 'strimzi.io/broker-role': 'true' }),
      );
      assert.ok(podSelects(values.redis, { app: `${dev.redis.name}-leader`, redis_setup_type: 'cluster' }));
      assert.ok(podSelects(values.redis, { app: `${dev.redis.name}-follower`, redis_setup_type: 'cluster' }));
      for (const pooler of ofKind(platform, 'Pooler'))
        assert.ok(
          podSelects(values.postgres, { 'cnpg.io/poolerName': pooler.metadata.name }),
          pooler.metadata.name,
        );
    },
  );
});

describe('HA spreading in the prod size', () => {
  test('Redis leaders and followers spread over nodes and zones with PDBs; Kafka is rack-aware', () => {
    const prod = platformObjects(platformSizes.prod) as unknown as K8sObject[];
    interface Group {
      pdb?: { enabled: boolean; maxUnavailable?: number };
      affinity?: {
        podAntiAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { topologyKey: string }[] };
      };
      topologySpreadConstraints?: { topologyKey: string }[];
    }
    const redis = ofKind(prod, 'RedisCluster')[0]!.spec as Record<string, Group>;
    for (const group of ['redisLeader', 'redisFollower']) {
      const spec = redis[group];
      assert.ok(spec, group);
      assert.equal(spec.pdb?.enabled, true, `${group}: a PDB`);
      assert.equal(spec.pdb?.maxUnavailable, 1);
      const required = spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
      assert.ok(
        required.some((t) => t.topologyKey === 'kubernetes.io/hostname'),
        `${group}: one per node`,
      );
      assert.ok(
        spec.topologySpreadConstraints?.some((c) => c.topologyKey === 'topology.kubernetes.io/zone'),
        `${group}: over zones`,
      );
    }
    const kafka = ofKind(prod, 'Kafka')[0]!.spec as { kafka: { rack?: { topologyKey: string } } };
    assert.equal(kafka.kafka.rack?.topologyKey, 'topology.kubernetes.io/zone');
  });

  test('dev’s platform takes its volumes with it, so that the next run starts a fresh Kafka and Redis Cluster', () => {
    for (const [size, deleted] of [
      ['dev', true],
      ['prod', false],
    ] as const) {
      const objects = platformObjects(platformSizes[size]) as unknown as K8sObject[];
      for (const pool of ofKind(objects, 'KafkaNodePool'))
        assert.equal(
          (pool.spec as { storage: { deleteClaim?: boolean } }).storage.deleteClaim,
          deleted,
          `${size}: ${pool.metadata.name}`,
        );
      const redis = ofKind(objects, 'RedisCluster')[0]!.spec as {
        kubernetesConfig: { persistentVolumeClaimRetentionPolicy?: { whenDeleted: string } };
      };
      assert.equal(
        redis.kubernetesConfig.persistentVolumeClaimRetentionPolicy?.whenDeleted ?? 'Retain',
        deleted ? 'Delete' : 'Retain',
        size,
      );
    }
  });

  test('dev’s topic operator puts no finalizers on topics; prod’s keeps them', () => {
    for (const [size, expected] of [
      ['dev', 'false'],
      ['prod', undefined],
    ] as const) {
      const kafka = ofKind(platformObjects(platformSizes[size]) as unknown as K8sObject[], 'Kafka')[0]!
        .spec as {
        entityOperator: {
          template?: { topicOperatorContainer?: { env?: { name: string; value: string }[] } };
        };
      };
      const env = kafka.entityOperator.template?.topicOperatorContainer?.env ?? [];
      assert.equal(env.find((e) => e.name === 'STRIMZI_USE_FINALIZERS')?.value, expected, size);
    }
  });
});
