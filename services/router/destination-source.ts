/**
 * The destinations the router routes to: every enabled destination, loaded once and kept current
 * from the destination store's change feed (a destination created, changed, disabled or deleted
 * takes effect within `refreshMs`), indexed into a routing table. A failed refresh keeps the
 * table it had and tries again at the next tick (logged once until it recovers).
 *
 * A destination that becomes enabled after the start (created, or enabled again) is routed to once
 * its topic exists: the store keeps a new destination a moment before its topic is made, and a
 * write to a topic that does not exist yet would hold the batch (on Kafka, for the produce timeout).
 */
import type { Destination, DestinationStore } from '../infra/delivery/destination-store.ts';
import type { Logger } from '../infra/logger.ts';
import { NO_ROUTES, type RoutingTable, routingTable } from './routing-table.ts';

export interface DestinationSource {
  /** The routing table now. */
  table(): RoutingTable;
  /** Whether destination `id` is routed to now (enabled, its topic seen). */
  routes(id: string): boolean;
  /** The store's revision the table is current to. */
  revision(): number;
  /** Reads the change feed now (the timer does it every `refreshMs`); concurrent calls share one read. */
  refresh(): Promise<void>;
  stop(): void;
}

export interface DestinationSourceOptions {
  store: Pick<DestinationStore, 'loadEnabled' | 'changesSince'>;
  logger: Logger;
  /** How often the change feed is read (ms). */
  refreshMs: number;
  /** The topic of a destination. */
  topicOf(id: string): string;
  /** Whether a topic exists (false on any doubt: asked again at the next refresh). */
  topicExists(topic: string): Promise<boolean>;
  /** Told the destinations deleted since the last refresh (their topics are gone); a failure is logged. */
  onDeleted?(ids: readonly string[]): Promise<void> | void;
}

/** Loads the enabled destinations and starts following the change feed. */
export async function startDestinationSource(options: DestinationSourceOptions): Promise<DestinationSource> {
  const { store, logger } = options;
  const snapshot = await store.loadEnabled();
  /** Every enabled destination, by id. */
  const enabled = new Map(snapshot.destinations.map((d) => [d.id, d]));
  /** Enabled since the start, their topics not yet seen. */
  const pending = new Set<string>();
  let revision = snapshot.revision;
  let table = build();
  let failing = false;
  let refreshing: Promise<void> | undefined;

  function build(): RoutingTable {
    const routed = [...enabled.values()].filter((d) => !pending.has(d.id));
    return routed.length === 0 ? NO_ROUTES : routingTable(routed, options.topicOf);
  }

  /** Moves the pending destinations whose topics now exist into the table; true when any did. */
  async function admitPending(): Promise<boolean> {
    let admitted = false;
    for (const id of [...pending]) {
      if (!(await options.topicExists(options.topicOf(id)))) continue;
      pending.delete(id);
      admitted = true;
    }
    return admitted;
  }

  const refresh = (): Promise<void> => {
    refreshing ??= (async () => {
      try {
        const changes = await store.changesSince(revision);
        for (const d of changes.changed) apply(d);
        for (const id of changes.deleted) {
          enabled.delete(id);
          pending.delete(id);
        }
        const changed = changes.changed.length > 0 || changes.deleted.length > 0;
        const admitted = pending.size > 0 && (await admitPending());
        if (changed || admitted) {
          table = build();
          logger.info('destinations changed', {
            revision: changes.revision,
            changed: changes.changed.length,
            deleted: changes.deleted.length,
            routed: table.size,
            waitingForTopics: pending.size,
          });
        }
        revision = changes.revision;
        if (changes.deleted.length > 0) await forget(changes.deleted);
        if (failing) logger.info('destinations readable again', { revision });
        failing = false;
      } catch (error) {
        if (!failing)
          logger.warn(
            'destinations could not be read; keeping the routes in force (logged again once readable)',
            { error: error instanceof Error ? error.message : String(error) },
          );
        failing = true;
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  };

  async function forget(ids: readonly string[]): Promise<void> {
    try {
      await options.onDeleted?.(ids);
    } catch (error) {
      logger.warn('the topics of deleted destinations could not be forgotten', {
        destinations: ids,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  function apply(d: Destination): void {
    if (!d.enabled) {
      enabled.delete(d.id);
      pending.delete(d.id);
      return;
    }
    if (!enabled.has(d.id)) pending.add(d.id);
    enabled.set(d.id, d);
  }

  const timer = setInterval(() => void refresh(), options.refreshMs);
  timer.unref();
  logger.info('destinations loaded', { revision, routed: table.size });
  return {
    table: () => table,
    routes: (id) => enabled.has(id) && !pending.has(id),
    revision: () => revision,
    refresh,
    stop: () => clearInterval(timer),
  };
}
