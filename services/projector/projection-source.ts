/**
 * The projections in force for the projector: read at start, then again every `refreshMs`
 * (TALLY_PROJECTIONS_REFRESH_MS), so a projection put or deleted takes effect within that time. A
 * failed read keeps the last list (logged); the first must succeed.
 */
import type { Projection } from '../domain/projections.ts';
import type { ProjectionStore } from '../infra/entities/projection-store.ts';
import type { Logger } from '../infra/logger.ts';

export interface ProjectionSource {
  /** The projections in force, indexed by the event types they project. */
  byType(): ReadonlyMap<string, readonly Projection[]>;
  stop(): void;
}

export function indexByType(projections: readonly Projection[]): Map<string, Projection[]> {
  const index = new Map<string, Projection[]>();
  for (const p of projections)
    for (const e of p.events) {
      const list = index.get(e.type) ?? [];
      list.push(p);
      index.set(e.type, list);
    }
  return index;
}

export async function startProjectionSource(options: {
  store: ProjectionStore;
  logger: Logger;
  refreshMs: number;
}): Promise<ProjectionSource> {
  const logger = options.logger.child({ component: 'projections' });
  let index = indexByType(await options.store.list());
  let revisions = '';
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const refresh = async () => {
    try {
      const list = await options.store.list();
      const now = list.map((p) => `${p.kind}@${p.revision}`).join(',');
      if (now !== revisions) {
        if (revisions !== '') logger.info('projections changed', { projections: now });
        revisions = now;
      }
      index = indexByType(list);
    } catch (error) {
      logger.warn('projections not read; keeping the last ones', { error });
    }
    if (!stopped) timer = setTimeout(refresh, options.refreshMs);
  };
  timer = setTimeout(refresh, options.refreshMs);
  return {
    byType: () => index,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
