/**
 * The custom resources of the platform's operators, as `ApiObject`s with typed specs. The
 * interfaces hold only the fields Tally sets; `scripts/k8s.test.ts` validates every synthesized
 * object against the operators' full JSON schemas (k8s/schemas/). Typed constructs from
 * `cdk8s import` are not used: they declare TypeScript enums, which Node's type stripping (and
 * this project's `erasableSyntaxOnly`) refuses.
 */
import { ApiObject, type ApiObjectMetadata } from 'cdk8s';
import type { Construct } from 'constructs';

/** Kubernetes resource requests and limits (`cpu: '500m'`, `memory: '1Gi'`). */
export interface Resources {
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
}

// ---- Strimzi (kafka.strimzi.io/v1, Strimzi 0.49 or newer) ----

export interface KafkaNodePoolSpec {
  replicas: number;
  roles: ('controller' | 'broker')[];
  storage:
    | { type: 'ephemeral'; sizeLimit?: string }
    | {
        type: 'persistent-claim';
        size: string;
        class?: string;
        deleteClaim?: boolean;
      };
  resources?: Resources;
}

/** A NetworkPolicy peer (Kubernetes' NetworkPolicyPeer, the selector forms Tally uses). */
export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
    values?: string[];
  }[];
}

export interface KafkaListener {
  name: string;
  port: number;
  type: 'internal' | 'cluster-ip' | 'nodeport' | 'loadbalancer' | 'ingress' | 'route';
  tls: boolean;
  authentication?: { type: 'scram-sha-512' | 'tls' };
  /** Who may connect to this listener; Strimzi writes the NetworkPolicy (empty: anyone). */
  networkPolicyPeers?: NetworkPolicyPeer[];
}

export interface EnvVar {
  name: string;
  value: string;
}

export interface KafkaSpec {
  kafka: {
    version?: string;
    listeners: KafkaListener[];
    /** Broker configuration (server.properties); Strimzi takes numbers and strings. */
    config?: Record<string, string | number | boolean>;
    authorization?: { type: 'simple'; superUsers?: string[] };
    /** Rack awareness: each broker's `broker.rack` from its node's label (replicas spread over racks). */
    rack?: { topologyKey: string };
  };
  entityOperator?: {
    topicOperator?: Record<string, never>;
    userOperator?: Record<string, never>;
    template?: { topicOperatorContainer?: { env?: EnvVar[] } };
  };
}

export type KafkaAclOperation =
  | 'Read'
  | 'Write'
  | 'Create'
  | 'Describe'
  | 'DescribeConfigs'
  | 'IdempotentWrite';

export interface KafkaUserSpec {
  authentication: { type: 'scram-sha-512' };
  authorization: {
    type: 'simple';
    acls: {
      resource:
        | { type: 'topic' | 'group'; name: string; patternType: 'literal' | 'prefix' }
        | { type: 'cluster' };
      operations: KafkaAclOperation[];
    }[];
  };
}

export interface KafkaTopicSpec {
  topicName: string;
  partitions: number;
  replicas: number;
  config?: Record<string, string | number>;
}

/** The label that ties node pools and topics to their Kafka cluster. */
export const STRIMZI_CLUSTER_LABEL = 'strimzi.io/cluster';

export function kafkaNodePool(
  scope: Construct,
  id: string,
  props: { metadata: ApiObjectMetadata; spec: KafkaNodePoolSpec },
): ApiObject {
  return new ApiObject(scope, id, { apiVersion: 'kafka.strimzi.io/v1', kind: 'KafkaNodePool', ...props });
}

export function kafka(scope: Construct, id: string, props: { metadata: ApiObjectMetadata; spec: KafkaSpec }) {
  return new ApiObject(scope, id, { apiVersion: 'kafka.strimzi.io/v1', kind: 'Kafka', ...props });
}

export function kafkaTopic(
  scope: Construct,
  id: string,
  props: { metadata: ApiObjectMetadata; spec: KafkaTopicSpec },
): ApiObject {
  return new ApiObject(scope, id, { apiVersion: 'kafka.strimzi.io/v1', kind: 'KafkaTopic', ...props });
}

export function kafkaUser(
  scope: Construct,
  id: string,
  props: { metadata: ApiObjectMetadata; spec: KafkaUserSpec },
): ApiObject {
  return new ApiObject(scope, id, { apiVersion: 'kafka.strimzi.io/v1', kind: 'KafkaUser', ...props });
}

// ---- CloudNativePG (postgresql.cnpg.io/v1) ----

export interface PoolerSpec {
  cluster: { name: string };
  /** rw: the primary; ro: the replicas. */
  type: 'rw' | 'ro';
  instances: number;
  pgbouncer: { poolMode: 'session' | 'transaction'; parameters?: Record<string, string> };
  template?: { metadata?: { labels?: Record<string, string> }; spec: { containers: []; affinity?: object } };
}

export function pooler(
  scope: Construct,
  id: string,
  props: { metadata: ApiObjectMetadata; spec: PoolerSpec },
): ApiObject {
  return new ApiObject(scope, id, { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Pooler', ...props });
}

export interface PostgresClusterSpec {
  instances: number;
  imageName?: string;
  bootstrap: { initdb: { database: string; owner: string } };
  storage: { size: string; storageClass?: string };
  postgresql?: { parameters?: Record<string, string> };
  resources?: Resources;
  affinity?: {
    enablePodAntiAffinity?: boolean;
    topologyKey?: string;
    podAntiAffinityType?: 'preferred' | 'required';
  };
  primaryUpdateStrategy?: 'supervised' | 'unsupervised';
}

export function postgresCluster(
  scope: Construct,
  id: string,
  props: { metadata: ApiObjectMetadata; spec: PostgresClusterSpec },
): ApiObject {
  return new ApiObject(scope, id, { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', ...props });
}

// ---- OT redis-operator (redis.redis.opstreelabs.in/v1beta2) ----

export interface RedisClusterSpec {
  clusterSize: number;
  clusterVersion?: 'v6' | 'v7';
  persistenceEnabled?: boolean;
  kubernetesConfig: {
    image: string;
    imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
    resources?: Resources;
    /** The password every node asks for (and uses between nodes), from an existing Secret. */
    redisSecret?: { name: string; key: string };
    persistentVolumeClaimRetentionPolicy?: {
      whenDeleted: 'Retain' | 'Delete';
      whenScaled: 'Retain' | 'Delete';
    };
  };
  redisLeader?: RedisGroupSpec;
  redisFollower?: RedisGroupSpec;
  podSecurityContext?: { runAsUser?: number; fsGroup?: number };
  storage?: {
    volumeClaimTemplate: {
      spec: {
        accessModes: string[];
        storageClassName?: string;
        resources: { requests: { storage: string } };
      };
    };
  };
}

/** The leaders' or the followers' StatefulSet. */
export interface RedisGroupSpec {
  replicas?: number;
  pdb?: { enabled: boolean; maxUnavailable?: number };
  affinity?: object;
  topologySpreadConstraints?: object[];
}

export function redisCluster(
  scope: Construct,
  id: string,
  props: { metadata: ApiObjectMetadata; spec: RedisClusterSpec },
): ApiObject {
  return new ApiObject(scope, id, {
    apiVersion: 'redis.redis.opstreelabs.in/v1beta2',
    kind: 'RedisCluster',
    ...props,
  });
}
