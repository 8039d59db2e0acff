/**
 * The sender's consumer, following a set of topics that changes: the event log port's consumer
 * takes its topics once, so a change of the set stops the consumer (its batch in hand finishes
 * and commits) and starts another on the new set, in the same group. Topics that do not exist
 * (a destination whose topic was never made, or was deleted meanwhile) are left out, and asked
 * for again at the next `follow`. Calls are serialised.
 */
import type { BatchHandler, EventLog, LogConsumer } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';

export interface TopicSubscriptionOptions {
  log: EventLog;
  groupId: string;
  maxWaitMs: number;
  minBytes?: number;
  handler: BatchHandler;
  logger: Logger;
}

export class TopicSubscription {
  readonly #options: TopicSubscriptionOptions;
  #consumer: LogConsumer | undefined;
  #topics: string[] = [];
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: TopicSubscriptionOptions) {
    this.#options = options;
  }

  /** The topics consumed now. */
  get topics(): readonly string[] {
    return this.#topics;
  }

  /** Consumes `wanted` (those that exist) from now on; resolves once the consumer runs on them. */
  follow(wanted: readonly string[]): Promise<void> {
    const next = this.#queue.then(() => this.#follow(wanted));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #follow(wanted: readonly string[]): Promise<void> {
    if (this.#stopped) return;
    const { log, logger } = this.#options;
    const kept = new Set(this.#topics);
    const candidates = [...new Set(wanted)].sort();
    const present = (
      await Promise.all(
        candidates.map(async (topic) => {
          if (kept.has(topic)) return topic;
          try {
            await log.endOffsets(topic);
            return topic;
          } catch {
            return undefined;
          }
        }),
      )
    ).filter((t): t is string => t !== undefined);
    const missing = candidates.filter((t) => !present.includes(t));
    if (missing.length > 0) logger.warn('destination topics missing: not consumed yet', { topics: missing });
    if (present.length === this.#topics.length && present.every((t, i) => t === this.#topics[i])) return;
    await this.#consumer?.stop();
    this.#consumer = undefined;
    this.#topics = [];
    if (present.length === 0) {
      logger.info('no destination topic to consume');
      return;
    }
    const consumer = log.consumer({
      groupId: this.#options.groupId,
      topics: present,
      fromBeginning: true,
      maxWaitMs: this.#options.maxWaitMs,
      ...(this.#options.minBytes === undefined ? {} : { minBytes: this.#options.minBytes }),
    });
    this.#consumer = consumer;
    this.#topics = present;
    await consumer.run(this.#options.handler);
    logger.info('consuming destination topics', { topics: present.length });
  }

  /** Stops the consumer: its batch in hand finishes and commits. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#queue;
    await this.#consumer?.stop();
    this.#consumer = undefined;
  }
}
