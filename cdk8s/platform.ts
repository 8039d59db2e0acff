/**
 * The platform Tally runs on, as operator resources: Strimzi's Kafka (KRaft) with its node pools
 * and topics, a CloudNativePG cluster with read replicas behind PgBouncer poolers, and an OT
 * redis-operator Redis Cluster, each open only to Tally's pods (and what the operators need).
 * The namespace and the operators (and KEDA for the chart's ScaledObjects) come first
 * (docs/deploy.md): the namespace is not one of these objects, so that deleting the platform
 * (skaffold's cleanup) leaves it, and the operators' RoleBindings in it, in place.
 */
import { ApiObject, App, Chart, type ChartProps, Yaml } from 'cdk8s';
import type { Construct } from 'constructs';
import {
  type KafkaAclOperation,
  type KafkaUserSpec,
  kafka,
  kafkaNodePool,
  kafkaTopic,
  kafkaUser,
  type NetworkPolicyPeer,
  pooler,
  postgresCluster,
  type RedisGroupSpec,
  redisCluster,
  STRIMZI_CLUSTER_LABEL,
} from './operator-resources.ts';
import {
  OPERATOR_NAMESPACES,
  type PlatformConfig,
  TALLY_POD_LABELS,
  type TopicConfig,
} from './platform-config.ts';

const partOf = { 'app.kubernetes.io/part-of': 'tally' };
const inNamespace = (name: string): NetworkPolicyPeer => ({
  namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': name } },
});
/** Tally's pods, in the platform's namespace. */
const tallyPods: NetworkPolicyPeer = { podSelector: { matchLabels: { ...TALLY_POD_LABELS } } };

/** The Redis port and the cluster bus port (the port + 10000) of every node. */
export const REDIS_PORT = 6379;
export const REDIS_BUS_PORT = 16379;

/** The labels the OT redis-operator gives the pods of a RedisCluster's leaders or followers. */
export const redisPodLabels = (name: string, group: 'leader' | 'follower') => ({
  app: `${name}-${group}`,
  redis_setup_type: 'cluster',
  role: group,
});

export class TallyPlatform extends Chart {
  constructor(scope: Construct, id: string, config: PlatformConfig, props: ChartProps = {}) {
    super(scope, id, { namespace: config.namespace, labels: partOf, ...props });
    this.kafka(config.kafka, config.deleteVolumesWithPlatform);
    this.postgres(config.postgres);
    this.redis(config.redis, config.deleteVolumesWithPlatform);
  }

  private kafka(k: PlatformConfig['kafka'], deleteVolumes: boolean): void {
    const clusterLabel = { [STRIMZI_CLUSTER_LABEL]: k.name };
    for (const pool of k.pools) {
      kafkaNodePool(this, `kafka-pool-${pool.name}`, {
        metadata: { name: pool.name, labels: clusterLabel },
        spec: {
          replicas: pool.replicas,
          roles: pool.roles,
          storage: {
            type: 'persistent-claim',
            size: pool.storage,
            ...(k.storageClass ? { class: k.storageClass } : {}),
            deleteClaim: deleteVolumes,
          },
          resources: pool.resources ?? k.resources,
        },
      });
    }
    const scram = k.authentication.type === 'scram-sha-512';
    kafka(this, 'kafka', {
      metadata: { name: k.name },
      spec: {
        kafka: {
          version: k.version,
          listeners: [
            {
              name: 'plain',
              port: 9092,
              type: 'internal',
              tls: false,
              ...(scram ? { authentication: { type: 'scram-sha-512' as const } } : {}),
              // Tally's pods, and KEDA's operator reading the consumer groups' lag.
              networkPolicyPeers: [tallyPods, inNamespace(OPERATOR_NAMESPACES.keda)],
            },
          ],
          ...(scram ? { authorization: { type: 'simple' as const } } : {}),
          ...(k.rackTopologyKey ? { rack: { topologyKey: k.rackTopologyKey } } : {}),
          config: {
            'default.replication.factor': k.replicationFactor,
            'min.insync.replicas': k.minInsyncReplicas,
            'offsets.topic.replication.factor': k.replicationFactor,
            'transaction.state.log.replication.factor': k.replicationFactor,
            'transaction.state.log.min.isr': k.minInsyncReplicas,
            // Topics come from KafkaTopic resources (below) or from Tally's own admin calls.
            'auto.create.topics.enable': false,
            // With rack awareness, consumers fetch from a replica in their own zone when one is there.
            ...(k.rackTopologyKey
              ? { 'replica.selector.class': 'org.apache.kafka.common.replica.RackAwareReplicaSelector' }
              : {}),
          },
        },
        // The topic operator reconciles the KafkaTopic resources, the user operator the KafkaUser.
        entityOperator: {
          topicOperator: {},
          userOperator: {},
          ...(k.topicFinalizers
            ? {}
            : {
                template: {
                  topicOperatorContainer: { env: [{ name: 'STRIMZI_USE_FINALIZERS', value: 'false' }] },
                },
              }),
        },
      },
    });
    if (k.authentication.type === 'scram-sha-512') this.kafkaUser(k, k.authentication.user);
    // A size edited by hand must not give the accepted topic fewer partitions: the persister would
    // refuse to start (it forwards partition p to partition p).
    if (k.topics.accepted.partitions < k.topics.events.partitions)
      throw new Error(
        `kafka.topics.accepted has ${k.topics.accepted.partitions} partitions, fewer than the events topic's ` +
          `${k.topics.events.partitions}: the persister forwards partition for partition`,
      );
    const topic = (t: TopicConfig) =>
      kafkaTopic(this, `topic-${t.name}`, {
        // A resource name without dots; topicName holds Kafka's name.
        metadata: { name: t.name.replaceAll('.', '-'), labels: clusterLabel },
        spec: {
          topicName: t.name,
          partitions: t.partitions,
          replicas: k.replicationFactor,
          config: { 'retention.ms': t.retentionMs, 'min.insync.replicas': k.minInsyncReplicas },
        },
      });
    topic(k.topics.events);
    topic(k.topics.accepted);
    topic(k.topics.notifications);
    topic(k.topics.dlq);
  }

  /**
   * Tally's Kafka user: SCRAM-SHA-512 (Strimzi writes its password to the Secret `<user>`, key
   * `password`) and the ACLs of every role, KEDA (which reads the groups' lag with the same
   * credentials) and the gateway's live feed (a group per gateway process, `gateway-live-…`).
   * Every role shares the user: ingest writes the events topic, the persister reads it and writes
   * the accepted topic, the counter, the aggregator, the alerter and the router read the accepted
   * topic, the alerter writes the notifications topic, the router the destinations' topics
   * (`deliveries.<id>`), and a consumer that meets a poison record writes it
   * to the dead-letter topic.
   */
  private kafkaUser(k: PlatformConfig['kafka'], user: string): void {
    const topic = (name: string, patternType: 'literal' | 'prefix' = 'literal') =>
      ({ type: 'topic', name, patternType }) as const;
    const acls: KafkaUserSpec['authorization']['acls'] = [
      ...[k.topics.events, k.topics.accepted, k.topics.dlq, k.topics.notifications].map((t) => ({
        resource: topic(t.name),
        operations: ['Read', 'Write', 'Describe', 'DescribeConfigs'] satisfies KafkaAclOperation[],
      })),
      // deliveries.<destination>: one topic per webhook destination, created by Tally.
      {
        resource: topic('deliveries.', 'prefix'),
        operations: ['Read', 'Write', 'Create', 'Describe', 'DescribeConfigs'],
      },
      // Every consumer group (group_persistence…, gateway-live-<pod>-<pid>), under any prefix.
      { resource: { type: 'group', name: '*', patternType: 'literal' }, operations: ['Read', 'Describe'] },
      { resource: { type: 'cluster' }, operations: ['Describe', 'IdempotentWrite'] },
    ];
    kafkaUser(this, 'kafka-user', {
      metadata: { name: user, labels: { [STRIMZI_CLUSTER_LABEL]: k.name } },
      spec: { authentication: { type: 'scram-sha-512' }, authorization: { type: 'simple', acls } },
    });
  }

  private postgres(pg: PlatformConfig['postgres']): void {
    if (pg.instances < 2)
      throw new Error(`postgres.instances must be at least 2 (a primary and a replica), not ${pg.instances}`);
    postgresCluster(this, 'postgres', {
      metadata: { name: pg.name },
      spec: {
        instances: pg.instances,
        ...(pg.imageName ? { imageName: pg.imageName } : {}),
        // Creates the database and its owner, whose credentials land in the Secret `<name>-app`.
        bootstrap: { initdb: { database: pg.database, owner: pg.owner } },
        storage: { size: pg.storage, ...(pg.storageClass ? { storageClass: pg.storageClass } : {}) },
        postgresql: { parameters: { max_connections: String(pg.maxConnections) } },
        resources: pg.resources,
        affinity: { enablePodAntiAffinity: true, topologyKey: 'kubernetes.io/hostname' },
        primaryUpdateStrategy: 'unsupervised',
      },
    });
    // PgBouncer in transaction mode: Tally's statements hold a server connection only for a
    // transaction (no session state: unnamed statements, transaction-scoped advisory locks, no
    // LISTEN), so a few server connections serve every pod. `options` (node-postgres sends
    // `-c search_path=…` there) is ignored: the role's default search_path applies (docs/deploy.md).
    for (const type of ['rw', 'ro'] as const) {
      const name = `${pg.name}-pooler-${type}`;
      pooler(this, `pooler-${type}`, {
        metadata: { name },
        spec: {
          cluster: { name: pg.name },
          type,
          instances: pg.pooler.instances,
          pgbouncer: {
            poolMode: 'transaction',
            parameters: {
              max_client_conn: String(pg.pooler.maxClientConn),
              default_pool_size: String(pg.pooler.defaultPoolSize),
              reserve_pool_size: String(pg.pooler.reservePoolSize),
              ignore_startup_parameters: 'extra_float_digits,options',
            },
          },
          ...(pg.pooler.instances > 1
            ? {
                template: {
                  metadata: { labels: { 'cnpg.io/poolerName': name } },
                  spec: {
                    containers: [],
                    affinity: {
                      podAntiAffinity: {
                        preferredDuringSchedulingIgnoredDuringExecution: [
                          {
                            weight: 100,
                            podAffinityTerm: {
                              topologyKey: 'kubernetes.io/hostname',
                              labelSelector: { matchLabels: { 'cnpg.io/poolerName': name } },
                            },
                          },
                        ],
                      },
                    },
                  },
                },
              }
            : {}),
        },
      });
    }
  }

  private redis(r: PlatformConfig['redis'], deleteVolumes: boolean): void {
    redisCluster(this, 'redis', {
      metadata: { name: r.name },
      spec: {
        clusterSize: r.masters,
        clusterVersion: 'v7',
        persistenceEnabled: true,
        kubernetesConfig: {
          image: r.image,
          imagePullPolicy: 'IfNotPresent',
          resources: r.resources,
          ...(r.passwordSecret ? { redisSecret: r.passwordSecret } : {}),
          ...(deleteVolumes
            ? { persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Delete', whenScaled: 'Retain' } }
            : {}),
        },
        redisLeader: { replicas: r.masters, ...(r.spread ? redisSpread(r.name, 'leader') : {}) },
        redisFollower: { replicas: r.masters, ...(r.spread ? redisSpread(r.name, 'follower') : {}) },
        podSecurityContext: { runAsUser: 1000, fsGroup: 1000 },
        storage: {
          volumeClaimTemplate: {
            spec: {
              accessModes: ['ReadWriteOnce'],
              ...(r.storageClass ? { storageClassName: r.storageClass } : {}),
              resources: { requests: { storage: r.storage } },
            },
          },
        },
      },
    });
  }
}

/**
 * The leaders (or followers) one per node — a node lost takes at most one leader and, where the
 * nodes allow, not its follower too — spread over zones, and a PDB of one pod at a time.
 */
function redisSpread(name: string, group: 'leader' | 'follower'): RedisGroupSpec {
  const own = { matchLabels: redisPodLabels(name, group) };
  const other = { matchLabels: redisPodLabels(name, group === 'leader' ? 'follower' : 'leader') };
  return {
    pdb: { enabled: true, maxUnavailable: 1 },
    affinity: {
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          { topologyKey: 'kubernetes.io/hostname', labelSelector: own },
        ],
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: other } },
        ],
      },
    },
    topologySpreadConstraints: [
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: own,
      },
    ],
  };
}

/**
 * Who may reach the Redis nodes: Tally's pods, the other nodes (replication and the cluster bus),
 * and the operator, which configures the cluster through each node's Redis port.
 */
class RedisNetworkPolicy extends Chart {
  constructor(scope: Construct, id: string, config: PlatformConfig) {
    super(scope, id, { namespace: config.namespace, labels: partOf });
    const name = config.redis.name;
    const nodes = {
      podSelector: {
        matchLabels: { redis_setup_type: 'cluster' },
        matchExpressions: [{ key: 'app', operator: 'In', values: [`${name}-leader`, `${name}-follower`] }],
      },
    };
    new ApiObject(this, 'redis-network-policy', {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name },
      spec: {
        podSelector: nodes.podSelector,
        policyTypes: ['Ingress'],
        ingress: [
          { from: [tallyPods], ports: [{ port: REDIS_PORT, protocol: 'TCP' }] },
          {
            from: [nodes],
            ports: [
              { port: REDIS_PORT, protocol: 'TCP' },
              { port: REDIS_BUS_PORT, protocol: 'TCP' },
            ],
          },
          { from: [inNamespace(OPERATOR_NAMESPACES.redis)], ports: [{ port: REDIS_PORT, protocol: 'TCP' }] },
        ],
      },
    });
  }
}

/** The platform's objects in apply order, as plain JSON. */
export function platformObjects(config: PlatformConfig): Record<string, unknown>[] {
  const app = new App({ outdir: '/nonexistent' });
  const platform = new TallyPlatform(app, 'platform', config);
  const redisPolicy = new RedisNetworkPolicy(app, 'redis-network-policy', config);
  return [...platform.toJson(), ...redisPolicy.toJson()] as Record<string, unknown>[];
}

/** The platform as one multi-document YAML file. */
export function platformYaml(config: PlatformConfig): string {
  return Yaml.stringify(...platformObjects(config));
}
