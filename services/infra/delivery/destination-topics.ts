/**
 * The destination topics port: each destination's own topic (`deliveries.<id>`), into which the
 * router writes the destination's events and from which its senders read, so that one
 * destination's backlog never holds another's. Created with the destination, deleted with it.
 *
 * Adapter: {@link createLogDestinationTopics}, on the event log port, whose adapters do the work —
 * Kafka's admin API (CreateTopics, DeleteTopics) on the real servers, a directory of segment
 * files in the embedded log.
 */
import { DELIVERY_TOPIC_PREFIX } from '../../domain/destinations.ts';
import type { EventLog } from '../log/event-log.ts';

export interface DestinationTopics {
  /** The topic of destination `id`. */
  topicOf(id: string): string;
  /** Creates the destination's topic; an existing one is kept as it is. */
  create(id: string): Promise<void>;
  /** Deletes the destination's topic and its records; a missing one is no error. */
  delete(id: string): Promise<void>;
}

export interface LogDestinationTopicsOptions {
  log: EventLog;
  /** Partitions of each delivery topic (the events topic's count by default in main.ts). */
  partitions: number;
  /** Put before `deliveries.` (TALLY_GROUP_PREFIX: deployments sharing a cluster keep apart); default none. */
  namespace?: string;
}

export function createLogDestinationTopics(options: LogDestinationTopicsOptions): DestinationTopics {
  const { log, partitions } = options;
  const topicOf = (id: string) => `${options.namespace ?? ''}${DELIVERY_TOPIC_PREFIX}${id}`;
  return {
    topicOf,
    create: (id) => log.ensureTopics([{ name: topicOf(id), partitions }]),
    delete: (id) => log.deleteTopics([topicOf(id)]),
  };
}
