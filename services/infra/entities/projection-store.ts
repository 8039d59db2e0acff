/**
 * The projection store port: projections as administrators manage them (put, get, list, delete),
 * and the list the projector reads. Adapter: sql-projection-store.ts, on the SQL port, so the same
 * code serves PostgreSQL and the embedded PGlite. docs/entities.md describes projections.
 */
import type { Projection, ProjectionInput } from '../../domain/projections.ts';

export interface ProjectionStore {
  /** Which adapter, for logs. */
  readonly description: string;
  /** Every projection, by kind. */
  list(): Promise<Projection[]>;
  /** The projection of `kind`; undefined when there is none. */
  get(kind: string): Promise<Projection | undefined>;
  /**
   * Creates or replaces the projection of `input.kind`, validated: INVALID_ARGUMENT naming every
   * field at fault (paths as the proto names them: `events[2].state`); ABORTED when
   * `expectedRevision` is given and the projection is not at it (0: must not exist yet).
   */
  put(
    input: ProjectionInput,
    expectedRevision?: number,
  ): Promise<{ projection: Projection; created: boolean }>;
  /** Deletes a projection (its entities stay until deleted with it); NOT_FOUND for an unknown kind. */
  delete(kind: string): Promise<Projection>;
}
