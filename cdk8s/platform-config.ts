/**
 * What the platform is made of, per size: `dev` for kind and minikube (one node, small volumes,
 * no replication beyond what the design needs), `prod` for a real cluster (three of everything).
 * The Helm chart's backend values point at the names below (`tally-kafka-kafka-bootstrap:9092`,
 * `tally-pg-rw`, `tally-pg-ro`, `tally-pg-app`, `tally-redis-leader:6379`).
 */
import type { Resources } from './operator-resources.ts';

export type PlatformSize = 'dev' | 'prod';

export interface TopicConfig {
  /** The Kafka topic's name (Tally's TALLY_EVENTS_TOPIC, TALLY_DLQ_TOPIC, …). */
  name: string;
  partitions: number;
  retentionMs: number;
}

export interface PlatformConfig {
  size: PlatformSize;
  /** Namespace of every object (and of the Tally release). */
  namespace: string;
  kafka: {
    /** Name of the Kafka resource; Strimzi's bootstrap Service is `<name>-kafka-bootstrap`. */
    name: string;
    /** Apache Kafka version, one the installed Strimzi supports (the local scripts run 4.3.1). */
    version: string;
    /** Node pools: one dual-role pool, or separate controllers and brokers (`resources` by default). */
    pools: {
      name: string;
      roles: ('controller' | 'broker')[];
      replicas: number;
      storage: string;
      resources?: Resources;
    }[];
    /** Replicas of each partition, and how many must hold a write (acks=all). */
    replicationFactor: number;
    minInsyncReplicas: number;
    resources: Resources;
    storageClass?: string;
    /** The events topic (its partitions bound each consumer role's replicas), notifications, dead letters. */
    topics: { events: TopicConfig; notifications: TopicConfig; dlq: TopicConfig };
  };
  postgres: {
    /** Name of the CloudNativePG Cluster: Services `<name>-rw` and `<name>-ro`, Secret `<name>-app`. */
    name: string;
    /** At least 2: Tally reads reports from the replicas (`-ro`). */
    instances: number;
    database: string;
    owner: string;
    storage: string;
    storageClass?: string;
    /** Default: the operator's PostgreSQL image. */
    imageName?: string;
    maxConnections: number;
    resources: Resources;
  };
  redis: {
    /** Name of the RedisCluster: the leaders' Service is `<name>-leader`. */
    name: string;
    /** Masters (and as many replicas). */
    masters: number;
    image: string;
    storage: string;
    storageClass?: string;
    resources: Resources;
  };
}

const DAY_MS = 24 * 3600_000;

/** The Apache Kafka version of scripts/lib.sh (TALLY_KAFKA_VERSION): the one Tally is tested on. */
export const KAFKA_VERSION = '4.3.1';

const topics = (eventsPartitions: number) => ({
  events: { name: 'events', partitions: eventsPartitions, retentionMs: 7 * DAY_MS },
  notifications: {
    name: 'notifications',
    partitions: Math.max(1, eventsPartitions / 4),
    retentionMs: DAY_MS,
  },
  // As many partitions as the events topic, as Tally creates it when it is missing.
  dlq: { name: 'events.dlq', partitions: eventsPartitions, retentionMs: 30 * DAY_MS },
});

export const platformSizes: Readonly<Record<PlatformSize, PlatformConfig>> = {
  dev: {
    size: 'dev',
    namespace: 'tally',
    kafka: {
      name: 'tally-kafka',
      version: KAFKA_VERSION,
      pools: [{ name: 'dual-role', roles: ['controller', 'broker'], replicas: 1, storage: '5Gi' }],
      replicationFactor: 1,
      minInsyncReplicas: 1,
      resources: { requests: { cpu: '250m', memory: '1Gi' }, limits: { memory: '1Gi' } },
      topics: topics(12),
    },
    postgres: {
      name: 'tally-pg',
      instances: 2,
      database: 'tally',
      owner: 'tally',
      storage: '1Gi',
      maxConnections: 200,
      resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } },
    },
    redis: {
      name: 'tally-redis',
      masters: 3,
      image: 'quay.io/opstree/redis:v7.0.15',
      storage: '1Gi',
      resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    },
  },
  prod: {
    size: 'prod',
    namespace: 'tally',
    kafka: {
      name: 'tally-kafka',
      version: KAFKA_VERSION,
      pools: [
        {
          name: 'controllers',
          roles: ['controller'],
          replicas: 3,
          storage: '20Gi',
          resources: { requests: { cpu: '250m', memory: '1Gi' }, limits: { memory: '1Gi' } },
        },
        { name: 'brokers', roles: ['broker'], replicas: 3, storage: '200Gi' },
      ],
      replicationFactor: 3,
      minInsyncReplicas: 2,
      resources: { requests: { cpu: '1', memory: '4Gi' }, limits: { memory: '4Gi' } },
      topics: topics(24),
    },
    postgres: {
      name: 'tally-pg',
      instances: 3,
      database: 'tally',
      owner: 'tally',
      storage: '100Gi',
      maxConnections: 500,
      resources: { requests: { cpu: '1', memory: '4Gi' }, limits: { memory: '4Gi' } },
    },
    redis: {
      name: 'tally-redis',
      masters: 3,
      image: 'quay.io/opstree/redis:v7.0.15',
      storage: '20Gi',
      resources: { requests: { cpu: '500m', memory: '2Gi' }, limits: { memory: '2Gi' } },
    },
  },
};
