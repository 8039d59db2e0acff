/**
 * The Kubernetes deployment, checked offline: charts/tally rendered with several value sets and
 * the cdk8s platform synthesized fresh, every object validated (core kinds with kubernetes-models,
 * custom resources with the schemas in k8s/schemas/), skaffold.yaml against its schema; and the
 * chart held to the code — roles, consumer groups and topics, configuration variables, probe
 * ports and paths (gRPC health for the gRPC roles), metrics named by the shipped rules and dashboards.
 *
 * Needs helm (scripts/install-helm.sh): skipped without it, except under CI=true where that fails.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { DIST_DIR, distFile, platformFile } from '../cdk8s/main.ts';
import { platformObjects } from '../cdk8s/platform.ts';
import { platformSizes } from '../cdk8s/platform-config.ts';
import { formatApiKey } from '../services/domain/api-keys.ts';
import { CONSUMER_ROLES } from '../services/testing/chaos.ts';
import { CONSUMER_GROUPS } from '../services/testing/tally-client.ts';
import {
  configVariables,
  consumerRoles,
  consumersReadFromBeginning,
  exportedSeries,
  grpcHealth,
  grpcRoles,
  loadConfig,
  localKafkaVersion,
  ROLES,
  roleBackends,
  roleGrpcServices,
  roleUsesEventConsumer,
} from './k8s/code-facts.ts';
import { grpcHealthCheck } from './k8s/grpc-probe.ts';
import {
  CHART,
  findHelm,
  helm,
  helmTemplate,
  renderCache,
  renderChart,
  type ValueSet,
  valueArgs,
} from './k8s/helm.ts';
import {
  ajvErrors,
  type K8sObject,
  named,
  ofKind,
  parseManifests,
  REPO,
  validateAll,
  vendoredSchema,
} from './k8s/manifests.ts';
import { promqlOf, seriesNames } from './k8s/promql.ts';

const HELM = findHelm();
const IN_CI = process.env.CI === 'true';
const NO_HELM = 'helm is not installed: scripts/install-helm.sh builds it (under CI=true this fails instead)';
/** Skip without helm, except in CI, where the test runs and fails on the missing binary. */
const needsHelm = { skip: !HELM && !IN_CI ? NO_HELM : false } as const;
const helmBinary = (): string => {
  assert.ok(HELM, `${NO_HELM}; CI must run scripts/install-helm.sh first`);
  return HELM;
};

// ---- the observability files the chart ships through its link ----

const OBSERVABILITY = join(REPO, 'observability');
const listFiles = (dir: string, suffix: string) =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith(suffix))
        .sort()
    : [];
const RULE_FILES = listFiles(join(OBSERVABILITY, 'prometheus'), '.rules.yml');
const DASHBOARD_FILES = listFiles(join(OBSERVABILITY, 'dashboards', 'json'), '.json');
const MISSING_RULES = RULE_FILES.length === 0 && 'observability/prometheus/*.rules.yml are not there yet';
const MISSING_DASHBOARDS =
  DASHBOARD_FILES.length === 0 && 'observability/dashboards/json/*.json are not there yet';
/** Monitoring value sets render without the parts whose files are missing (and the tests on them skip). */
const withoutMissingFiles: Record<string, string> = {
  ...(MISSING_RULES ? { 'monitoring.prometheusRule.enabled': 'false' } : {}),
  ...(MISSING_DASHBOARDS ? { 'monitoring.dashboards.enabled': 'false' } : {}),
};

// ---- value sets ----

const VALUE_SETS: Record<string, ValueSet> = {
  defaults: {},
  dev: { files: ['values-dev.yaml'] },
  'one role': { files: ['ci/one-role-values.yaml'] },
  monitoring: { files: ['ci/monitoring-values.yaml'], set: withoutMissingFiles },
  HA: { files: ['ci/ha-values.yaml'], set: withoutMissingFiles },
  'external backends': { files: ['ci/external-values.yaml'] },
  'HTTP probes': { set: { 'probes.grpc': 'false' } },
  'TLS listeners': { files: ['ci/tls-values.yaml'] },
  'access control': { files: ['ci/auth-values.yaml'], set: withoutMissingFiles },
  'access control off': { set: { 'auth.enabled': 'false' } },
};

const rendered = renderCache(helmBinary, VALUE_SETS);

// ---- pod specs ----

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet?: { path: string; port: string | number; scheme?: string };
  grpc?: { port: number; service?: string };
}
interface Container {
  name: string;
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  securityContext?: {
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  volumes?: { name: string; emptyDir?: object }[];
}
const podSpec = (o: K8sObject) => (o.spec as { template: { spec: PodSpec } }).template.spec;
const roleOf = (o: K8sObject) => o.metadata.labels?.['app.kubernetes.io/component'] ?? '';

/** The Deployments of a render, by role. */
function deployments(objects: readonly K8sObject[]): Map<string, K8sObject> {
  return new Map(ofKind(objects, 'Deployment').map((d) => [roleOf(d), d]));
}

/**
 * A container's environment as the kubelet would set it: Secret references resolved from the
 * rendered Secrets, else with stand-ins of the right shape; `$(NAME)` expanded.
 */
function resolvedEnv(objects: readonly K8sObject[], container: Container): Record<string, string> {
  const standIn: Record<string, string> = {
    TALLY_PG_URL: 'postgres://user:password@pg.example:5432/tally',
    TALLY_PG_READ_URLS: 'postgres://user:password@pg-ro.example:5432/tally',
    TALLY_REDIS_URL: 'redis://redis.example:6379',
    TALLY_KAFKA_SASL_PASSWORD: 'kafka-password',
    PGUSER: 'tally',
    PGPASSWORD: 'password',
    // A well-formed key (its checksum holds) and a token long enough, as the Secrets would hold.
    TALLY_BOOTSTRAP_ADMIN_KEY: formatApiKey('secret', new Uint8Array(32).fill(7)),
    TALLY_METRICS_TOKEN: 'a-metrics-token-of-32-characters',
  };
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    let value: string;
    const ref = v.valueFrom?.secretKeyRef;
    if (ref) {
      const secret = named(objects, 'Secret', ref.name) as
        | { stringData?: Record<string, string> }
        | undefined;
      value = secret?.stringData?.[ref.key] ?? standIn[v.name] ?? 'from-a-secret';
    } else {
      value = (v.value ?? '').replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, n: string) => env[n] ?? all);
    }
    env[v.name] = value;
  }
  return env;
}

// ---- the tests ----

test('helm is available (CI installs it with scripts/install-helm.sh)', (t) => {
  if (HELM) return;
  if (IN_CI) assert.fail(`${NO_HELM}; add scripts/install-helm.sh to .ci/run`);
  t.skip(NO_HELM);
});

describe('charts/tally', needsHelm, () => {
  test('helm lint --strict passes with every value set', () => {
    for (const [name, values] of Object.entries(VALUE_SETS)) {
      const result = helm(helmBinary(), [
        'lint',
        CHART,
        '--strict',
        '--kube-version',
        '1.33.0',
        ...valueArgs(values),
      ]);
      assert.equal(result.status, 0, `helm lint (${name}):\n${result.stdout}\n${result.stderr}`);
    }
  });

  test('every object rendered with every value set is valid', async () => {
    for (const name of Object.keys(VALUE_SETS)) {
      const objects = rendered(name);
      assert.ok(objects.length > 0, `${name}: nothing rendered`);
      assert.deepEqual(await validateAll(objects), [], `${name}: invalid objects`);
    }
  });

  test('every role of the code is a Deployment running `tally <role>`, and nothing else is', () => {
    const byRole = deployments(rendered('defaults'));
    assert.deepEqual([...byRole.keys()].sort(), [...ROLES].sort());
    for (const [role, d] of byRole)
      assert.deepEqual(podSpec(d).containers[0]!.args, [role], `${role}'s args`);
    assert.deepEqual([...deployments(rendered('one role')).keys()], ['counter']);
  });

  test('the consumer roles of the code are those the tests use, with their groups and topics', () => {
    const all = consumerRoles();
    const defaults = loadConfig({});
    // The sender reads the destinations' topics (a set that changes), through a loop of its own.
    assert.deepEqual(all.get('sender'), { group: 'group_sending', topic: 'deliveries' });
    const consumers = new Map([...all].filter(([, facts]) => facts.topic !== 'deliveries'));
    // The chaos run kills, adds and removes senders with the others.
    assert.deepEqual([...consumers.keys(), 'sender'].sort(), [...CONSUMER_ROLES].sort());
    assert.deepEqual([...consumers.values()].map((c) => c.group).sort(), [...CONSUMER_GROUPS].sort());
    for (const [role, facts] of consumers) {
      if (facts.topic === 'deliveries') continue;
      assert.equal(
        typeof defaults.topics[facts.topic],
        'string',
        `services/roles.ts: ${role} reads config.topics.${facts.topic}, which is no topic`,
      );
      assert.ok(roleUsesEventConsumer(role), `${role} should consume through pipeline/event-consumer.ts`);
    }
    // The persister judges duplicates on the events topic and forwards what it accepted; the
    // other sinks read that. The chart's tally.consumerTopics says the same (checked on the
    // rendered triggers below).
    assert.equal(consumers.get('persister')?.topic, 'events');
    assert.equal(consumers.get('counter')?.topic, 'accepted');
    assert.equal(consumers.get('aggregator')?.topic, 'accepted');
    assert.equal(consumers.get('alerter')?.topic, 'accepted');
    assert.equal(consumers.get('router')?.topic, 'accepted');
  });

  test('each consumer role has a ScaledObject on its own consumer group and topic, as the code names them', () => {
    const consumers = consumerRoles();
    const earliest = consumersReadFromBeginning();
    const defaults = loadConfig({});
    for (const setName of Object.keys(VALUE_SETS)) {
      const objects = rendered(setName);
      const scaled = ofKind(objects, 'ScaledObject');
      for (const [role, d] of deployments(objects)) {
        const so = scaled.find(
          (s) => (s.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name === d.metadata.name,
        );
        const facts = consumers.get(role);
        const where = `${setName}: ${role}`;
        if (!facts) {
          assert.equal(so, undefined, `${where} is not a consumer: no ScaledObject`);
          continue;
        }
        if (d.spec?.replicas !== undefined) continue; // KEDA off in this value set: fixed replicas
        assert.ok(so, `${where}: consumer role without a ScaledObject`);
        const spec = so.spec as {
          minReplicaCount: number;
          maxReplicaCount: number;
          triggers: { type: string; metadata: Record<string, unknown> }[];
          advanced?: {
            horizontalPodAutoscalerConfig?: {
              behavior?: { scaleDown?: { stabilizationWindowSeconds?: number } };
            };
          };
        };
        const config = loadConfig(resolvedEnv(objects, podSpec(d).containers[0]!));
        assert.equal(spec.triggers.length, 1, where);
        const { type, metadata } = spec.triggers[0]!;
        assert.equal(type, 'kafka', where);
        for (const [key, value] of Object.entries(metadata))
          assert.equal(
            typeof value,
            'string',
            `${where}: KEDA reads trigger metadata as strings: ${key} is ${typeof value}`,
          );
        assert.equal(
          metadata.consumerGroup,
          `${config.groupPrefix}${facts.group}`,
          `${where}: consumer group`,
        );
        if (facts.topic === 'deliveries') {
          // The destinations' topics change: no topic, KEDA sums the group's lag over every topic
          // the group committed on.
          assert.equal(metadata.topic, undefined, `${where}: no topic`);
        } else {
          // The lag KEDA reads is the group's on the topic the role reads (the role table's `topic`),
          // by the name the pod is given: a trigger on the other topic would read a lag the role
          // never commits.
          const topic = config.topics[facts.topic];
          assert.equal(metadata.topic, topic, `${where}: topic (config.topics.${facts.topic})`);
          assert.notEqual(
            metadata.topic,
            config.topics[facts.topic === 'events' ? 'accepted' : 'events'],
            `${where}: the trigger watches the topic ${role} does not read`,
          );
          if (setName === 'defaults')
            assert.equal(metadata.topic, defaults.topics[facts.topic], `${where}: the code's default topic`);
        }
        // The roles' brokers, each name of the release's namespace qualified for KEDA's
        // (scripts/k8s-deploy.test.ts checks that every address resolves from there).
        assert.equal(
          metadata.bootstrapServers,
          config.kafka.brokers
            ?.map((b) =>
              b.split(':')[0]!.includes('.') ? b : b.replace(/:/, `.${so.metadata.namespace}.svc:`),
            )
            .join(','),
          `${where}: brokers`,
        );
        assert.equal(
          metadata.offsetResetPolicy,
          earliest ? 'earliest' : 'latest',
          `${where}: offsetResetPolicy`,
        );
        assert.match(String(metadata.lagThreshold), /^[1-9][0-9]*$/, `${where}: lagThreshold`);
        assert.ok(
          spec.maxReplicaCount <= config.topics.eventsPartitions,
          `${where}: maxReplicaCount ${spec.maxReplicaCount} above the ${config.topics.eventsPartitions} partitions`,
        );
        assert.ok(
          (spec.advanced?.horizontalPodAutoscalerConfig?.behavior?.scaleDown?.stabilizationWindowSeconds ??
            0) > 0,
          `${where}: a scale-down stabilisation window`,
        );
      }
    }
  });

  test('the chart sets only variables of the config schema, with values it accepts, and all a role needs', () => {
    const known = new Set(configVariables);
    const backends = roleBackends();
    const helpers = new Set(['PGUSER', 'PGPASSWORD']); // expanded into TALLY_PG_URL by the kubelet
    for (const setName of Object.keys(VALUE_SETS)) {
      const objects = rendered(setName);
      const extra = new Set(
        (
          (
            parseYaml(
              readFileSync(join(CHART, VALUE_SETS[setName]!.files?.[0] ?? 'values.yaml'), 'utf8'),
            ) as {
              extraEnv?: { name: string }[];
            }
          ).extraEnv ?? []
        ).map((e) => e.name),
      );
      const byRole = deployments(objects);
      const pods = [...byRole.entries(), ...ofKind(objects, 'Job').map((j) => [roleOf(j), j] as const)];
      for (const [role, o] of pods) {
        const where = `${setName}: ${o.kind} ${o.metadata.name}`;
        const container = podSpec(o).containers[0]!;
        for (const { name } of container.env ?? []) {
          if (name.startsWith('TALLY_'))
            assert.ok(known.has(name), `${where} sets ${name}, which services/infra/config.ts does not read`);
          else assert.ok(helpers.has(name) || extra.has(name), `${where} sets ${name}, not a Tally variable`);
        }
        const names = (container.env ?? []).map((e) => e.name);
        assert.equal(new Set(names).size, names.length, `${where}: a variable set twice`);
        const env = resolvedEnv(objects, container);
        let config: ReturnType<typeof loadConfig>;
        try {
          config = loadConfig(env);
        } catch (error) {
          assert.fail(`${where}: the code refuses the chart's environment: ${(error as Error).message}`);
        }
        const uses = role === 'migrate' ? new Set(['postgres']) : backends.get(role)!;
        if (uses.has('kafka')) assert.ok(config.kafka.brokers?.length, `${where}: needs TALLY_KAFKA_BROKERS`);
        for (const [variable, caFile] of [
          ['TALLY_KAFKA_TLS_CA_FILE', config.kafka.tls?.caFile],
          ['TALLY_REDIS_TLS_CA_FILE', config.redis.tls?.caFile],
          ['TALLY_TLS_CERT_FILE', config.tls?.certFile],
          ['TALLY_TLS_KEY_FILE', config.tls?.keyFile],
          ['TALLY_TLS_CLIENT_CA_FILE', config.tls?.clientCaFile],
          ['TALLY_GRPC_TLS_CA_FILE', config.grpcClientTls?.caFile],
          ['TALLY_GRPC_TLS_CLIENT_CERT_FILE', config.grpcClientTls?.certFile],
          ['TALLY_JWT_PUBLIC_KEY_FILE', config.jwt?.publicKeyFile],
        ] as const) {
          if (caFile === undefined) continue;
          // The CA file the code reads is in a volume of the Secret the values name.
          const mount = container.volumeMounts?.find((m) => caFile.startsWith(`${m.mountPath}/`));
          assert.ok(mount, `${where}: ${variable} ${caFile} is in no mounted volume`);
          const volume = (
            podSpec(o) as { volumes?: { name: string; secret?: { secretName: string } }[] }
          ).volumes?.find((v) => v.name === mount.name);
          assert.ok(volume?.secret?.secretName, `${where}: the CA volume of ${variable} is not a Secret`);
        }
        if (setName === 'external backends' && uses.has('kafka')) {
          assert.equal(config.kafka.sasl?.mechanism, 'scram-sha-512', `${where}: SASL from the values`);
          assert.ok(config.kafka.tls?.caFile, `${where}: TLS with the CA from the values`);
        }
        if (setName === 'TLS listeners' && role !== 'migrate') {
          assert.ok(config.tls, `${where}: TLS on the listeners from the values`);
          const grpcServer = role === 'ingest' || role === 'query';
          assert.equal(
            config.tls.clientCaFile !== undefined,
            grpcServer,
            `${where}: client CA on gRPC servers only`,
          );
          if (role === 'gateway')
            assert.ok(
              config.grpcClientTls?.certFile && config.grpcClientTls.caFile,
              `${where}: mTLS to ingest and query`,
            );
        }
        if (setName === 'external backends' && uses.has('redis')) {
          assert.equal(config.redis.auth?.username, 'tally', `${where}: the Redis ACL user from the values`);
          assert.ok(config.redis.tls?.caFile, `${where}: Redis TLS with the CA from the values`);
        }
        if (uses.has('redis'))
          assert.ok(config.redis.url || config.redis.clusterNodes.length > 0, `${where}: needs Redis`);
        if (uses.has('postgres')) assert.ok(config.pg.url, `${where}: needs TALLY_PG_URL`);
        if (role === 'gateway') {
          for (const [target, addr] of [
            ['ingest', config.grpc.ingestAddr],
            ['query', config.grpc.queryAddr],
          ] as const) {
            if (!byRole.has(target)) continue;
            const service = named(objects, 'Service', byRole.get(target)!.metadata.name);
            const port = (service?.spec as { ports: { port: number }[] } | undefined)?.ports[0]?.port;
            // With a headless Service, its DNS name, which lists every ready pod, for the client's
            // round_robin over them; else the ClusterIP Service.
            const headless = named(objects, 'Service', `${service?.metadata.name}-headless`);
            assert.equal(
              addr,
              headless ? `dns:///${headless.metadata.name}:${port}` : `${service?.metadata.name}:${port}`,
              `${where}: TALLY_${target.toUpperCase()}_ADDR`,
            );
          }
        }
        if (role !== 'migrate' && uses.has('postgres') && ofKind(objects, 'Job').length > 0)
          assert.equal(config.pg.migrate, false, `${where}: the hook Job migrates, the roles do not`);
      }
    }
  });

  test('every pod given the events topic is given the accepted topic, from kafka.acceptedTopic', () => {
    for (const setName of Object.keys(VALUE_SETS)) {
      const objects = rendered(setName);
      const files = VALUE_SETS[setName]!.files ?? [];
      const accepted = ['values.yaml', ...files]
        .map(
          (f) =>
            (parseYaml(readFileSync(join(CHART, f), 'utf8')) as { kafka?: { acceptedTopic?: string } }).kafka
              ?.acceptedTopic,
        )
        .reduce((last, value) => value ?? last);
      let pods = 0;
      for (const o of [...ofKind(objects, 'Deployment'), ...ofKind(objects, 'Job')]) {
        const container = podSpec(o).containers[0]!;
        const names = new Set((container.env ?? []).map((e) => e.name));
        if (!names.has('TALLY_EVENTS_TOPIC')) continue;
        pods++;
        const where = `${setName}: ${o.kind} ${o.metadata.name}`;
        assert.ok(
          names.has('TALLY_ACCEPTED_TOPIC'),
          `${where}: TALLY_EVENTS_TOPIC without TALLY_ACCEPTED_TOPIC`,
        );
        const config = loadConfig(resolvedEnv(objects, container));
        assert.equal(config.topics.accepted, accepted, `${where}: kafka.acceptedTopic`);
        assert.notEqual(config.topics.accepted, config.topics.events, where);
        // Every process ensures the topics (services/run-roles.ts), the notifications topic too:
        // a pod without the name would create the code's default beside the configured one.
        assert.ok(
          names.has('TALLY_NOTIFICATIONS_TOPIC'),
          `${where}: TALLY_EVENTS_TOPIC without TALLY_NOTIFICATIONS_TOPIC`,
        );
      }
      assert.ok(pods > 0, `${setName}: no pod uses Kafka`);
    }
    // The topics of their own in the external value set reach the pods, not the code's defaults.
    const external = deployments(rendered('external backends')).get('counter')!;
    assert.equal(
      loadConfig(resolvedEnv(rendered('external backends'), podSpec(external).containers[0]!)).topics
        .accepted,
      'staging.events.accepted',
    );
    assert.equal(
      loadConfig(resolvedEnv(rendered('external backends'), podSpec(external).containers[0]!)).topics
        .notifications,
      'staging.notifications',
    );
  });

  test('values.schema.json knows exactly the variables of the config schema', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as {
      $defs: { tallyEnv: { properties: Record<string, unknown> } };
    };
    assert.deepEqual(
      Object.keys(schema.$defs.tallyEnv.properties).sort(),
      [...configVariables].sort(),
      'charts/tally/values.schema.json $defs.tallyEnv lists services/infra/config.ts variables: update it',
    );
  });

  test('the code serves the standard gRPC health service on every gRPC server', () => {
    const health = grpcHealth();
    assert.equal(health.typeName, 'grpc.health.v1.Health', 'the name kubelet and grpc_health_probe call');
    assert.deepEqual(health.methods, ['Check', 'Watch']);
    assert.ok(
      health.servedByEveryServer.includes(health.typeName),
      'GrpcRegistry (every gRPC server of the code) serves grpc.health.v1.Health',
    );
    // The chart's gRPC roles (a `grpc` container port) are those main.ts gives the gRPC server.
    const withGrpcPort = [...deployments(rendered('defaults'))]
      .filter(([, d]) => podSpec(d).containers[0]!.ports?.some((p) => p.name === 'grpc'))
      .map(([role]) => role);
    assert.deepEqual(withGrpcPort.sort(), grpcRoles().sort());
  });

  test("probes ask each role's status server: gRPC health on a gRPC role's gRPC port, else HTTP where the role serves it", async () => {
    const health = grpcHealth();
    const servers = new Set(grpcRoles());
    for (const setName of Object.keys(VALUE_SETS)) {
      const objects = rendered(setName);
      for (const [role, d] of deployments(objects)) {
        const container = podSpec(d).containers[0]!;
        const config = loadConfig(resolvedEnv(objects, container));
        // The gateway serves /healthz and /readyz on its HTTP port; every other role on the metrics port.
        const statusPort = role === 'gateway' ? config.http.port : config.metrics.port;
        const portNumber = (port: string | number) =>
          typeof port === 'number' ? port : container.ports?.find((p) => p.name === port)?.containerPort;
        const where = `${setName}: ${role}`;
        const kinds = [
          ['startupProbe', '/healthz'],
          ['livenessProbe', '/healthz'],
          ['readinessProbe', '/readyz'],
        ] as const;
        // probes.grpc switches a gRPC role's three probes together: on by default, off in 'HTTP probes'.
        // With TLS on the listeners the gRPC roles are probed over HTTPS: the kubelet's gRPC probe has no TLS.
        const grpcProbes = servers.has(role) && setName !== 'HTTP probes' && config.tls === undefined;
        for (const [kind, path] of kinds) {
          const probe = container[kind];
          assert.ok(probe, `${where}: no ${kind}`);
          if (grpcProbes) {
            assert.ok(probe.grpc, `${where}: ${kind} should be a gRPC probe (grpc.health.v1)`);
            assert.equal(probe.httpGet, undefined, `${where}: ${kind}`);
            assert.equal(probe.grpc.port, config.grpc.port, `${where}: ${kind} port is TALLY_GRPC_PORT`);
            assert.equal(portNumber('grpc'), config.grpc.port, `${where}: the container's grpc port`);
            const service = probe.grpc.service ?? '';
            if (service !== '')
              assert.ok(
                [...(await roleGrpcServices(role)), health.typeName].includes(service),
                `${where}: ${kind} asks for ${service}, which ${role} does not serve`,
              );
            continue;
          }
          assert.equal(probe.grpc, undefined, `${where}: ${kind}: ${role} is probed over HTTP`);
          assert.equal(probe.httpGet?.path, path, `${where}: ${kind} path`);
          assert.equal(
            probe.httpGet?.scheme ?? 'HTTP',
            config.tls ? 'HTTPS' : 'HTTP',
            `${where}: ${kind} scheme follows TALLY_TLS_CERT_FILE`,
          );
          assert.equal(portNumber(probe.httpGet!.port), statusPort, `${where}: ${kind} port`);
        }
      }
    }
  });

  test('the probes pass on a running gateway, ingest and counter (embedded backends): HTTP 200, gRPC SERVING', async (t) => {
    const { runRoles: run } = await import('../services/run-roles.ts');
    const { createLogger } = await import('../services/infra/logger.ts');
    let grpcProbes = 0;
    for (const role of ['gateway', 'ingest', 'counter'] as const) {
      const dataDir = mkdtempSync(join(tmpdir(), `tally-probe-${role}-`));
      t.after(() => rmSync(dataDir, { recursive: true, force: true }));
      const config = loadConfig({
        TALLY_DATA_DIR: dataDir,
        TALLY_BIND_HOST: '127.0.0.1',
        TALLY_HTTP_PORT: '0',
        TALLY_GRPC_PORT: '0',
        TALLY_METRICS_PORT: '0',
        TALLY_EVENTS_PARTITIONS: '1',
      });
      const running = await run([role], config, createLogger('error'));
      try {
        for (const setName of ['defaults', 'HTTP probes']) {
          const container = podSpec(deployments(rendered(setName)).get(role)!).containers[0]!;
          for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
            const where = `${setName}: ${role}`;
            if (probe?.grpc) {
              assert.ok(running.grpcPort, `${where}: a gRPC probe, but the process serves no gRPC`);
              const service = probe.grpc.service ?? '';
              assert.equal(
                await grpcHealthCheck(`127.0.0.1:${running.grpcPort}`, service),
                'SERVING',
                `${where}: gRPC health of ${JSON.stringify(service)}`,
              );
              grpcProbes++;
              continue;
            }
            const path = probe?.httpGet?.path;
            assert.ok(path, `${where}: an HTTP probe`);
            const port = role === 'gateway' ? running.httpPort! : running.metricsPort;
            const response = await fetch(`http://127.0.0.1:${port}${path}`);
            assert.equal(response.status, 200, `${where} ${path}`);
            await response.body?.cancel();
          }
        }
      } finally {
        await running.stop();
      }
    }
    assert.equal(grpcProbes, 3, "ingest's three probes are gRPC by default");
  });

  test('pods run locked down: non-root, read-only root, no capabilities, RuntimeDefault seccomp', () => {
    for (const setName of Object.keys(VALUE_SETS)) {
      for (const o of [...ofKind(rendered(setName), 'Deployment'), ...ofKind(rendered(setName), 'Job')]) {
        const spec = podSpec(o);
        const where = `${setName}: ${o.kind} ${o.metadata.name}`;
        assert.equal(spec.securityContext?.runAsNonRoot, true, `${where}: runAsNonRoot`);
        assert.ok((spec.securityContext?.runAsUser ?? 0) > 0, `${where}: runAsUser`);
        assert.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${where}: seccomp`);
        assert.equal(spec.automountServiceAccountToken, false, `${where}: no API token`);
        for (const c of spec.containers) {
          assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
          assert.equal(
            c.securityContext?.allowPrivilegeEscalation,
            false,
            `${where}: allowPrivilegeEscalation`,
          );
          assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${where}: drop ALL`);
          const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
          assert.ok(
            tmp && spec.volumes?.find((v) => v.name === tmp.name)?.emptyDir,
            `${where}: /tmp on an emptyDir`,
          );
        }
      }
    }
  });

  test('termination grace covers the preStop sleep, the drain and its force margin', () => {
    for (const setName of Object.keys(VALUE_SETS)) {
      const objects = rendered(setName);
      for (const [role, d] of deployments(objects)) {
        const spec = podSpec(d);
        const container = spec.containers[0]!;
        const { drainTimeoutMs } = loadConfig(resolvedEnv(objects, container));
        const command = container.lifecycle?.preStop?.exec?.command;
        const sleep = command ? Number(command[1]) : 0;
        if (['gateway', 'ingest', 'query'].includes(role))
          assert.ok(sleep > 0, `${setName}: ${role} sleeps before SIGTERM so that its endpoint leaves first`);
        // main.ts exits on its own at drainTimeoutMs + 5 s.
        assert.ok(
          spec.terminationGracePeriodSeconds! > sleep + drainTimeoutMs / 1000 + 5,
          `${setName}: ${role}: terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} ≤ ${sleep} + ${drainTimeoutMs / 1000} + 5`,
        );
      }
    }
  });

  test('the edge roles get HPAs on CPU, every role a PDB, and autoscaled Deployments leave replicas alone', () => {
    const objects = rendered('defaults');
    const hpas = ofKind(objects, 'HorizontalPodAutoscaler');
    for (const role of ['gateway', 'ingest', 'query']) {
      const hpa = hpas.find((h) => roleOf(h) === role);
      assert.ok(hpa, `${role}: an HPA`);
      const metrics = (hpa.spec as { metrics: { resource: { name: string } }[] }).metrics;
      assert.ok(
        metrics.some((m) => m.resource.name === 'cpu'),
        `${role}: on CPU`,
      );
    }
    assert.equal(hpas.length, 3);
    const pdbs = ofKind(objects, 'PodDisruptionBudget').map(roleOf).sort();
    assert.deepEqual(pdbs, [...ROLES].sort());
    for (const [role, d] of deployments(objects))
      assert.equal(d.spec?.replicas, undefined, `${role}: replicas`);
    const external = deployments(rendered('external backends'));
    assert.equal(external.get('gateway')?.spec?.replicas, 3);
    assert.equal(external.get('persister')?.spec?.replicas, 2);
  });

  test('the migrations run as a pre-install and pre-upgrade hook Job, `tally migrate`', () => {
    for (const setName of ['defaults', 'external backends']) {
      const objects = rendered(setName);
      const job = ofKind(objects, 'Job')[0];
      assert.ok(job, `${setName}: a Job`);
      assert.equal(job.metadata.annotations?.['helm.sh/hook'], 'pre-install,pre-upgrade');
      assert.deepEqual(podSpec(job).containers[0]!.args, ['migrate']);
      const jobSecrets = new Set(
        (podSpec(job).containers[0]!.env ?? []).flatMap((e) =>
          e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef.name] : [],
        ),
      );
      for (const secret of ofKind(objects, 'Secret').filter((s) => jobSecrets.has(s.metadata.name)))
        assert.ok(
          Number(secret.metadata.annotations?.['helm.sh/hook-weight']) <
            Number(job.metadata.annotations?.['helm.sh/hook-weight']),
          `${setName}: Secret ${secret.metadata.name} exists before the Job`,
        );
    }
    assert.equal(ofKind(rendered('one role'), 'Job').length, 0, 'no PostgreSQL role: no migrations');
  });

  test('Services: the gateway on HTTP, ingest and query on gRPC, headless on request', () => {
    const objects = rendered('HA');
    const service = (name: string) =>
      named(objects, 'Service', name)?.spec as
        | { clusterIP?: string; ports: { name: string; targetPort: string }[] }
        | undefined;
    assert.equal(service('tally-gateway')?.ports[0]?.targetPort, 'http');
    for (const role of ['ingest', 'query'])
      assert.equal(service(`tally-${role}`)?.ports[0]?.targetPort, 'grpc');
    assert.equal(service('tally-ingest-headless')?.clusterIP, 'None');
    assert.equal(service('tally-query-headless'), undefined);
  });

  test('bad values are refused, each with a message naming the value', () => {
    const cases: [ValueSet, RegExp][] = [
      [{ set: { 'roles.gatway.enabled': 'false' } }, /additional properties 'gatway' not allowed/],
      [
        { set: { 'roles.counter.keda.lagThreshold': 'lots' } },
        /\/roles\/counter\/keda\/lagThreshold': got string, want integer/,
      ],
      [
        { set: { 'config.env.TALLY_LINGER_MS': '3' } },
        /\/config\/env': additional properties 'TALLY_LINGER_MS' not allowed/,
      ],
      [
        { set: { 'config.env.TALLY_KAFKA_BROKERS': 'k:9092' } },
        /TALLY_KAFKA_BROKERS is set by the chart from its values/,
      ],
      [
        { set: { 'config.env.TALLY_ACCEPTED_TOPIC': 'mine' } },
        /TALLY_ACCEPTED_TOPIC is set by the chart from its values/,
      ],
      // Gone from the code: the sinks no longer remember ids for a window.
      [
        { set: { 'config.env.TALLY_DEDUP_WINDOW_MS': '86400000' } },
        /\/config\/env': additional properties 'TALLY_DEDUP_WINDOW_MS' not allowed/,
      ],
      [
        { set: { 'kafka.acceptedTopic': 'events' } },
        /kafka\.acceptedTopic \(events\) must be a topic of its own/,
      ],
      [
        { set: { 'kafka.acceptedTopic': 'events.dlq' } },
        /kafka\.acceptedTopic \(events\.dlq\) must be a topic of its own/,
      ],
      [{ set: { 'kafka.acceptedTopic': 'no spaces' } }, /\/kafka\/acceptedTopic/],
      [
        { set: { 'kafka.notificationsTopic': 'events.accepted' } },
        /kafka\.notificationsTopic \(events\.accepted\) must be a topic of its own/,
      ],
      [
        { set: { 'config.env.TALLY_NOTIFICATIONS_TOPIC': 'mine' } },
        /TALLY_NOTIFICATIONS_TOPIC is set by the chart from its values/,
      ],
      [{ setJson: { extraEnv: '[{"name":"TALLY_LOG_LEVEL","value":"debug"}]' } }, /\/extraEnv\/0\/name/],
      [
        { set: { 'roles.counter.keda.maxReplicaCount': '13' } },
        /maxReplicaCount \(13\) is above kafka.eventsPartitions \(12\)/,
      ],
      [{ set: { 'kafka.brokers': 'no-port' } }, /\/kafka\/brokers/],
      [{ set: { 'config.ports.http': '70000' } }, /\/config\/ports\/http/],
      [
        { set: { 'postgres.credentialsSecret.name': '' } },
        /need PostgreSQL: set postgres.credentialsSecret.name/,
      ],
      [{ set: { 'redis.clusterNodes': '' } }, /need Redis: set redis.clusterNodes/],
      [{ set: { 'redis.auth.username': 'tally' } }, /\/redis\/auth\/passwordSecret\/name/],
      [
        { set: { 'config.env.TALLY_REDIS_PASSWORD': 'x' } },
        /TALLY_REDIS_PASSWORD is set by the chart from its values/,
      ],
      [{ set: { 'postgres.url': 'mysql://x' } }, /\/postgres\/url/],
      [
        { set: { 'roles.gateway.resources.requests': 'null' } },
        /autoscaling needs roles.gateway.resources.requests.cpu/,
      ],
      [{ set: { 'config.logLevel': 'loud' } }, /\/config\/logLevel/],
      [{ set: { 'image.digest': 'latest' } }, /\/image\/digest/],
    ];
    for (const [values, message] of cases) {
      const result = helmTemplate(helmBinary(), values);
      assert.notEqual(result.status, 0, `accepted: ${JSON.stringify(values)}`);
      assert.match(result.stderr, message, `the message for ${JSON.stringify(values)}`);
    }
  });

  describe('monitoring', () => {
    test('the chart reads observability/ through its `observability` link, not a copy', () => {
      const link = join(CHART, 'observability');
      assert.ok(lstatSync(link).isSymbolicLink(), 'charts/tally/observability must be a symbolic link');
      assert.equal(readlinkSync(link), '../../observability');
    });

    test('the packaged chart holds the rule and dashboard files themselves, and no other sources', (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'tally-chart-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const result = helm(helmBinary(), ['package', CHART, '--destination', dir]);
      assert.equal(result.status, 0, result.stderr);
      const archive = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
      const listing = spawnSync('tar', ['-tzf', join(dir, archive)], { encoding: 'utf8' }).stdout.split('\n');
      const shipped = listing.filter((f) => f.startsWith('tally/observability/')).sort();
      assert.deepEqual(shipped, [
        ...DASHBOARD_FILES.map((f) => `tally/observability/dashboards/json/${f}`),
        ...RULE_FILES.map((f) => `tally/observability/prometheus/${f}`),
      ]);
      assert.deepEqual(
        listing.filter((f) => f.startsWith('tally/ci/')),
        [],
        'the test value sets stay out',
      );
    });

    test('each rules file is a PrometheusRule, unchanged', { skip: MISSING_RULES }, () => {
      const rules = ofKind(rendered('monitoring'), 'PrometheusRule').filter(
        (r) => r.metadata.annotations?.['tally/source'],
      );
      assert.equal(rules.length, RULE_FILES.length);
      for (const file of RULE_FILES) {
        const source = `observability/prometheus/${file}`;
        const rule = rules.find((r) => r.metadata.annotations?.['tally/source'] === source);
        assert.ok(rule, `a PrometheusRule from ${source}`);
        assert.deepEqual(rule.spec, parseYaml(readFileSync(join(REPO, source), 'utf8')), source);
      }
    });

    test('monitoring.prometheusRule.runbookUrl points every alert at that runbook, nothing else changed', {
      skip: MISSING_RULES,
    }, () => {
      const url = 'https://git.example.com/tally/blob/v1.2.0/docs/runbook.md';
      const rules = ofKind(
        renderChart(helmBinary(), {
          ...VALUE_SETS.monitoring,
          set: { ...VALUE_SETS.monitoring!.set, 'monitoring.prometheusRule.runbookUrl': url },
        }),
        'PrometheusRule',
      );
      type Rules = { groups: { rules: { alert?: string; annotations?: Record<string, string> }[] }[] };
      let alerts = 0;
      for (const file of RULE_FILES) {
        const source = `observability/prometheus/${file}`;
        const rule = rules.find((r) => r.metadata.annotations?.['tally/source'] === source);
        assert.ok(rule, `a PrometheusRule from ${source}`);
        const expected = parseYaml(readFileSync(join(REPO, source), 'utf8')) as Rules;
        for (const group of expected.groups)
          for (const r of group.rules) {
            if (!r.annotations?.runbook_url) continue;
            alerts++;
            assert.match(r.annotations.runbook_url, /^docs\/runbook\.md#[a-z0-9-]+$/, `${source} ${r.alert}`);
            r.annotations.runbook_url = r.annotations.runbook_url.replace('docs/runbook.md', url);
          }
        assert.deepEqual(rule.spec, expected, source);
      }
      assert.ok(alerts > 0, 'the rules have alerts with a runbook_url');
      const bad = helmTemplate(helmBinary(), {
        set: { 'monitoring.prometheusRule.runbookUrl': 'runbook.md' },
      });
      assert.notEqual(bad.status, 0, 'a runbookUrl that is no http(s) URL is refused');
      assert.match(bad.stderr, /runbookUrl/);
    });

    test('each dashboard is a ConfigMap for the Grafana sidecar, unchanged', {
      skip: MISSING_DASHBOARDS,
    }, () => {
      const maps = ofKind(rendered('monitoring'), 'ConfigMap');
      assert.equal(maps.length, DASHBOARD_FILES.length);
      for (const file of DASHBOARD_FILES) {
        const map = maps.find((m) => (m as { data?: Record<string, string> }).data?.[file] !== undefined) as
          | (K8sObject & { data: Record<string, string> })
          | undefined;
        assert.ok(map, `a ConfigMap with ${file}`);
        assert.equal(map.metadata.labels?.grafana_dashboard, '1');
        assert.deepEqual(
          JSON.parse(map.data[file]!),
          JSON.parse(readFileSync(join(OBSERVABILITY, 'dashboards', 'json', file), 'utf8')),
        );
      }
    });

    test('the business dashboard ships with its PostgreSQL queries, which the PromQL checks leave out', {
      skip: MISSING_DASHBOARDS,
    }, () => {
      const objects = rendered('monitoring');
      const map = ofKind(objects, 'ConfigMap').find((m) => m.metadata.name === 'tally-dashboard-business') as
        | (K8sObject & { data: Record<string, string> })
        | undefined;
      assert.ok(map, 'a ConfigMap tally-dashboard-business');
      const dashboard = JSON.parse(map.data['tally-business.json']!) as {
        panels: { datasource?: { type?: string }; targets?: { rawSql?: string }[] }[];
      };
      const sqlPanels = dashboard.panels.filter(
        (p) => p.datasource?.type === 'grafana-postgresql-datasource',
      );
      assert.ok(sqlPanels.length > 0, 'PostgreSQL panels');
      for (const p of sqlPanels) assert.match(p.targets?.[0]?.rawSql ?? '', /\bFROM event_summary\b/);
      const promql = promqlOf(objects);
      assert.ok(
        promql.some((e) => e.includes('tally_ingest_events_total{job="tally", namespace=~"$namespace"}')),
      );
      assert.deepEqual(
        promql.filter((e) => /event_summary|SELECT/i.test(e)),
        [],
        'SQL read as PromQL',
      );
      // A panel of another data source is skipped whole, its targets with it.
      const sqlPanel = {
        datasource: { type: 'grafana-postgresql-datasource', uid: 'pg' },
        targets: [{ rawSql: 'SELECT 1', expr: 'tally_not_promql' }],
      };
      const promPanel = { datasource: { type: 'prometheus' }, targets: [{ expr: 'tally_x_total' }] };
      assert.deepEqual(
        promqlOf([
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name: 'd' },
            data: { 'd.json': JSON.stringify({ panels: [sqlPanel, promPanel] }) },
          } as K8sObject,
        ]),
        ['tally_x_total'],
      );
    });

    test('series names are read out of PromQL, strings and labels left out', () => {
      assert.deepEqual(
        seriesNames(
          'sum by (namespace, tally_x) (rate(tally_http_requests_total{job="tally", route=~"tally_y|/v1"}[5m:30s]))' +
            ' / ns:tally_slo:rate5m and on (group) tally_consumer_lag_messages > 0 or label_values(tally_up_total, pod)',
        ),
        ['tally_http_requests_total', 'ns:tally_slo:rate5m', 'tally_consumer_lag_messages', 'tally_up_total'],
      );
    });

    test('every metric the shipped rules and dashboards name is one the code exports', {
      skip: MISSING_RULES && MISSING_DASHBOARDS,
    }, () => {
      const objects = rendered('monitoring');
      const expressions = promqlOf(objects);
      assert.ok(expressions.length > 0);
      const recorded = new Set(
        ofKind(objects, 'PrometheusRule').flatMap((r) =>
          (r.spec as { groups: { rules: { record?: string }[] }[] }).groups.flatMap((g) =>
            g.rules.flatMap((rule) => (rule.record ? [rule.record] : [])),
          ),
        ),
      );
      const exported = exportedSeries();
      const unknown = new Set<string>();
      for (const expr of expressions) {
        for (const name of seriesNames(expr)) {
          if (name.includes(':')) {
            if (!recorded.has(name)) unknown.add(`${name} (no rule records it)`);
          } else if (name.startsWith('tally_') && !exported.has(name))
            unknown.add(`${name} (not in docs/metrics.md)`);
        }
      }
      assert.deepEqual([...unknown], [], 'series the rules and dashboards read but nothing produces');
    });

    test('the ServiceMonitor labels targets with the job the rules and dashboards select, and their role', () => {
      const objects = rendered('monitoring');
      const monitor = ofKind(objects, 'ServiceMonitor')[0];
      assert.ok(monitor);
      const endpoints = (
        monitor.spec as {
          endpoints: {
            port: string;
            relabelings: { targetLabel: string; replacement?: string; sourceLabels?: string[] }[];
          }[];
        }
      ).endpoints;
      const job = endpoints[0]!.relabelings.find((r) => r.targetLabel === 'job')?.replacement;
      const role = endpoints[0]!.relabelings.find((r) => r.targetLabel === 'role')?.sourceLabels;
      assert.deepEqual(role, ['__meta_kubernetes_pod_label_app_kubernetes_io_component']);
      for (const expr of promqlOf(objects))
        for (const m of expr.matchAll(/\bjob\s*=\s*"([^"]*)"/g))
          assert.equal(m[1], job, `job="${m[1]}" in ${expr}`);
      // Every role has a metrics Service the ServiceMonitor selects, on the port it serves /metrics.
      const metricsServices = ofKind(objects, 'Service').filter(
        (s) => s.metadata.labels?.['tally-metrics'] === 'true',
      );
      assert.deepEqual(metricsServices.map(roleOf).sort(), [...ROLES].sort());
      for (const s of metricsServices)
        assert.deepEqual(
          (s.spec as { ports: { name: string }[] }).ports.map((p) => p.name),
          [endpoints[0]!.port],
        );
    });
  });
});

describe('cdk8s platform', () => {
  const sizes = Object.keys(platformSizes) as (keyof typeof platformSizes)[];

  test('every size synthesizes valid objects', async () => {
    for (const size of sizes) {
      const objects = platformObjects(platformSizes[size]) as unknown as K8sObject[];
      assert.deepEqual(await validateAll(objects), [], `${size}: invalid objects`);
      const kinds = objects.map((o) => o.kind).sort();
      for (const kind of ['Cluster', 'Kafka', 'KafkaNodePool', 'KafkaTopic', 'Pooler', 'RedisCluster'])
        assert.ok(kinds.includes(kind), `${size}: a ${kind}`);
      // The namespace is created before the operators, and outlives the platform (docs/deploy.md).
      assert.ok(!kinds.includes('Namespace'), `${size}: no Namespace among the platform's objects`);
    }
  });

  test('the committed cdk8s/dist is what a fresh synth gives', () => {
    for (const size of sizes) {
      const file = distFile(DIST_DIR, size);
      assert.ok(existsSync(file), `${file} is missing: run node cdk8s/main.ts`);
      assert.equal(
        readFileSync(file, 'utf8'),
        platformFile(size),
        `${file} is stale: run node cdk8s/main.ts`,
      );
      assert.deepEqual(parseManifests(readFileSync(file, 'utf8')), platformObjects(platformSizes[size]));
    }
  });

  test('topics, KRaft, PostgreSQL replicas and a 3-master Redis Cluster, from the configuration', () => {
    const defaults = loadConfig({});
    for (const size of sizes) {
      const config = platformSizes[size];
      const objects = platformObjects(config) as unknown as K8sObject[];
      const topics = ofKind(objects, 'KafkaTopic').map(
        (t) => t.spec as { topicName: string; partitions: number; config: Record<string, unknown> },
      );
      assert.deepEqual(
        topics.map((t) => t.topicName).sort(),
        [
          defaults.topics.events,
          defaults.topics.accepted,
          defaults.topics.dlq,
          defaults.topics.notifications,
        ].sort(),
      );
      const partitions = (name: string) => topics.find((t) => t.topicName === name)?.partitions;
      const retention = (name: string) => topics.find((t) => t.topicName === name)?.config['retention.ms'];
      assert.equal(partitions(defaults.topics.events), config.kafka.topics.events.partitions, size);
      assert.equal(
        partitions(defaults.topics.dlq),
        partitions(defaults.topics.events),
        `${size}: dead letters as the events`,
      );
      // The persister forwards partition p to partition p, and refuses fewer partitions.
      assert.equal(
        partitions(defaults.topics.accepted),
        partitions(defaults.topics.events),
        `${size}: the accepted topic's partitions are the events topic's`,
      );
      assert.equal(
        retention(defaults.topics.accepted),
        retention(defaults.topics.events),
        `${size}: the accepted topic kept as long as the events`,
      );
      for (const t of ofKind(objects, 'KafkaTopic'))
        assert.equal(t.metadata.labels?.['strimzi.io/cluster'], config.kafka.name);
      const pools = ofKind(objects, 'KafkaNodePool').flatMap((p) => (p.spec as { roles: string[] }).roles);
      assert.ok(
        pools.includes('controller') && pools.includes('broker'),
        `${size}: KRaft controllers and brokers`,
      );
      const spec = <T>(kind: string, name: string) => named(objects, kind, name)?.spec as T | undefined;
      assert.equal(
        spec<{ kafka: { version: string } }>('Kafka', config.kafka.name)?.kafka.version,
        localKafkaVersion(),
      );
      assert.ok((spec<{ instances: number }>('Cluster', config.postgres.name)?.instances ?? 0) >= 2);
      assert.equal(spec<{ clusterSize: number }>('RedisCluster', config.redis.name)?.clusterSize, 3);
    }
  });

  test('a size whose accepted topic has fewer partitions than the events topic is refused', () => {
    const dev = platformSizes.dev;
    const topics = dev.kafka.topics;
    const fewer = {
      ...dev,
      kafka: {
        ...dev.kafka,
        topics: { ...topics, accepted: { ...topics.accepted, partitions: topics.events.partitions - 1 } },
      },
    };
    assert.throws(
      () => platformObjects(fewer),
      /accepted has 11 partitions, fewer than the events topic's 12/,
    );
  });

  test("the chart's backend values name the platform's Services and Secret", needsHelm, () => {
    const values = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as {
      kafka: {
        brokers: string;
        eventsTopic: string;
        acceptedTopic: string;
        dlqTopic: string;
        notificationsTopic: string;
        eventsPartitions: number;
      };
      redis: { clusterNodes: string };
      postgres: { host: string; readHost: string; credentialsSecret: { name: string }; database: string };
    };
    const dev = platformSizes.dev;
    assert.equal(values.kafka.brokers, `${dev.kafka.name}-kafka-bootstrap:9092`);
    assert.equal(values.kafka.eventsTopic, dev.kafka.topics.events.name);
    assert.equal(values.kafka.acceptedTopic, dev.kafka.topics.accepted.name);
    assert.equal(values.kafka.dlqTopic, dev.kafka.topics.dlq.name);
    assert.equal(values.kafka.notificationsTopic, dev.kafka.topics.notifications.name);
    assert.equal(values.kafka.eventsPartitions, dev.kafka.topics.events.partitions);
    assert.equal(values.redis.clusterNodes, `${dev.redis.name}-leader:6379`);
    // Through the PgBouncer poolers, in front of the primary and of the replicas.
    assert.equal(values.postgres.host, `${dev.postgres.name}-pooler-rw`);
    assert.equal(values.postgres.readHost, `${dev.postgres.name}-pooler-ro`, 'reads go to the replicas');
    assert.equal(values.postgres.credentialsSecret.name, `${dev.postgres.name}-app`);
    assert.equal(values.postgres.database, dev.postgres.database);
    const ha = parseYaml(readFileSync(join(CHART, 'ci', 'ha-values.yaml'), 'utf8')) as {
      kafka: { eventsPartitions: number };
    };
    assert.equal(ha.kafka.eventsPartitions, platformSizes.prod.kafka.topics.events.partitions);
    // The rendered environment agrees with the platform's namespace: same-namespace Service names.
    const gateway = deployments(rendered('dev')).get('gateway')!;
    assert.equal(gateway.metadata.namespace, dev.namespace);
  });
});

describe('skaffold.yaml', () => {
  const docs = parseManifests(readFileSync(join(REPO, 'skaffold.yaml'), 'utf8')) as unknown as Record<
    string,
    unknown
  >[];

  test('is valid against the skaffold/v4beta14 schema', () => {
    const validate = vendoredSchema('skaffold/v4beta14');
    for (const doc of docs) {
      assert.equal(doc.apiVersion, 'skaffold/v4beta14');
      assert.ok(
        validate(doc),
        `${(doc.metadata as { name: string }).name}: ${ajvErrors(validate).join('\n')}`,
      );
    }
  });

  test(
    'builds the Dockerfile, applies the dev platform, then the release, and forwards the gateway',
    needsHelm,
    () => {
      const byName = new Map(docs.map((d) => [(d.metadata as { name: string }).name, d]));
      const platform = byName.get('platform') as { manifests: { rawYaml: string[] } };
      assert.deepEqual(platform.manifests.rawYaml, ['cdk8s/dist/dev/platform.k8s.yaml']);
      for (const f of platform.manifests.rawYaml) assert.ok(existsSync(join(REPO, f)), f);
      const tally = byName.get('tally') as {
        requires: { configs: string[] }[];
        build: { artifacts: { image: string; docker: { dockerfile: string } }[] };
        deploy: {
          helm: { releases: { name: string; chartPath: string; namespace: string; valuesFiles: string[] }[] };
        };
        portForward: { resourceType: string; resourceName: string; namespace: string; port: number }[];
        profiles: { name: string }[];
      };
      assert.deepEqual(tally.requires[0]!.configs, ['platform'], 'the platform is deployed first');
      assert.ok(existsSync(join(REPO, tally.build.artifacts[0]!.docker.dockerfile)));
      const release = tally.deploy.helm.releases[0]!;
      assert.ok(existsSync(join(REPO, release.chartPath, 'Chart.yaml')));
      for (const f of release.valuesFiles) assert.ok(existsSync(join(REPO, f)), f);
      assert.equal(release.namespace, platformSizes.dev.namespace);
      assert.deepEqual(tally.profiles.map((p) => p.name).sort(), ['kind', 'minikube']);
      // The forwarded Service is the release's gateway Service, on its port.
      const objects = renderChart(helmBinary(), {
        files: release.valuesFiles.map((f) => f.replace('charts/tally/', '')),
      });
      const forward = tally.portForward[0]!;
      const gateway = named(objects, 'Service', forward.resourceName);
      assert.ok(gateway, `Service ${forward.resourceName}`);
      assert.equal((gateway.spec as { ports: { port: number }[] }).ports[0]!.port, forward.port);
      assert.equal(release.name, 'tally', 'the Service names above are for release `tally`');
    },
  );
});
