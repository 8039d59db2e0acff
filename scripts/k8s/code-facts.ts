/**
 * What the code says about roles, consumer groups, backends and metrics, read from its sources of
 * truth (services/main.ts, services/infra/, docs/metrics.md) so that the deployment tests fail when
 * the chart no longer matches the code.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Health } from '../../services/gen/grpc/health/v1/health_pb.js';
import { GrpcRegistry } from '../../services/infra/grpc/grpc-registry.ts';
import { createLogger } from '../../services/infra/logger.ts';
import { ROLES } from '../../services/main.ts';
import { REPO } from './manifests.ts';

export { configVariables, loadConfig } from '../../services/infra/config.ts';
export { ROLES };

const MAIN = readFileSync(join(REPO, 'services', 'main.ts'), 'utf8');
/** main.ts's `run`, which starts the roles. */
const RUN = (() => {
  const start = MAIN.indexOf('export async function run(');
  const end = MAIN.indexOf('\nasync function ', start);
  if (start < 0 || end < 0)
    throw new Error('main.ts: no `export async function run(` followed by another function');
  return MAIN.slice(start, end);
})();

/** A role's block in `run`: from `if (has('<role>'))` to the next such test or the end of `run`. */
function roleBlock(role: string): string | undefined {
  const start = RUN.indexOf(`if (has('${role}'))`);
  if (start < 0) return undefined;
  const next = RUN.indexOf('if (has(', start + 1);
  return RUN.slice(start, next < 0 ? undefined : next);
}

export interface ConsumerFacts {
  /** The consumer group before TALLY_GROUP_PREFIX. */
  group: string;
  /** Whether the role consumes `config.topics.events` (TALLY_EVENTS_TOPIC). */
  readsEventsTopic: boolean;
}

/**
 * The consumer roles and their groups, as main.ts starts them: a role whose block passes
 * `groupId: \`${config.groupPrefix}<group>\``.
 */
export function consumerRoles(): Map<string, ConsumerFacts> {
  const consumers = new Map<string, ConsumerFacts>();
  const eventsTopicInBase = /const consumerBase = \{[^}]*eventsTopic: config\.topics\.events/.test(RUN);
  for (const role of ROLES) {
    const block = roleBlock(role);
    const group = block && /groupId: `\$\{config\.groupPrefix\}([A-Za-z0-9._-]+)`/.exec(block)?.[1];
    if (block && group)
      consumers.set(role, {
        group,
        readsEventsTopic: eventsTopicInBase && block.includes('...consumerBase'),
      });
  }
  return consumers;
}

export type Backend = 'kafka' | 'redis' | 'postgres';

/** Which backends each role opens, from main.ts's `openBackends` (`const logUsers = uses(…)`, …). */
export function roleBackends(): Map<string, Set<Backend>> {
  const ports: Record<string, Backend> = { log: 'kafka', counter: 'redis', sql: 'postgres' };
  const backends = new Map<string, Set<Backend>>(ROLES.map((r) => [r, new Set<Backend>()]));
  let found = 0;
  for (const m of MAIN.matchAll(/const (log|counter|sql)Users = uses\(([^)]*)\)/g)) {
    found++;
    for (const role of m[2]!.matchAll(/'([a-z]+)'/g)) backends.get(role[1]!)?.add(ports[m[1]!]!);
  }
  if (found !== 3)
    throw new Error(`main.ts: expected logUsers, counterUsers and sqlUsers in openBackends, found ${found}`);
  return backends;
}

/** Whether the consumer loop that every consumer role uses starts a new group at the earliest offset. */
export function consumersReadFromBeginning(): boolean {
  const loop = readFileSync(join(REPO, 'services', 'infra', 'event-consumer.ts'), 'utf8');
  return /log\.consumer\(\{[^}]*fromBeginning: true/.test(loop);
}

/** Whether the consumer roles' modules start their consumer through that loop. */
export function roleUsesEventConsumer(role: string): boolean {
  const source = readFileSync(join(REPO, 'services', role, `${role}.ts`), 'utf8');
  return source.includes('startEventConsumer(');
}

/** The roles main.ts gives the process's gRPC server (`grpc: registry` in their block): the gRPC roles. */
export function grpcRoles(): string[] {
  return ROLES.filter((role) => roleBlock(role)?.includes('grpc: registry'));
}

/**
 * The full names of the gRPC services a role's module registers (`deps.grpc.register(XService, …)`),
 * looked up among the generated services.
 */
export async function roleGrpcServices(role: string): Promise<string[]> {
  const source = readFileSync(join(REPO, 'services', role, `${role}.ts`), 'utf8');
  const names = [...source.matchAll(/\.grpc\.register\(\s*([A-Za-z0-9_]+)\s*,/g)].map((m) => m[1]!);
  const generated = new Map<string, string>();
  for (const path of generatedModules(join(REPO, 'services', 'gen'))) {
    for (const [name, value] of Object.entries(await import(path)))
      if ((value as { kind?: string }).kind === 'service')
        generated.set(name, (value as { typeName: string }).typeName);
  }
  return names.map((name) => {
    const typeName = generated.get(name);
    if (!typeName) throw new Error(`services/${role}/${role}.ts registers ${name}, not a generated service`);
    return typeName;
  });
}

function generatedModules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return generatedModules(path);
    return entry.name.endsWith('_pb.js') ? [path] : [];
  });
}

export interface GrpcHealthFacts {
  /** The generated health service's full name and methods, as the wire calls them. */
  typeName: string;
  methods: string[];
  /** The services every gRPC server of the code serves besides the roles' own (GrpcRegistry's). */
  servedByEveryServer: readonly string[];
}

/** The standard gRPC health service as the code generates and registers it. */
export function grpcHealth(): GrpcHealthFacts {
  return {
    typeName: Health.typeName,
    methods: Health.methods.map((m) => m.name),
    servedByEveryServer: new GrpcRegistry(createLogger('error')).serviceNames,
  };
}

/** docs/metrics.md's table: metric name → type (`counter`, `gauge`, `histogram`). */
export function documentedMetrics(): Map<string, string> {
  const doc = readFileSync(join(REPO, 'docs', 'metrics.md'), 'utf8');
  const table = /<!-- metrics-table:start -->([\s\S]*?)<!-- metrics-table:end -->/.exec(doc)?.[1] ?? '';
  return new Map(
    [...table.matchAll(/^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*([a-z]+)\s*\|/gm)].map((m) => [m[1]!, m[2]!]),
  );
}

/** The series names a documented metric exposes (a histogram's `_bucket`, `_sum`, `_count`). */
export function exportedSeries(): Set<string> {
  const series = new Set<string>();
  for (const [name, type] of documentedMetrics()) {
    series.add(name);
    if (type === 'histogram' || type === 'summary')
      for (const suffix of ['_bucket', '_sum', '_count']) series.add(name + suffix);
  }
  return series;
}

/** The default of TALLY_KAFKA_VERSION in scripts/lib.sh: the Kafka the project is tested on. */
export function localKafkaVersion(): string | undefined {
  const lib = readFileSync(join(REPO, 'scripts', 'lib.sh'), 'utf8');
  return /TALLY_KAFKA_VERSION="\$\{TALLY_KAFKA_VERSION:-([0-9.]+)\}"/.exec(lib)?.[1];
}
