/**
 * What the code says about roles, consumer groups, backends and metrics, read from its sources of
 * truth (the role table in services/roles.ts, services/pipeline/, docs/metrics.md) so that the deployment tests fail when
 * the chart no longer matches the code.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Port } from '../../services/backends.ts';
import { Health } from '../../services/gen/grpc/health/v1/health_pb.js';
import { GrpcRegistry } from '../../services/infra/grpc/grpc-registry.ts';
import { createLogger } from '../../services/infra/logger.ts';
import { ROLE_TABLE, ROLES, type RoleSpec } from '../../services/roles.ts';
import { REPO } from './manifests.ts';

export { configVariables, loadConfig } from '../../services/infra/config.ts';
export { ROLES };

export interface ConsumerFacts {
  /** The consumer group before TALLY_GROUP_PREFIX. */
  group: string;
  /**
   * The topic the role consumes, by its name in `config.topics`: `events` (TALLY_EVENTS_TOPIC) or
   * `accepted` (TALLY_ACCEPTED_TOPIC, what the persister forwards), or `deliveries` (every enabled
   * destination's topic, `<prefix>deliveries.<id>`: a set that changes).
   */
  topic: 'events' | 'accepted' | 'deliveries';
}

/** The consumer roles, their groups and topics, from the role table (services/roles.ts). */
export function consumerRoles(): Map<string, ConsumerFacts> {
  const consumers = new Map<string, ConsumerFacts>();
  for (const role of ROLES) {
    const spec: RoleSpec = ROLE_TABLE[role];
    if (spec.kind !== 'consumer' || !spec.group) continue;
    if (!spec.topic) throw new Error(`services/roles.ts: consumer role ${role} names no topic`);
    consumers.set(role, { group: spec.group, topic: spec.topic });
  }
  return consumers;
}

export type Backend = 'kafka' | 'redis' | 'postgres';

/** Which backends each role opens: the ports of its row in the role table. */
export function roleBackends(): Map<string, Set<Backend>> {
  const backends: Record<Port, Backend> = {
    log: 'kafka',
    counters: 'redis',
    sql: 'postgres',
    alerts: 'redis',
    aggregates: 'redis',
    breakers: 'redis',
  };
  return new Map(ROLES.map((r) => [r, new Set(ROLE_TABLE[r].ports.map((p) => backends[p]))]));
}

/** Whether the consumer loop that every consumer role uses starts a new group at the earliest offset. */
export function consumersReadFromBeginning(): boolean {
  const loop = readFileSync(join(REPO, 'services', 'pipeline', 'event-consumer.ts'), 'utf8');
  return /log\.consumer\(\{[^}]*fromBeginning: true/.test(loop);
}

/** Whether the consumer roles' modules start their consumer through that loop (directly or as a sink role). */
export function roleUsesEventConsumer(role: string): boolean {
  const source = readFileSync(join(REPO, 'services', role, `${role}.ts`), 'utf8');
  return source.includes('startEventConsumer(') || source.includes('startSinkRole(');
}

/** The roles whose row in the role table is of kind `grpc`: those the process's gRPC server serves. */
export function grpcRoles(): string[] {
  return ROLES.filter((role) => ROLE_TABLE[role].kind === 'grpc');
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
