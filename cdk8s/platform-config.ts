/**
 * What the platform is made of, per size: `dev` for kind and minikube (one node, small volumes,
 * no replication beyond what the design needs), `prod` for a real cluster (three of everything).
 * The Helm chart's backend values point at the names below (`tally-kafka-kafka-bootstrap:9092`,
 * `tally-pg-pooler-rw`, `tally-pg-pooler-ro`, `tally-pg-app`, `tally-redis-leader:6379`).
 *
 * The namespace itself is not part of the platform: it is created once, before the operators are
 * installed (Strimzi watches it by name), and outlives every `skaffold dev` run (docs/deploy.md).
 */
import type { Resources } from './operator-resources.ts';

export type PlatformSize = 'dev' | 'prod';

export interface TopicConfig {
  /** The Kafka topic's name (Tally's TALLY_EVENTS_TOPIC, TALLY_ACCEPTED_TOPIC, TALLY_DLQ_TOPIC, …). */
  name: string;
  partitions: number;
  retentionMs: number;
}

/** The labels every pod of a Tally release carries (the chart's `app.kubernetes.io/name`). */
export const TALLY_POD_LABELS: Readonly<Record<string, string>> = { 'app.kubernetes.io/name': 'tally' };

/** Where the operators run (docs/deploy.md installs them there). */
export const OPERATOR_NAMESPACES = {
  strimzi: 'strimzi',
  cnpg: 'cnpg-system',
  redis: 'redis-operator',
  keda: 'keda',
} as const;

/**
 * The oldest version of each operator the platform and the chart are written for, and why
 * (docs/deploy.md states them; scripts/k8s-docs.test.ts holds the two to each other).
 */
export const MIN_OPERATOR_VERSIONS = {
  /** kafka.strimzi.io/v1 and Kafka 4.3.1. */
  strimzi: '1.2.0',
  /** Pooler with PgBouncer parameters (postgresql.cnpg.io/v1). */
  cnpg: '1.25.0',
  /** RedisCluster v1beta2 with per-group PDBs, affinity and topology spread. */
  redisOperator: '0.21.0',
  /** The Kafka scaler's limitToPartitionsWithLag, and sasl/tls/ca from a TriggerAuthentication. */
  keda: '2.16.0',
} as const;

export interface PlatformConfig {
  size: PlatformSize;
  /** Namespace of every object (and of the Tally release); created outside the platform. */
  namespace: string;
  /**
   * Whether deleting the platform deletes its volumes (Kafka's and Redis's PVCs; CloudNativePG's
   * go with their Cluster anyway). On in dev: each `make k8s-dev` starts a fresh Kafka, whose new
   * cluster id a broker would refuse on an old volume, and a fresh Redis Cluster, whose nodes
   * would otherwise come back with the previous run's nodes.conf and its addresses.
   */
  deleteVolumesWithPlatform: boolean;
  kafka: {
    /** Name of the Kafka resource; Strimzi's bootstrap Service is `<name>-kafka-bootstrap`. */
    name: string;
    /**
     * SCRAM-SHA-512 on the listener with ACLs (a KafkaUser `user`, whose password Strimzi writes
     * to the Secret of the same name), or none: then only the NetworkPolicy guards the listener.
     */
    authentication: { type: 'none' } | { type: 'scram-sha-512'; user: string };
    /** Spread each partition's replicas over this node label (broker.rack); none in dev. */
    rackTopologyKey?: string;
    /**
     * Whether the topic operator puts finalizers on KafkaTopics. Off in dev: deleting the platform
     * (skaffold's Ctrl-C) must not wait on a topic operator that is being deleted too.
     */
    topicFinalizers: boolean;
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
    /**
     * The events topic (its partitions bound each consumer role's replicas), the accepted topic
     * (what the persister forwards, partition for partition: as many partitions as the events
     * topic), notifications, dead letters.
     */
    topics: { events: TopicConfig; accepted: TopicConfig; notifications: TopicConfig; dlq: TopicConfig };
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
    /** PostgreSQL's superuser_reserved_connections (its default): not for Tally. */
    reservedConnections: number;
    resources: Resources;
    /**
     * PgBouncer in transaction mode in front of the primary (`<name>-pooler-rw`) and of the
     * replicas (`<name>-pooler-ro`): Tally's processes connect there.
     */
    pooler: {
      instances: number;
      /** Server connections per pooler instance (PgBouncer default_pool_size, + reserve_pool_size). */
      defaultPoolSize: number;
      reservePoolSize: number;
      /** Client connections per pooler instance (PgBouncer max_client_conn). */
      maxClientConn: number;
    };
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
    /** The password of every node, from an existing Secret (docs/deploy.md creates it); none in dev. */
    passwordSecret?: { name: string; key: string };
    /** Leaders and followers on different nodes, spread over zones, with PDBs (prod). */
    spread: boolean;
  };
}

const DAY_MS = 24 * 3600_000;

/** The Apache Kafka version of scripts/lib.sh (TALLY_KAFKA_VERSION): the one Tally is tested on. */
export const KAFKA_VERSION = '4.3.1';

const topics = (eventsPartitions: number): PlatformConfig['kafka']['topics'] => {
  const events = { name: 'events', partitions: eventsPartitions, retentionMs: 7 * DAY_MS };
  return {
    events,
    // The persister forwards partition p of the events topic to partition p here, and refuses to
    // start with fewer partitions: the count is the events topic's, never a number of its own.
    // The counter, the aggregator and the alerter read it instead of the events topic: the same
    // retention, so a sink that was down can catch up over as long an outage as the persister can.
    accepted: { name: 'events.accepted', partitions: events.partitions, retentionMs: events.retentionMs },
    // The alerter's notifications, one record per recipient keyed by it, for the gateways that
    // push them live: a day is enough, the notification store in PostgreSQL keeps them for good.
    notifications: {
      name: 'notifications',
      partitions: Math.max(1, eventsPartitions / 4),
      retentionMs: DAY_MS,
    },
    // As many partitions as the events topic, as Tally creates it when it is missing.
    dlq: { name: 'events.dlq', partitions: eventsPartitions, retentionMs: 30 * DAY_MS },
  };
};

export const platformSizes: Readonly<Record<PlatformSize, PlatformConfig>> = {
  dev: {
    size: 'dev',
    namespace: 'tally',
    deleteVolumesWithPlatform: true,
    kafka: {
      name: 'tally-kafka',
      authentication: { type: 'none' },
      topicFinalizers: false,
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
      reservedConnections: 3,
      resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } },
      pooler: { instances: 1, defaultPoolSize: 20, reservePoolSize: 5, maxClientConn: 1000 },
    },
    redis: {
      name: 'tally-redis',
      masters: 3,
      image: 'quay.io/opstree/redis:v7.0.15',
      storage: '1Gi',
      resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
      spread: false,
    },
  },
  prod: {
    size: 'prod',
    namespace: 'tally',
    deleteVolumesWithPlatform: false,
    kafka: {
      name: 'tally-kafka',
      authentication: { type: 'scram-sha-512', user: 'tally-app' },
      rackTopologyKey: 'topology.kubernetes.io/zone',
      topicFinalizers: true,
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
      reservedConnections: 3,
      resources: { requests: { cpu: '1', memory: '4Gi' }, limits: { memory: '4Gi' } },
      pooler: { instances: 2, defaultPoolSize: 100, reservePoolSize: 20, maxClientConn: 2000 },
    },
    redis: {
      name: 'tally-redis',
      masters: 3,
      image: 'quay.io/opstree/redis:v7.0.15',
      storage: '20Gi',
      resources: { requests: { cpu: '500m', memory: '2Gi' }, limits: { memory: '2Gi' } },
      passwordSecret: { name: 'tally-redis-auth', key: 'password' },
      spread: true,
    },
  },
};
