/**
 * Test support: a client of a running tally (REST and gRPC), plus direct
 * views of the sinks (PostgreSQL rows, consumer progress in Kafka).
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { EventSchema } from '../gen/tally/v1/event_pb.js';
import { IngestService } from '../gen/tally/v1/ingest_pb.js';
import { QueryService } from '../gen/tally/v1/query_pb.js';
import { createGrpcClient } from '../infra/grpc/grpc-service.ts';
import type { EventLog } from '../infra/log/event-log.ts';
import { createKafkaEventLog } from '../infra/log/kafka-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { handleProcessWarnings } from '../infra/node-warnings.ts';
import { realServers, type TestNamespace } from './real-servers.ts';

handleProcessWarnings();

export type EventInit = MessageInitShape<typeof EventSchema>;

/** The sink groups, the persister first: the others read what it forwards. */
export const CONSUMER_GROUPS = [
  'group_persistence',
  'group_realtimecounter',
  'group_aggregation',
  'group_alerting',
  'group_routing',
  'group_projection',
] as const;

/** The topic a sink group reads: the persister the events, the others the accepted events. */
export function topicOfGroup(ns: TestNamespace, group: string): string {
  return group === 'group_persistence' ? ns.eventsTopic : ns.acceptedTopic;
}

/** REST helper: JSON in, status and parsed JSON (or text) out. */
export async function http(
  port: number,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown; text: string; headers: Headers }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: response.status, body: parsed, text, headers: response.headers };
}

export function ingestClient(grpcPort: number) {
  return createGrpcClient(IngestService, `127.0.0.1:${grpcPort}`, { defaultTimeoutMs: 30_000 });
}

export function queryClient(grpcPort: number) {
  return createGrpcClient(QueryService, `127.0.0.1:${grpcPort}`, { defaultTimeoutMs: 30_000 });
}

/** Direct access to the namespace's backends, and its clean-up. */
export class Backends {
  readonly pg: pg.Pool;
  readonly log: EventLog;
  readonly redis: Redis;
  readonly ns: TestNamespace;

  constructor(ns: TestNamespace) {
    this.ns = ns;
    this.pg = new pg.Pool({
      connectionString: realServers.pgUrl,
      max: 2,
      options: `-c search_path=${ns.pgSchema}`,
    });
    this.log = createKafkaEventLog({
      brokers: realServers.kafkaBrokers.split(','),
      clientId: 'tally-test',
      produceTimeoutMs: 10_000,
      logger: createLogger('error'),
    });
    this.redis = new Redis(realServers.redisUrl, { maxRetriesPerRequest: 2 });
    this.redis.on('error', () => {}); // a failing command reports its own error
  }

  async rows<R>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.pg.query(sql, params)).rows as R[];
  }

  /**
   * True once every consumer group committed up to the end of the topic it reads. Groups are
   * checked in order, the persister first: once it is caught up, the accepted topic is complete.
   */
  async caughtUp(groups: readonly string[] = CONSUMER_GROUPS): Promise<boolean> {
    for (const group of groups) {
      const topic = topicOfGroup(this.ns, group);
      const end = await this.log.endOffsets(topic);
      const committed = await this.log.committedOffsets(this.ns.groupPrefix + group, topic);
      for (const [partition, offset] of end) {
        if (offset > 0n && (committed.get(partition) ?? 0n) < offset) return false;
      }
    }
    return true;
  }

  async totalEndOffset(): Promise<bigint> {
    let total = 0n;
    for (const offset of (await this.log.endOffsets(this.ns.eventsTopic)).values()) total += offset;
    return total;
  }

  async cleanup(): Promise<void> {
    await this.pg.query(`DROP SCHEMA IF EXISTS ${this.ns.pgSchema} CASCADE`).catch(() => {});
    await this.log
      .deleteTopics([
        this.ns.eventsTopic,
        this.ns.acceptedTopic,
        this.ns.dlqTopic,
        this.ns.notificationsTopic,
      ])
      .catch(() => {});
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.ns.redisPrefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await this.redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await Promise.allSettled([this.pg.end(), this.log.close(), this.redis.quit()]);
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** The count of `target`'s first (only) type, through a query role's GetCounters; 0 when none. */
export async function countOf(grpcPort: number, target: string): Promise<number> {
  const query = queryClient(grpcPort);
  try {
    return Number((await query.getCounters({ target })).counts[0]?.count ?? 0n);
  } finally {
    query.close();
  }
}
