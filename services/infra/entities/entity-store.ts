/**
 * The entity store port, as the APIs read it: one entity, a kind's entities by state and
 * attributes in keyset pages, and the live counts. Adapter: sql-entity-store.ts (PostgreSQL or
 * PGlite). The projector writes the same tables (projector/projector.ts).
 */
import type { CountKey, EntityState } from '../../domain/projections.ts';

export interface StoredEntity extends EntityState {
  updatedAt: Date;
  /** The live count keys it is counted under (its projection's count_by when it was last written). */
  counted: CountKey[];
}

export interface EntityListing {
  kind: string;
  /** Only entities in this state; absent: any. */
  state?: string;
  /** Only entities whose attributes have these values. */
  attributes: Readonly<Record<string, string>>;
  /** Entities with ids after this one (code-point order); absent: from the first. */
  afterId?: string;
  /** At most this many. */
  limit: number;
}

export interface LiveCount {
  /** The attribute's value ('' for counts by state alone). */
  value: string;
  state: string;
  count: number;
}

export interface EntityStore {
  readonly description: string;
  get(kind: string, id: string): Promise<StoredEntity | undefined>;
  /** A page of entities in id order. */
  list(listing: EntityListing): Promise<StoredEntity[]>;
  /**
   * The live counts of `kind` kept by `attribute` ('' : by state alone), non-zero ones, by value
   * then state; `states` given: only those.
   */
  counts(kind: string, attribute: string, states?: readonly string[]): Promise<LiveCount[]>;
}
