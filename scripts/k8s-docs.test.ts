/**
 * docs/deploy.md, the Makefile's k8s-dev and skaffold.yaml held to the manifests: the dev
 * walkthrough's order (namespace, operators, `make k8s-dev`, Ctrl-C, again, a scaled consumer
 * role), every `kubectl` and `helm` command's namespaces and object names against the rendered
 * release and the synthesized platform, the operators' minimum versions, `--timeout` over the
 * migration Job's deadline, and the production steps waiting for every backend.
 *
 * Needs helm (scripts/install-helm.sh) for the release's names: skipped without it, except under CI=true.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { platformObjects } from '../cdk8s/platform.ts';
import { MIN_OPERATOR_VERSIONS, OPERATOR_NAMESPACES, platformSizes } from '../cdk8s/platform-config.ts';
import { CHART, findHelm, RELEASE, renderChart } from './k8s/helm.ts';
import { type K8sObject, parseManifests, REPO } from './k8s/manifests.ts';

const HELM = findHelm();
const needsHelm = { skip: !HELM && process.env.CI !== 'true' ? 'helm is not installed' : false } as const;

const DOC = readFileSync(join(REPO, 'docs', 'deploy.md'), 'utf8');
const NAMESPACE = platformSizes.dev.namespace;
const values = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as {
  migrations: { activeDeadlineSeconds: number };
};

/** A section of the guide: from its heading to the next heading of the same or a higher level (outside code blocks). */
function section(heading: string): string {
  const lines = DOC.split('\n');
  const start = lines.indexOf(heading);
  assert.ok(start >= 0, `docs/deploy.md has no "${heading}"`);
  const level = heading.split(' ')[0]!.length;
  let fenced = false;
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    if (/^\s*```/.test(lines[i]!)) fenced = !fenced;
    const m = /^(#+) /.exec(lines[i]!);
    if (!fenced && m && m[1]!.length <= level) {
      end = i;
      break;
    }
  }
  return lines.slice(start + 1, end).join('\n');
}

/** The shell commands of a text's ```sh blocks, continuation lines joined, comments dropped. */
function commands(text: string): string[] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1]!
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .map((line) => line.replace(/(^|\s)#.*$/, '').trim())
      .filter((line) => line !== ''),
  );
}

/** The words of a command, quotes removed (no shell expansion: these commands need none). */
const words = (command: string) =>
  [...command.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);

/** The value of a command's `-n X`, `--namespace X` or `--namespace=X`. */
function namespaceOf(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-n' || argv[i] === '--namespace') return argv[i + 1];
    if (argv[i]!.startsWith('--namespace=')) return argv[i]!.slice('--namespace='.length);
  }
  return undefined;
}

const KINDS: Record<string, string> = {
  deploy: 'Deployment',
  deployment: 'Deployment',
  deployments: 'Deployment',
  svc: 'Service',
  service: 'Service',
  scaledobject: 'ScaledObject',
  hpa: 'HorizontalPodAutoscaler',
  kafka: 'Kafka',
  'kafka.kafka.strimzi.io': 'Kafka',
  'kafkauser.kafka.strimzi.io': 'KafkaUser',
  'kafkatopic.kafka.strimzi.io': 'KafkaTopic',
  'cluster.postgresql.cnpg.io': 'Cluster',
  'rediscluster.redis.redis.opstreelabs.in': 'RedisCluster',
  secret: 'Secret',
};

/**
 * What a namespace of the platform holds, by kind: the release (dev values, release `tally`), both
 * platform sizes, and what the operators make from them (a Deployment per Pooler, an HPA per
 * ScaledObject, the Secrets the prod size reads).
 */
function knownObjects(release: K8sObject[], readers: K8sObject[] = release): Map<string, Set<string>> {
  const known = new Map<string, Set<string>>();
  const add = (kind: string, name: string) => {
    if (!known.has(kind)) known.set(kind, new Set());
    known.get(kind)!.add(name);
  };
  const platform = Object.values(platformSizes).flatMap((c) => platformObjects(c) as unknown as K8sObject[]);
  for (const o of [...release, ...platform]) add(o.kind, o.metadata.name);
  // The Secrets of yours that the release reads (the bootstrap admin key, with the default values).
  for (const [, name] of JSON.stringify(readers).matchAll(/"secretKeyRef":\{"name":"([^"]+)"/g))
    add('Secret', name!);
  for (const p of platform.filter((o) => o.kind === 'Pooler')) add('Deployment', p.metadata.name);
  for (const s of release.filter((o) => o.kind === 'ScaledObject'))
    add('HorizontalPodAutoscaler', `keda-hpa-${s.metadata.name}`);
  const prod = platformSizes.prod;
  if (prod.redis.passwordSecret) add('Secret', prod.redis.passwordSecret.name);
  if (prod.kafka.authentication.type === 'scram-sha-512') add('Secret', prod.kafka.authentication.user);
  return known;
}

/** Strimzi's pod names: <kafka>-<pool>-<n>. */
const brokerPod = (name: string) =>
  Object.values(platformSizes).some((c) =>
    c.kafka.pools.some((p) => new RegExp(`^${c.kafka.name}-${p.name}-\\d+$`).test(name)),
  );

/** Problems of one kubectl command: a namespace that is not the platform's or an operator's, an unknown object. */
function checkKubectl(command: string, known: Map<string, Set<string>>): string[] {
  const all = words(command);
  if (all[0] !== 'kubectl') return [];
  // The command's words without the namespace flag: kubectl <verb> …
  const argv = all.filter(
    (_, i) => !['-n', '--namespace'].includes(all[i]!) && !['-n', '--namespace'].includes(all[i - 1]!),
  );
  const problems: string[] = [];
  const ns = namespaceOf(all);
  const operatorNamespaces = Object.values(OPERATOR_NAMESPACES) as string[];
  if (ns !== undefined && ns !== NAMESPACE && !operatorNamespaces.includes(ns))
    problems.push(`namespace ${ns} is neither the platform's (${NAMESPACE}) nor an operator's`);
  const verb = argv[1];
  if (verb === 'create' && argv[2] === 'namespace' && argv[3] !== NAMESPACE)
    problems.push(`creates namespace ${argv[3]}, not ${NAMESPACE}`);
  if (verb === 'create' && argv[2] === 'secret' && !known.get('Secret')?.has(argv[4]!))
    problems.push(`creates Secret ${argv[4]}, which nothing reads`);
  const execIn =
    verb === 'exec' ? argv.find((a, i) => i > 1 && !a.startsWith('-') && argv[i - 1] !== '-n')! : '';
  const releaseDeployment = /^deploy\/(.+)$/.exec(execIn)?.[1];
  if (releaseDeployment !== undefined && !known.get('Deployment')?.has(releaseDeployment))
    problems.push(`execs in deploy/${releaseDeployment}, not a Deployment of the release`);
  if (verb === 'exec' && releaseDeployment === undefined && !brokerPod(execIn))
    problems.push(
      'execs in a pod that is neither a Kafka broker of the platform nor a Deployment of the release',
    );
  const lookup = (kindWord: string, name: string) => {
    const kind = KINDS[kindWord.toLowerCase()];
    if (!kind) problems.push(`unknown kind ${kindWord}`);
    else if (!known.get(kind)?.has(name)) problems.push(`no ${kind} ${name} in the release or the platform`);
  };
  for (const arg of argv.slice(2)) {
    const m = /^([a-z][a-z0-9.]*)\/([a-z0-9-]+)$/.exec(arg);
    if (m && !arg.startsWith('--')) lookup(m[1]!, m[2]!);
  }
  if (verb === 'get' && KINDS[argv[2] ?? ''])
    for (const name of argv.slice(3)) {
      if (name.startsWith('-')) break;
      lookup(argv[2]!, name);
    }
  return problems.map((p) => `${command}: ${p}`);
}

describe('docs/deploy.md', needsHelm, () => {
  const release = () => renderChart(HELM!, { files: ['values-dev.yaml'] });
  /**
   * What the release reads with the default values and with ci/auth-values.yaml, access control on:
   * the Secrets the guide has you create (the bootstrap admin key, the metrics token).
   */
  const readers = () => [
    ...release(),
    ...renderChart(HELM!, {}),
    ...renderChart(HELM!, { files: ['ci/auth-values.yaml'] }),
  ];

  test('every kubectl command names the platform’s namespace and objects the release and platform have', () => {
    const known = knownObjects(release(), readers());
    const all = commands(DOC);
    assert.ok(all.filter((c) => c.startsWith('kubectl')).length >= 10, 'the guide’s kubectl commands');
    assert.deepEqual(
      all.flatMap((c) => checkKubectl(c, known)),
      [],
    );
    // The same checker finds a wrong name.
    assert.notDeepEqual(checkKubectl('kubectl -n tally get deployment tally-counterr', known), []);
    assert.notDeepEqual(checkKubectl('kubectl -n talley get deployment tally-counter', known), []);
    assert.notDeepEqual(
      checkKubectl('kubectl -n tally exec deploy/tally-qeury -- tally keys list', known),
      [],
    );
    assert.notDeepEqual(
      checkKubectl('kubectl -n tally create secret generic tally-admn --from-literal=key=x', known),
      [],
    );
  });

  test('the dev walkthrough: namespace, operators, make k8s-dev, Ctrl-C, again, a scaled consumer role', () => {
    const dev = section('## Development on kind or minikube');
    const steps = commands(dev);
    const at = (predicate: (c: string) => boolean, what: string) => {
      const i = steps.findIndex(predicate);
      assert.ok(i >= 0, `the walkthrough has ${what}`);
      return i;
    };
    at((c) => c.startsWith('kind create cluster'), 'kind create cluster');
    assert.match(dev, /minikube start/, 'and minikube');
    const namespace = at(
      (c) => c === `kubectl create namespace ${NAMESPACE}`,
      `kubectl create namespace ${NAMESPACE}`,
    );
    const strimzi = at((c) => /helm upgrade --install strimzi /.test(c), 'the Strimzi install');
    assert.ok(namespace < strimzi, 'the namespace exists before Strimzi is installed to watch it');
    assert.ok(
      steps[strimzi]!.includes(`watchNamespaces={${NAMESPACE}}`),
      'Strimzi watches the platform’s namespace',
    );
    for (const [release, ns] of [
      ['strimzi', OPERATOR_NAMESPACES.strimzi],
      ['cnpg', OPERATOR_NAMESPACES.cnpg],
      ['redis-operator', OPERATOR_NAMESPACES.redis],
      ['keda', OPERATOR_NAMESPACES.keda],
    ] as const) {
      const i = at((c) => c.startsWith(`helm upgrade --install ${release} `), `the ${release} install`);
      assert.equal(namespaceOf(words(steps[i]!)), ns, `${release} in ${ns}`);
    }
    const make = at((c) => c === 'make k8s-dev', 'make k8s-dev');
    const scaled = at((c) => /^kubectl -n \S+ get scaledobject /.test(c), 'the ScaledObjects');
    at((c) => /^kubectl -n \S+ get hpa keda-hpa-/.test(c), "KEDA's HPA");
    assert.ok(make < scaled);
    // Ctrl-C, then make k8s-dev again, as numbered steps after the first run.
    const ctrlC = dev.indexOf('Ctrl-C in the `make k8s-dev` terminal');
    assert.ok(ctrlC > dev.indexOf('make k8s-dev'), 'Ctrl-C after the first run');
    assert.ok(dev.indexOf('`make k8s-dev` again', ctrlC) > ctrlC, 'then make k8s-dev again');
  });

  test('make k8s-dev creates the namespace outside the platform, and skaffold never deletes it', () => {
    const makefile = readFileSync(join(REPO, 'Makefile'), 'utf8');
    const recipe = /^k8s-dev:.*\n((?:\t.*\n)+)/m.exec(makefile)?.[1] ?? '';
    const lines = recipe.split('\n').map((l) => l.trim());
    const create = lines.findIndex(
      (l) => l.startsWith(`kubectl create namespace ${NAMESPACE} `) && l.includes('kubectl apply -f -'),
    );
    const skaffold = lines.findIndex((l) => /\bskaffold dev\b/.test(l));
    assert.ok(
      create >= 0 && create < skaffold,
      'the recipe creates the namespace (idempotently) before skaffold dev',
    );
    const configs = parseManifests(readFileSync(join(REPO, 'skaffold.yaml'), 'utf8')) as unknown as {
      manifests?: { rawYaml?: string[] };
      deploy?: {
        helm?: {
          releases: { createNamespace?: boolean }[];
          flags?: { install?: string[]; upgrade?: string[] };
        };
        kubectl?: { hooks?: { after?: { host: { command: string[] } }[] } };
      };
    }[];
    for (const config of configs) {
      for (const file of config.manifests?.rawYaml ?? [])
        for (const o of parseManifests(readFileSync(join(REPO, file), 'utf8')))
          assert.notEqual(o.kind, 'Namespace', `${file}: skaffold's cleanup would delete the namespace`);
      for (const r of config.deploy?.helm?.releases ?? []) assert.notEqual(r.createNamespace, true);
      const flags = config.deploy?.helm?.flags;
      if (config.deploy?.helm)
        for (const phase of ['install', 'upgrade'] as const)
          assert.ok(
            timeoutSeconds(flags?.[phase] ?? []) > values.migrations.activeDeadlineSeconds,
            `skaffold's helm ${phase} --timeout`,
          );
      // skaffold's own waits name the platform's objects.
      const known = knownObjects(release());
      for (const hook of config.deploy?.kubectl?.hooks?.after ?? [])
        for (const c of hook.host.command
          .at(-1)!
          .split('&&')
          .map((s) => s.trim()))
          assert.deepEqual(checkKubectl(c, known), []);
    }
  });

  test('production waits for every backend before installing, with a --timeout over the migration deadline', () => {
    const prod = section('## Production');
    const steps = commands(prod);
    const install = steps.findIndex((c) => c.startsWith(`helm upgrade --install ${RELEASE} charts/tally`));
    assert.ok(install >= 0, 'the release install');
    const argv = words(steps[install]!);
    assert.equal(namespaceOf(argv), platformSizes.prod.namespace);
    assert.ok(
      timeoutSeconds(argv) > values.migrations.activeDeadlineSeconds,
      '--timeout over activeDeadlineSeconds',
    );
    for (const f of argv.filter((_, i) => argv[i - 1] === '--values'))
      if (f.startsWith('charts/')) assert.ok(existsSync(join(REPO, f)), f);
    const before = steps.slice(0, install).join('\n');
    const platform = platformObjects(platformSizes.prod) as unknown as K8sObject[];
    // The topics too: the prod user may not create them, and the accepted topic is new to a
    // release upgraded from a version without it.
    for (const o of platform.filter((p) =>
      ['Kafka', 'KafkaUser', 'KafkaTopic', 'Cluster', 'RedisCluster', 'Pooler'].includes(p.kind),
    )) {
      // The whole name: `events` is not waited for by a wait on `events-accepted`.
      const waited =
        o.kind === 'Pooler'
          ? new RegExp(`rollout status [^\\n]*deployment/${o.metadata.name}(?![\\w-])`)
          : new RegExp(`wait [^\\n]*${o.kind.toLowerCase()}\\.[a-z.]+/${o.metadata.name}(?![\\w-])`);
      assert.match(before, waited, `waits for ${o.kind} ${o.metadata.name} before the release`);
    }
    assert.match(
      before,
      /--for=jsonpath='\{\.status\.state\}'=Ready rediscluster/,
      'Redis readiness by its state',
    );
  });

  test('the operators’ minimum versions are the ones the platform is written for', () => {
    const rows = new Map(
      [...section('## Prerequisites').matchAll(/^ *\| ([A-Za-z -]+?) +\| (\d+\.\d+\.\d+) +\|/gm)].map((m) => [
        m[1]!,
        m[2]!,
      ]),
    );
    assert.deepEqual(Object.fromEntries(rows), {
      Strimzi: MIN_OPERATOR_VERSIONS.strimzi,
      CloudNativePG: MIN_OPERATOR_VERSIONS.cnpg,
      'OT redis-operator': MIN_OPERATOR_VERSIONS.redisOperator,
      KEDA: MIN_OPERATOR_VERSIONS.keda,
    });
    const keda = MIN_OPERATOR_VERSIONS.keda.split('.').slice(0, 2).join('.');
    assert.match(section('## Autoscaling'), new RegExp(`KEDA ${keda.replace('.', '\\.')} or newer`));
    assert.match(
      readFileSync(join(CHART, 'values.yaml'), 'utf8'),
      new RegExp(`Needs KEDA ${keda.replace('.', '\\.')} or newer`),
    );
  });

  test('the topics: each one the platform’s user may use, and the accepted topic’s partitions and triggers', () => {
    const prod = platformObjects(platformSizes.prod) as unknown as K8sObject[];
    const acls = prod
      .filter((o) => o.kind === 'KafkaUser')
      .flatMap(
        (u) =>
          (
            u.spec as {
              authorization: { acls: { resource: { type: string; name?: string; patternType?: string } }[] };
            }
          ).authorization.acls,
      )
      .filter((a) => a.resource.type === 'topic' && a.resource.patternType === 'literal')
      .map((a) => a.resource.name!);
    const topics = prod
      .filter((o) => o.kind === 'KafkaTopic')
      .map((t) => (t.spec as { topicName: string }).topicName);
    assert.deepEqual(
      [...acls].sort(),
      [...topics].sort(),
      'the user may use every topic the platform declares',
    );
    const closed = section('### Backends closed to other pods');
    for (const topic of topics)
      assert.ok(closed.includes(`\`${topic}\``), `the ACLs as the guide lists them: ${topic}`);
    const accepted = platformSizes.prod.kafka.topics.accepted.name;
    const sizing = section('## Sizing the partitions');
    assert.ok(sizing.includes(`\`${accepted}\``), 'the partition rule names the accepted topic');
    assert.match(sizing, /at least as many partitions as the events topic/);
    assert.match(sizing, /accepted topic first, then to the events\s+topic/);
    const autoscaling = section('## Autoscaling');
    assert.match(autoscaling, /the accepted topic \(`kafka\.acceptedTopic`/, 'the triggers’ topics');
    const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
    assert.ok(
      readme.includes(`\`${accepted}\``) && readme.includes('kafka.acceptedTopic'),
      'the chart’s README',
    );
  });

  test('the live feed’s consumer groups are documented by the name the code gives them', () => {
    const main = readFileSync(join(REPO, 'services', 'roles.ts'), 'utf8'); // the role table wires the gateway
    const prefix = /groupId: `\$\{config\.groupPrefix\}([a-z-]+)\$\{/.exec(main)?.[1];
    assert.ok(prefix, 'the role table names the live feed’s group');
    const live = section("### The gateway's live feed");
    assert.ok(live.includes(`<groupPrefix>${prefix}<pod>-<pid>`), `the guide names ${prefix}<pod>-<pid>`);
    assert.match(live, /offsets\.retention\.minutes/);
    assert.match(live, new RegExp(`--delete --group ${prefix}`));
  });
});

/** Seconds of a `--timeout <duration>` among a command's words (0 when absent). */
function timeoutSeconds(argv: readonly string[]): number {
  const i = argv.indexOf('--timeout');
  const value =
    i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--timeout='))?.slice('--timeout='.length);
  const m = /^(\d+)(s|m|h)$/.exec(value ?? '');
  return m ? Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'] : 0;
}
