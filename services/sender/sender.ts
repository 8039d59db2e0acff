/**
 * The sender role (group `group_sending`): reads every enabled destination's topic
 * (`<prefix>deliveries.<id>`) and delivers each record to its destination — webhooks signed as
 * Standard Webhooks say, Kafka destinations appended keyed by user — at least once, in per-user
 * order where the destination asks for it, with retries on its schedule, a circuit breaker
 * shared by every sender, and dead letters (docs/delivery.md, "The sender").
 *
 * A batch handler never waits long: each destination's lane (destination-lane.ts) delivers what
 * can go within `inlineMs` and parks the rest in the delivery store, durably, before the handler
 * resolves — so one destination's failures, slowness or rate limit never hold the partitions of
 * another that came in the same fetch. Parked deliveries are drained by each lane on its own, by
 * a poll every `pollMs` and whenever a batch parks. Duplicates the router wrote (a record at or
 * below the highest source offset handled for its source partition) are skipped.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { DASHBOARD_RECIPIENT, type Notification } from '../infra/alerts/notification-store.ts';
import { AppError, Code } from '../infra/app-error.ts';
import type { BreakerStore } from '../infra/delivery/breaker-store.ts';
import type { DeliveryStore } from '../infra/delivery/delivery-store.ts';
import type { Destination, DestinationStore } from '../infra/delivery/destination-store.ts';
import type { WebhookClient } from '../infra/delivery/webhook-client.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { DestinationLimiter } from '../infra/limits/destination-limiter.ts';
import type { ConsumedBatch, EventLog, LogProducer } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';
import { deliveryMetrics, type Registry } from '../infra/metrics.ts';
import { type DeliveryRecord, decodeDeliveryRecord } from '../pipeline/delivery-record.ts';
import { createAttempter } from './attempt.ts';
import { DestinationLane } from './destination-lane.ts';
import { type DestinationSource, startDestinationSource } from './destination-source.ts';
import { TopicSubscription } from './topic-subscription.ts';

export interface SenderDeps {
  log: EventLog;
  store: DeliveryStore;
  destinations: DestinationStore;
  breakers: BreakerStore;
  /**
   * Each destination's concurrency and rate limits, shared by every sender (Redis); without it
   * the limits hold per sender process.
   */
  limiter?: DestinationLimiter;
  webhooks: WebhookClient;
  /** A producer on another Kafka cluster, for Kafka destinations with brokers of their own. */
  remoteProducer(brokers: readonly string[]): LogProducer;
  logger: Logger;
  metrics: Registry;
  /**
   * Where a destination this sender disabled is told of (the notification store and topic, for
   * the dashboard's Alerts panel: pipeline/notification-writer.ts); none: only logged.
   */
  notify?: (notifications: readonly Notification[]) => Promise<void>;
  /** The clock (ms since the epoch); default the system's. */
  now?: () => number;
  /** Uniform in [0, 1), for the retries' jitter; default Math.random. */
  random?: () => number;
}

export interface SenderConfig {
  groupId: string;
  /** The destination topics' prefix: TALLY_GROUP_PREFIX and `deliveries.`. */
  topicPrefix: string;
  maxWaitMs: number;
  /**
   * What a fetch waits for (bytes), up to `maxWaitMs` (TALLY_CONSUMER_MIN_BYTES): a busy topic's
   * records come in batches large enough that a batch's bookkeeping (its marks read, its
   * transaction) is shared by many deliveries. Default: a fetch answers with what is there.
   */
  minBytes?: number;
  /** How often the destinations' change feed is read (ms). */
  refreshMs: number;
  /** How long a batch may deliver before parking what is left (ms). */
  inlineMs: number;
  /** How often the parked deliveries are polled for those due (ms). */
  pollMs: number;
  /** Added to an attempt's timeout in its lease (ms). */
  leaseMarginMs: number;
  /** A Kafka destination's append timeout (ms). */
  kafkaTimeoutMs: number;
  /** Delivered deliveries' rows are kept this long (ms), dead ones `deadRetentionMs`. */
  deliveredRetentionMs: number;
  deadRetentionMs: number;
}

const PRUNE_EVERY_MS = 60_000;
const LIMITER_LOG_EVERY_MS = 60_000;

/** Logs the shared limiter's failures, the first at once and then at most once a minute, with how many. */
function limiterFailureLog(logger: Logger, now: () => number): (error: unknown) => void {
  let lastMs = Number.NEGATIVE_INFINITY;
  let unlogged = 0;
  return (error) => {
    unlogged++;
    if (now() - lastMs < LIMITER_LOG_EVERY_MS) return;
    lastMs = now();
    logger.warn("shared destination limiter failed: pacing by this sender's own limits", {
      failures: unlogged,
      error: error instanceof Error ? error.message : String(error),
    });
    unlogged = 0;
  };
}
const PRUNE_LIMIT = 10_000;
const PARKED_SAMPLE_MS = 5_000;

export async function start(deps: SenderDeps, config: SenderConfig): Promise<Stoppable> {
  const { logger, store } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const metrics = deliveryMetrics(deps.metrics);
  const owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const stopping = new AbortController();
  const attempt = createAttempter({
    webhooks: deps.webhooks,
    producer: deps.log.producer(),
    remoteProducer: deps.remoteProducer,
    now,
  });
  const lanes = new Map<string, DestinationLane>();
  const laneDeps = {
    store,
    breakers: deps.breakers,
    attempt,
    disable: async (d: Destination, reason: string) => {
      if (!(await disableDestination(deps.destinations, d, reason))) return;
      await deps.notify?.([destinationDisabled(d, reason, now())]).catch((error: unknown) =>
        logger.warn('the notification of a disabled destination was not sent', {
          destination: d.id,
          error: error instanceof Error ? error.message : String(error),
        }),
      );
    },
    logger,
    metrics,
    owner,
    now,
    random,
    stopping: stopping.signal,
    ...(deps.limiter && { limiter: deps.limiter, limiterFailed: limiterFailureLog(logger, now) }),
  };
  const timings = { leaseMarginMs: config.leaseMarginMs, kafkaTimeoutMs: config.kafkaTimeoutMs };
  const idOf = (topic: string) =>
    topic.startsWith(config.topicPrefix) ? topic.slice(config.topicPrefix.length) : undefined;

  let source: DestinationSource | undefined;
  const syncLanes = () => {
    const enabled = source!.enabled();
    const ids = new Set(enabled.map((d) => d.id));
    for (const d of enabled) {
      const lane = lanes.get(d.id);
      if (lane) lane.update(d);
      else {
        lanes.set(d.id, new DestinationLane(d, laneDeps, timings));
        // Enabled again (or new): its breaker starts closed.
        if (source!.revision() > startRevision) void deps.breakers.reset(d.id).catch(() => {});
      }
    }
    for (const [id, lane] of lanes)
      if (!ids.has(id)) {
        lanes.delete(id);
        void lane.settled();
      }
    return enabled.map((d) => `${config.topicPrefix}${d.id}`);
  };

  const handler = async (batch: ConsumedBatch) => {
    const id = idOf(batch.topic);
    if (id === undefined) return;
    const records: DeliveryRecord[] = [];
    for (const r of batch.records) {
      const decoded = decodeDeliveryRecord(r);
      if (typeof decoded === 'string') {
        metrics.invalidRecords.inc();
        logger.warn('record of a destination topic skipped: no router wrote it', {
          topic: batch.topic,
          partition: batch.partition,
          offset: r.offset.toString(),
          problem: decoded,
        });
      } else records.push(decoded);
    }
    const sources = [...new Set(records.map((r) => r.sourcePartition))];
    const marks = await store.positions(id, batch.partition, sources);
    const fresh: DeliveryRecord[] = [];
    const positions = new Map(marks);
    for (const r of records) {
      const mark = positions.get(r.sourcePartition);
      if (mark !== undefined && r.sourceOffset <= mark) {
        metrics.duplicates.inc({ destination: id });
        continue;
      }
      positions.set(r.sourcePartition, r.sourceOffset);
      fresh.push(r);
    }
    // Only the marks this batch raised.
    for (const [p, o] of [...positions]) if (marks.get(p) === o) positions.delete(p);
    const lane = lanes.get(id);
    if (!lane) {
      // Disabled (or deleted) since the subscription: parked for when it is enabled again.
      await store.settle(
        id,
        batch.partition,
        fresh.map((r) => ({
          messageId: r.messageId,
          userKey: r.userId !== '' ? r.userId : r.eventId,
          eventId: r.eventId,
          eventType: r.eventType,
          occurredAtMs: r.occurredAtMs,
          sourcePartition: r.sourcePartition,
          sourceOffset: r.sourceOffset,
          body: r.body,
          state: 'pending' as const,
          attempts: 0,
          nextAttemptAtMs: now(),
          log: [],
        })),
        positions,
        now(),
      );
      return;
    }
    await lane.handle(fresh, batch.partition, positions, now() + config.inlineMs);
  };

  const subscription = new TopicSubscription({
    log: deps.log,
    groupId: config.groupId,
    maxWaitMs: config.maxWaitMs,
    ...(config.minBytes === undefined ? {} : { minBytes: config.minBytes }),
    handler,
    logger,
  });
  let startRevision = 0;
  const follow = () =>
    subscription.follow(syncLanes()).catch((error) =>
      logger.error('destination topics not followed; tried again at the next refresh', {
        error: error instanceof Error ? error.message : String(error),
      }),
    );
  source = await startDestinationSource({
    store: deps.destinations,
    logger,
    refreshMs: config.refreshMs,
    onChange: () => void follow(),
  });
  startRevision = source.revision();
  await subscription.follow(syncLanes());

  // The poll: parked deliveries due now, per destination; topics missing at the last follow.
  let polling: Promise<void> | undefined;
  const poll = () => {
    polling ??= (async () => {
      try {
        const due = await store.dueDestinations(now());
        for (const id of due) lanes.get(id)?.wake();
        if (subscription.topics.length < lanes.size) await follow();
      } catch (error) {
        logger.warn('parked deliveries not polled', {
          error: error instanceof Error ? error.message : String(error),
        });
      } finally {
        polling = undefined;
      }
    })();
    return polling;
  };
  const pollTimer = setInterval(() => void poll(), config.pollMs);
  const sample = async () => {
    try {
      const counts = await store.pendingCounts();
      for (const id of lanes.keys()) metrics.parked.set({ destination: id }, counts.get(id) ?? 0);
    } catch {
      // sampled again
    }
  };
  const sampleTimer = setInterval(() => void sample(), PARKED_SAMPLE_MS);
  const prune = async () => {
    try {
      const pruned = await store.prune({
        deliveredBeforeMs: now() - config.deliveredRetentionMs,
        deadBeforeMs: now() - config.deadRetentionMs,
        limit: PRUNE_LIMIT,
      });
      if (pruned > 0) logger.info('delivery log pruned', { deliveries: pruned });
    } catch (error) {
      logger.warn('delivery log not pruned', {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };
  const pruneTimer = setInterval(() => void prune(), PRUNE_EVERY_MS);
  for (const t of [pollTimer, sampleTimer, pruneTimer]) t.unref();
  void poll();
  logger.info('sender started', { owner, destinations: lanes.size });

  return {
    name: 'sender',
    async stop() {
      source?.stop();
      for (const t of [pollTimer, sampleTimer, pruneTimer]) clearInterval(t);
      await subscription.stop();
      stopping.abort();
      await polling;
      await Promise.all([...lanes.values()].map((lane) => lane.settled()));
    },
  };
}

/** Disables `d` with `reason`, as an administrator would (the change feed tells every sender). */
/**
 * The notification of a destination disabled by a sender, for the dashboard: its id names the
 * destination and the revision it was disabled from, so one disabling is told once, however
 * often a sender tries, and a destination enabled again and disabled again is told again.
 */
export function destinationDisabled(d: Destination, reason: string, atMs: number): Notification {
  return {
    id: `destination-disabled:${d.id}:${d.revision}`,
    ruleId: '',
    kind: 'destination',
    target: d.id,
    type: '',
    value: 0,
    occurredAt: new Date(atMs),
    recipients: [DASHBOARD_RECIPIENT],
    message: `destination ${JSON.stringify(d.name)} (${d.id}) was disabled: ${reason}`,
  };
}

/** Disables `d` unless it is disabled already; answers whether this call disabled it. */
export async function disableDestination(
  store: DestinationStore,
  d: Destination,
  reason: string,
): Promise<boolean> {
  for (let tries = 0; ; tries++) {
    const current = tries === 0 ? d : await store.get(d.id);
    if (!current?.enabled) return false;
    try {
      await store.update(
        current.id,
        {
          name: current.name,
          enabled: false,
          disabledReason: reason,
          endpoint: current.endpoint,
          filter: current.filter,
          transform: current.transform,
          ordering: current.ordering,
          retryDelaysSeconds: current.retryDelaysSeconds,
          ...(current.rateLimitPerSecond === undefined
            ? {}
            : { rateLimitPerSecond: current.rateLimitPerSecond }),
          concurrency: current.concurrency,
        },
        current.revision,
      );
      return true;
    } catch (error) {
      // Changed meanwhile: read it again and decide on what it is now.
      if (!(error instanceof AppError && error.code === Code.ABORTED) || tries >= 3) throw error;
    }
  }
}
