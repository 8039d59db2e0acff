/**
 * The platform Tally runs on, as operator resources: Strimzi's Kafka (KRaft) with its node pools
 * and topics, a CloudNativePG cluster with read replicas, and an OT redis-operator Redis Cluster.
 * The operators (and KEDA for the chart's ScaledObjects) must be installed first (docs/deploy.md).
 */
import { App, Chart, type ChartProps, Yaml } from 'cdk8s';
import * as kplus from 'cdk8s-plus-33';
import type { Construct } from 'constructs';
import {
  kafka,
  kafkaNodePool,
  kafkaTopic,
  postgresCluster,
  redisCluster,
  STRIMZI_CLUSTER_LABEL,
} from './operator-resources.ts';
import type { PlatformConfig, TopicConfig } from './platform-config.ts';

const partOf = { 'app.kubernetes.io/part-of': 'tally' };

/** The namespace, cluster-scoped: a chart of its own (a namespaced chart would stamp it with a namespace). */
export class TallyNamespace extends Chart {
  constructor(scope: Construct, id: string, config: PlatformConfig) {
    super(scope, id, { labels: partOf });
    new kplus.Namespace(this, 'namespace', { metadata: { name: config.namespace } });
  }
}

export class TallyPlatform extends Chart {
  constructor(scope: Construct, id: string, config: PlatformConfig, props: ChartProps = {}) {
    super(scope, id, { namespace: config.namespace, labels: partOf, ...props });
    this.kafka(config.kafka);
    this.postgres(config.postgres);
    this.redis(config.redis);
  }

  private kafka(k: PlatformConfig['kafka']): void {
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
            deleteClaim: false,
          },
          resources: pool.resources ?? k.resources,
        },
      });
    }
    kafka(this, 'kafka', {
      metadata: { name: k.name },
      spec: {
        kafka: {
          version: k.version,
          listeners: [{ name: 'plain', port: 9092, type: 'internal', tls: false }],
          config: {
            'default.replication.factor': k.replicationFactor,
            'min.insync.replicas': k.minInsyncReplicas,
            'offsets.topic.replication.factor': k.replicationFactor,
            'transaction.state.log.replication.factor': k.replicationFactor,
            'transaction.state.log.min.isr': k.minInsyncReplicas,
            // Topics come from KafkaTopic resources (below) or from Tally's own admin calls.
            'auto.create.topics.enable': false,
          },
        },
        // The topic operator reconciles the KafkaTopic resources.
        entityOperator: { topicOperator: {}, userOperator: {} },
      },
    });
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
    topic(k.topics.notifications);
    topic(k.topics.dlq);
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
  }

  private redis(r: PlatformConfig['redis']): void {
    redisCluster(this, 'redis', {
      metadata: { name: r.name },
      spec: {
        clusterSize: r.masters,
        clusterVersion: 'v7',
        persistenceEnabled: true,
        kubernetesConfig: { image: r.image, imagePullPolicy: 'IfNotPresent', resources: r.resources },
        redisLeader: { replicas: r.masters },
        redisFollower: { replicas: r.masters },
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

/** The platform's objects in apply order (namespace first), as plain JSON. */
export function platformObjects(config: PlatformConfig): Record<string, unknown>[] {
  const app = new App({ outdir: '/nonexistent' });
  const namespace = new TallyNamespace(app, 'namespace', config);
  const platform = new TallyPlatform(app, 'platform', config);
  return [...namespace.toJson(), ...platform.toJson()] as Record<string, unknown>[];
}

/** The platform as one multi-document YAML file. */
export function platformYaml(config: PlatformConfig): string {
  return Yaml.stringify(...platformObjects(config));
}
