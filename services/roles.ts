/**
 * The role table: every role Tally runs, the ports it needs, how it starts, and — for a consumer
 * role — its consumer group. `main.ts` reads it; nothing else knows every role. Adding a role is one
 * folder under services/ with `start(deps, config)`, one row here, and one line in the chart's values
 * (docs/architecture.md, "How to add a role").
 */
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import * as aggregator from './aggregator/aggregator.ts';
import * as alerter from './alerter/alerter.ts';
import { startRuleSource } from './alerter/rule-source.ts';
import { type Backends, openTopicAdmin, type Port } from './backends.ts';
import * as counter from './counter/counter.ts';
import { DELIVERY_TOPIC_PREFIX } from './domain/destinations.ts';
import { defaultEventLimits } from './domain/event-rules.ts';
import * as gateway from './gateway/gateway.ts';
import { AlertService } from './gen/tally/v1/alerts_pb.js';
import { DestinationService } from './gen/tally/v1/destinations_pb.js';
import { EntityService, ProjectionService } from './gen/tally/v1/entities_pb.js';
import { EventLogService } from './gen/tally/v1/event_log_pb.js';
import { IngestService } from './gen/tally/v1/ingest_pb.js';
import { KeysService } from './gen/tally/v1/keys_pb.js';
import { NotificationService } from './gen/tally/v1/notifications_pb.js';
import { QueryService } from './gen/tally/v1/query_pb.js';
import { createSqlNotificationStore } from './infra/alerts/sql-notification-store.ts';
import { createSqlRuleStore } from './infra/alerts/sql-rule-store.ts';
import type { AuthMode, TallyConfig } from './infra/config.ts';
import { createDestinationAdmin } from './infra/delivery/destination-admin.ts';
import { createLogDestinationTopics } from './infra/delivery/destination-topics.ts';
import { createSqlDeliveryLog } from './infra/delivery/sql-delivery-log.ts';
import { createSqlDeliveryStore } from './infra/delivery/sql-delivery-store.ts';
import { createSqlDestinationStore } from './infra/delivery/sql-destination-store.ts';
import { createWebhookClient } from './infra/delivery/webhook-client.ts';
import { createSqlEntityStore } from './infra/entities/sql-entity-store.ts';
import { createSqlProjectionStore } from './infra/entities/sql-projection-store.ts';
import { createAppendWaits } from './infra/events/event-appends.ts';
import type { GrpcRegistry } from './infra/grpc/grpc-registry.ts';
import type { ServiceClient } from './infra/grpc/grpc-service.ts';
import type { KeyStore } from './infra/keys/key-store.ts';
import type { Stoppable } from './infra/lifecycle.ts';
import type { EventLog } from './infra/log/event-log.ts';
import { createKafkaEventLog } from './infra/log/kafka-event-log.ts';
import type { Logger } from './infra/logger.ts';
import type { Registry } from './infra/metrics.ts';
import type { ReadinessReport } from './infra/readiness.ts';
import type { ReloadingTls } from './infra/tls/tls-reloader.ts';
import type { Tracer } from './infra/tracing.ts';
import * as ingest from './ingest/ingest.ts';
import * as persister from './persister/persister.ts';
import { notificationWriter } from './pipeline/notification-writer.ts';
import type { RequestLimits } from './pipeline/request-limits.ts';
import type { SinkRoleConfig, SinkRoleDeps } from './pipeline/sink-role.ts';
import { startProjectionSource } from './projector/projection-source.ts';
import * as projector from './projector/projector.ts';
import { registerAlertService } from './query/alert-service.ts';
import { registerDestinationService } from './query/destination-service.ts';
import { registerEntityService } from './query/entity-service.ts';
import { EVENT_LOG_SETTLE_MS, registerEventLogService } from './query/event-log-service.ts';
import { registerNotificationService } from './query/notification-service.ts';
import { createNotificationWatches } from './query/notification-watch.ts';
import { registerProjectionService } from './query/projection-service.ts';
import * as query from './query/query.ts';
import { startDestinationSource } from './router/destination-source.ts';
import * as router from './router/router.ts';
import * as sender from './sender/sender.ts';

/**
 * When a role starts, and what its readiness means:
 * - `grpc`: registers gRPC services; started first, before the process's gRPC server listens;
 * - `http`: serves HTTP (and calls the gRPC roles); started once the gRPC server listens;
 * - `consumer`: a consumer group's member; joins in the background once the edge serves, so a
 *   restart never waits for a group's rebalance before answering requests.
 */
export type RoleKind = 'grpc' | 'http' | 'consumer';

/** What the composition root hands a row's `start`: the process's shared parts. */
export interface RoleWiring {
  config: TallyConfig;
  backends: Backends;
  grpc: GrpcRegistry;
  logger: Logger;
  metrics: Registry;
  tracer: Tracer | undefined;
  readiness: () => Promise<ReadinessReport>;
  /** The listeners' TLS material (TALLY_TLS_*), followed as its files change; none: plaintext. */
  tls: ReloadingTls | undefined;
  /** Access control as this process runs it (config.ts `resolveAuthMode`). */
  auth: AuthMode;
  /**
   * The key store of a process with the SQL port (cached: access-control.ts), which access
   * control and key administration share; undefined without the SQL port.
   */
  keys: KeyStore | undefined;
  /**
   * The rate limits and quotas (pipeline/request-limits.ts), shared by the roles of the process
   * that check them; undefined when TALLY_RATE_LIMITS=off.
   */
  limits: RequestLimits | undefined;
  /** A client of `service`: in-process when a role of this process serves it, else gRPC to `address`. */
  client<T extends GenServiceMethods>(service: GenService<T>, address: string): ServiceClient<T>;
}

export interface RoleSpec {
  kind: RoleKind;
  /** The ports the role uses; the process opens the union of its roles' ports. */
  ports: readonly Port[];
  /** A consumer role's group, before TALLY_GROUP_PREFIX. */
  group?: string;
  /**
   * A consumer role's topic, by its configuration name; `deliveries`: every enabled
   * destination's topic (`<prefix>deliveries.<id>`), a set that changes as destinations do.
   */
  topic?: 'events' | 'accepted' | 'deliveries';
  start(wiring: RoleWiring): Promise<Stoppable>;
}

/** The port `role` needs, or a clear failure when the wiring did not open it (a mistake in this table). */
function port<P extends Port>(wiring: RoleWiring, role: string, name: P): NonNullable<Backends[P]> {
  const backend = wiring.backends[name];
  if (!backend)
    throw new Error(`role ${role} needs the ${name} port, which is not open: check its row's ports`);
  return backend as NonNullable<Backends[P]>;
}

/**
 * The longest wait of the live feed's fetches (for 64 KiB of records): a dashboard refreshing a
 * few times a second needs nothing sooner, and the sinks' shorter wait would cost the gateway a
 * fetch every few tens of milliseconds while a dashboard is open.
 */
const LIVE_FEED_MAX_WAIT_MS = 250;

/** The deps and config every sink role shares. */
function sink(
  wiring: RoleWiring,
  role: string,
  group: string,
  topic: 'events' | 'accepted',
): { deps: SinkRoleDeps; config: SinkRoleConfig } {
  const { config } = wiring;
  return {
    deps: {
      log: port(wiring, role, 'log'),
      logger: wiring.logger,
      metrics: wiring.metrics,
      tracer: wiring.tracer,
    },
    config: {
      groupId: `${config.groupPrefix}${group}`,
      eventsTopic: config.topics[topic],
      dlqTopic: config.topics.dlq,
      maxWaitMs: config.consumer.maxWaitMs,
      minBytes: config.consumer.minBytes,
      lagIntervalMs: config.consumer.lagIntervalMs,
      paceMs: config.consumer.paceMs,
    },
  };
}

/** Ingest's hook: a call's events against its credential's, its address's limits and the quota. */
function ingestLimits(limits: RequestLimits | undefined): ingest.IngestDeps['limits'] {
  if (!limits) return undefined;
  if (!limits.perAddress) return (context, events) => limits.ingest({ principal: context.principal }, events);
  return (context, events) =>
    limits.ingest(
      { principal: context.principal, address: limits.callAddress(context) },
      events,
      Math.max(1, limits.callRequests(context)),
    );
}

/**
 * Query's hook: one read against its credential's and its address's limits — but for a trusted
 * gateway's reads for the stream's subscriptions, charged when each was made.
 */
function readLimits(limits: RequestLimits | undefined): query.QueryDeps['limits'] {
  if (!limits) return undefined;
  return async (context) => {
    if (limits.callRequests(context) === 0) return;
    await limits.read({
      principal: context.principal,
      ...(limits.perAddress ? { address: limits.callAddress(context) } : {}),
    });
  };
}

/** Every role, in the order `tally all` lists them. */
export const ROLE_TABLE = {
  gateway: {
    kind: 'http',
    ports: ['log'], // the dashboard's live feed reads the events topic
    start: async (w) => {
      const { config } = w;
      const { hostname } = await import('node:os');
      return gateway.start(
        {
          ingest: w.client(IngestService, config.grpc.ingestAddr),
          query: w.client(QueryService, config.grpc.queryAddr),
          keys: w.client(KeysService, config.grpc.queryAddr),
          alerts: w.client(AlertService, config.grpc.queryAddr),
          notifications: w.client(NotificationService, config.grpc.queryAddr),
          events: w.client(EventLogService, config.grpc.queryAddr),
          destinations: w.client(DestinationService, config.grpc.queryAddr),
          projections: w.client(ProjectionService, config.grpc.queryAddr),
          entities: w.client(EntityService, config.grpc.queryAddr),
          auth: { on: w.auth.on, metricsToken: config.auth.metricsToken },
          logger: w.logger,
          metrics: w.metrics,
          tracer: w.tracer,
          readiness: w.readiness,
          tls: w.tls,
          limits: w.limits,
          // The dashboard's live feed: this process's own group, reading from the end of the log.
          live: {
            log: port(w, 'gateway', 'log'),
            eventsTopic: config.topics.events,
            groupId: `${config.groupPrefix}gateway-live-${hostname()}-${process.pid}`,
            maxWaitMs: LIVE_FEED_MAX_WAIT_MS,
          },
        },
        {
          ...config.http,
          drainTimeoutMs: config.drainTimeoutMs,
          trustedProxies: config.trustedProxies,
          // Calls to ingest carry at most what ingest takes in one call, well under the gRPC limit.
          coalesce: {
            maxBatchEvents: config.ingest.maxBatchEvents,
            maxBatchBytes: Math.floor(config.grpc.maxMessageBytes / 2),
          },
        },
      );
    },
  },
  ingest: {
    kind: 'grpc',
    ports: ['log'],
    start: (w) =>
      ingest.start(
        {
          log: port(w, 'ingest', 'log'),
          grpc: w.grpc,
          logger: w.logger,
          metrics: w.metrics,
          tracer: w.tracer,
          limits: ingestLimits(w.limits),
        },
        {
          eventsTopic: w.config.topics.events,
          maxBatchEvents: w.config.ingest.maxBatchEvents,
          limits: {
            ...defaultEventLimits,
            maxLatenessMs: w.config.ingest.maxLatenessMs,
            maxFutureMs: w.config.ingest.maxFutureMs,
          },
          lingerMs: w.config.ingest.lingerMs,
          maxProduceBatchEvents: w.config.ingest.maxProduceBatchEvents,
          produceTimeoutMs: w.config.ingest.produceTimeoutMs,
          trustedProxies: w.config.trustedProxies,
        },
      ),
  },
  query: {
    kind: 'grpc',
    ports: ['counters', 'sql', 'aggregates'],
    // Also serves tally.v1.KeysService, tally.v1.AlertService, tally.v1.NotificationService,
    // tally.v1.DestinationService, tally.v1.EventLogService, tally.v1.ProjectionService and
    // tally.v1.EntityService: the gRPC role with the SQL port, where the keys, the alert rules, the
    // notifications, the destinations, the events, the projections and the entities are.
    start: async (w) => {
      const sql = port(w, 'query', 'sql');
      registerAlertService({ rules: createSqlRuleStore({ sql }), grpc: w.grpc, logger: w.logger });
      // Destination topics: through this process's event log, or a Kafka admin of its own that
      // connects at the first create or delete (so that Kafka's state never gates query's readiness).
      const topicLog = w.backends.log ?? openTopicAdmin(w.config, w.logger);
      registerDestinationService({
        destinations: createDestinationAdmin({
          store: createSqlDestinationStore({ sql }),
          topics:
            topicLog &&
            createLogDestinationTopics({
              log: topicLog,
              partitions: w.config.topics.eventsPartitions,
              namespace: w.config.groupPrefix,
            }),
        }),
        deliveries: createSqlDeliveryLog({ sql }),
        grpc: w.grpc,
        logger: w.logger,
      });
      const projections = createSqlProjectionStore({ sql });
      registerProjectionService({ projections, grpc: w.grpc, logger: w.logger });
      registerEntityService({ entities: createSqlEntityStore({ sql }), projections, grpc: w.grpc });
      const store = createSqlNotificationStore(sql);
      const watches = createNotificationWatches({ store, logger: w.logger, ...w.config.notifications });
      registerNotificationService({
        store,
        watches,
        grpc: w.grpc,
        logger: w.logger,
        limits: readLimits(w.limits),
      });
      const appends = createAppendWaits(sql, w.logger);
      registerEventLogService(
        { sql, appends, grpc: w.grpc, logger: w.logger, limits: readLimits(w.limits) },
        {
          maxLatenessMs: w.config.ingest.maxLatenessMs,
          settleMs: EVENT_LOG_SETTLE_MS,
          maxUserIdChars: defaultEventLimits.maxUserIdChars,
          maxTargetChars: defaultEventLimits.maxTargetChars,
          maxTypeChars: defaultEventLimits.maxTypeChars,
        },
      );
      const running = await query.start(
        {
          counters: port(w, 'query', 'counters'),
          aggregates: port(w, 'query', 'aggregates'),
          sql,
          keys: w.keys,
          grpc: w.grpc,
          logger: w.logger,
          limits: readLimits(w.limits),
        },
        { maxTargetChars: defaultEventLimits.maxTargetChars },
      );
      return {
        name: running.name,
        async stop() {
          watches.stop();
          await appends.stop();
          await running.stop();
          if (topicLog !== w.backends.log) await topicLog?.close();
        },
      };
    },
  },
  persister: {
    kind: 'consumer',
    ports: ['log', 'sql'],
    group: 'group_persistence',
    topic: 'events',
    start: (w) => {
      const { deps, config } = sink(w, 'persister', 'group_persistence', 'events');
      return persister.start(
        { ...deps, sql: port(w, 'persister', 'sql') },
        {
          ...config,
          acceptedTopic: w.config.topics.accepted,
          eventRetentionDays: w.config.eventRetentionDays,
        },
      );
    },
  },
  counter: {
    kind: 'consumer',
    ports: ['log', 'counters', 'aggregates'],
    group: 'group_realtimecounter',
    topic: 'accepted',
    start: (w) => {
      const { deps, config } = sink(w, 'counter', 'group_realtimecounter', 'accepted');
      return counter.start(
        { ...deps, counters: port(w, 'counter', 'counters'), aggregates: port(w, 'counter', 'aggregates') },
        { ...config, aggregateTypes: w.config.aggregates.types },
      );
    },
  },
  aggregator: {
    kind: 'consumer',
    ports: ['log', 'sql'],
    group: 'group_aggregation',
    topic: 'accepted',
    start: (w) => {
      const { deps, config } = sink(w, 'aggregator', 'group_aggregation', 'accepted');
      return aggregator.start(
        { ...deps, sql: port(w, 'aggregator', 'sql') },
        // Its fetches wait for more records than the others' (summaries may be seconds behind).
        { ...config, ...w.config.consumer.aggregator, positionTopic: w.config.topics.events },
      );
    },
  },
  alerter: {
    kind: 'consumer',
    ports: ['log', 'sql', 'alerts'],
    group: 'group_alerting',
    topic: 'accepted',
    start: async (w) => {
      const { deps, config } = sink(w, 'alerter', 'group_alerting', 'accepted');
      const sql = port(w, 'alerter', 'sql');
      const rules = await startRuleSource({
        store: createSqlRuleStore({ sql }),
        logger: w.logger,
        refreshMs: w.config.alerts.rulesRefreshMs,
      });
      const stores = port(w, 'alerter', 'alerts');
      const running = await alerter.start(
        {
          ...deps,
          milestones: stores.milestones,
          series: stores.series,
          rules: () => rules.inForce(),
          notify: notificationWriter({
            store: createSqlNotificationStore(sql),
            producer: port(w, 'alerter', 'log').producer(),
            topic: w.config.topics.notifications,
            metrics: w.metrics,
          }),
        },
        { ...config, latenessMs: w.config.alerts.latenessMs },
      );
      return {
        name: running.name,
        async stop() {
          rules.stop();
          await running.stop();
        },
      };
    },
  },
  projector: {
    kind: 'consumer',
    ports: ['log', 'sql'],
    group: 'group_projection',
    topic: 'accepted',
    start: async (w) => {
      const { deps, config } = sink(w, 'projector', 'group_projection', 'accepted');
      const sql = port(w, 'projector', 'sql');
      const projections = await startProjectionSource({
        store: createSqlProjectionStore({ sql }),
        logger: w.logger,
        refreshMs: w.config.projections.refreshMs,
      });
      const running = await projector.start(
        { ...deps, sql, projections: () => projections.byType() },
        config,
      );
      return {
        name: running.name,
        async stop() {
          projections.stop();
          await running.stop();
        },
      };
    },
  },
  router: {
    kind: 'consumer',
    ports: ['log', 'sql'],
    group: 'group_routing',
    topic: 'accepted',
    start: async (w) => {
      const { deps, config } = sink(w, 'router', 'group_routing', 'accepted');
      const topics = createLogDestinationTopics({
        log: deps.log,
        partitions: w.config.topics.eventsPartitions,
        namespace: w.config.groupPrefix,
      });
      const destinations = await startDestinationSource({
        store: createSqlDestinationStore({ sql: port(w, 'router', 'sql') }),
        logger: w.logger,
        refreshMs: w.config.delivery.refreshMs,
        topicOf: topics.topicOf,
        // Rejects for a missing topic, at once on every adapter.
        topicExists: (topic) =>
          deps.log.groupOffsets(config.groupId, topic).then(
            () => true,
            () => false,
          ),
        // The producer forgets the topics of deleted destinations (deleted by the query role).
        onDeleted: (ids) => deps.log.deleteTopics(ids.map(topics.topicOf)),
      });
      const running = await router.start({ ...deps, destinations }, config);
      return {
        name: running.name,
        async stop() {
          destinations.stop();
          await running.stop();
        },
      };
    },
  },
  sender: {
    kind: 'consumer',
    ports: ['log', 'sql', 'breakers'],
    group: 'group_sending',
    topic: 'deliveries',
    start: async (w) => {
      const { config } = w;
      const log = port(w, 'sender', 'log');
      const sql = port(w, 'sender', 'sql');
      const { readFile } = await import('node:fs/promises');
      const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
      const webhooks = createWebhookClient({ version, allowList: config.delivery.allowCidrs });
      const remote = new Map<string, EventLog>();
      const running = await sender.start(
        {
          log,
          store: createSqlDeliveryStore({ sql }),
          destinations: createSqlDestinationStore({ sql }),
          breakers: port(w, 'sender', 'breakers'),
          ...(w.backends.destinationLimits && { limiter: w.backends.destinationLimits }),
          webhooks,
          remoteProducer: (brokers) => {
            const key = [...brokers].sort().join(',');
            let other = remote.get(key);
            if (!other) {
              other = createKafkaEventLog({
                brokers: [...brokers],
                clientId: `${config.kafka.clientId}-delivery`,
                produceTimeoutMs: config.ingest.produceTimeoutMs,
                sessionTimeoutMs: config.kafka.sessionTimeoutMs,
                logger: w.logger,
              });
              remote.set(key, other);
            }
            return other.producer();
          },
          logger: w.logger.child({ role: 'sender' }),
          metrics: w.metrics,
          notify: notificationWriter({
            store: createSqlNotificationStore(sql),
            producer: log.producer(),
            topic: config.topics.notifications,
            metrics: w.metrics,
          }),
        },
        {
          groupId: `${config.groupPrefix}group_sending`,
          topicPrefix: `${config.groupPrefix}${DELIVERY_TOPIC_PREFIX}`,
          maxWaitMs: config.consumer.maxWaitMs,
          minBytes: config.consumer.minBytes,
          refreshMs: config.delivery.refreshMs,
          inlineMs: config.delivery.inlineMs,
          pollMs: config.delivery.pollMs,
          leaseMarginMs: config.delivery.leaseMarginMs,
          kafkaTimeoutMs: config.ingest.produceTimeoutMs,
          deliveredRetentionMs: config.delivery.deliveredRetentionMs,
          deadRetentionMs: config.delivery.deadRetentionMs,
        },
      );
      return {
        name: running.name,
        async stop() {
          await running.stop();
          await Promise.allSettled([webhooks.close(), ...[...remote.values()].map((r) => r.close())]);
        },
      };
    },
  },
} as const satisfies Record<string, RoleSpec>;

export type Role = keyof typeof ROLE_TABLE;
export const ROLES = Object.keys(ROLE_TABLE) as Role[];

/** The row of `role`. */
export function roleSpec(role: Role): RoleSpec {
  return ROLE_TABLE[role];
}
