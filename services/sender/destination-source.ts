/**
 * The destinations a sender serves: every enabled one, loaded once and kept current from the
 * destination store's change feed (a destination created, changed, disabled or deleted takes
 * effect within `refreshMs`). A failed refresh keeps what it had and tries again at the next
 * tick (logged once until it recovers). `onChange` hears each change of the set or of a
 * destination, after it was applied.
 */
import type { Destination, DestinationStore } from '../infra/delivery/destination-store.ts';
import type { Logger } from '../infra/logger.ts';

export interface DestinationSource {
  /** The enabled destination with `id`, as it is now. */
  get(id: string): Destination | undefined;
  /** Every enabled destination. */
  enabled(): Destination[];
  revision(): number;
  /** Reads the change feed now (the timer does it every `refreshMs`). */
  refresh(): Promise<void>;
  stop(): void;
}

export interface DestinationSourceOptions {
  store: Pick<DestinationStore, 'loadEnabled' | 'changesSince'>;
  logger: Logger;
  refreshMs: number;
  onChange?: () => void;
}

export async function startDestinationSource(options: DestinationSourceOptions): Promise<DestinationSource> {
  const { store, logger } = options;
  const snapshot = await store.loadEnabled();
  const destinations = new Map(snapshot.destinations.map((d) => [d.id, d]));
  let revision = snapshot.revision;
  let failing = false;
  let refreshing: Promise<void> | undefined;

  const refresh = (): Promise<void> => {
    refreshing ??= (async () => {
      try {
        const changes = await store.changesSince(revision);
        for (const d of changes.changed)
          if (d.enabled) destinations.set(d.id, d);
          else destinations.delete(d.id);
        for (const id of changes.deleted) destinations.delete(id);
        revision = changes.revision;
        if (failing) logger.info('destinations readable again', { revision });
        failing = false;
        if (changes.changed.length > 0 || changes.deleted.length > 0) {
          logger.info('destinations changed', {
            revision,
            changed: changes.changed.length,
            deleted: changes.deleted.length,
            enabled: destinations.size,
          });
          options.onChange?.();
        }
      } catch (error) {
        if (!failing)
          logger.warn('destinations could not be read; keeping those in hand (logged again once readable)', {
            error: error instanceof Error ? error.message : String(error),
          });
        failing = true;
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  };
  const timer = setInterval(() => void refresh(), options.refreshMs);
  timer.unref();
  logger.info('destinations loaded', { revision, enabled: destinations.size });
  return {
    get: (id) => destinations.get(id),
    enabled: () => [...destinations.values()],
    revision: () => revision,
    refresh,
    stop: () => clearInterval(timer),
  };
}
