/**
 * The destination store port: destinations as administrators manage them (create, get, list,
 * update, delete, rotate a signing secret), and a change feed by revision for the roles that
 * deliver (the router and the senders follow it as the alerter follows its rules). Adapter:
 * sql-destination-store.ts, on the SQL port, so the same code serves PostgreSQL and the embedded
 * PGlite. docs/delivery.md describes destinations.
 */
import type { DestinationInput, DestinationSpec, SigningSecret } from '../../domain/destinations.ts';

/** A stored destination: its spec with every default filled, its id, secrets, times and revision. */
export interface Destination extends DestinationSpec {
  /** `ds_` and 10 base62 characters, made by the store. */
  id: string;
  /** A webhook's signing secrets, newest first (1 to 3); none for a Kafka destination. */
  signingSecrets: SigningSecret[];
  createdAt: Date;
  updatedAt: Date;
  /** The store's revision at the destination's last write; grows with every write to any destination. */
  revision: number;
}

/** Every enabled destination at one revision. */
export interface DestinationSnapshot {
  /** The revision the snapshot is complete up to: pass it to {@link DestinationStore.changesSince}. */
  revision: number;
  /** Oldest first. */
  destinations: Destination[];
}

/** What changed after a revision, up to `revision`. */
export interface DestinationChanges {
  /** The revision the answer is complete up to: pass it to the next call. */
  revision: number;
  /** Destinations created or updated since, as they are now, enabled or not; in revision order. */
  changed: Destination[];
  /** Ids of the destinations deleted since. */
  deleted: string[];
}

export interface RotateSecretOptions {
  /** The new secret (`whsec_…`); absent: the store makes one. */
  secret?: string;
  /** How long the secrets in use keep signing beside the new one (default 24 h; 0: they stop at once). */
  graceSeconds?: number;
}

export interface DestinationStore {
  /** Which adapter, for logs. */
  readonly description: string;
  /**
   * Stores a new destination with a new id, defaults filled. A webhook signs with `secrets` (1 to
   * 3, `whsec_…`), or with one the store makes when none are given. INVALID_ARGUMENT with every
   * field at fault (paths relative to the destination, as the proto names them: `webhook.url`;
   * the secrets' `signing_secrets[i]`).
   */
  create(input: DestinationInput, secrets?: readonly string[]): Promise<Destination>;
  /** The destination with `id`; undefined when there is none (or it was deleted). */
  get(id: string): Promise<Destination | undefined>;
  /** Every destination, oldest first (those made in the same millisecond by id). */
  list(): Promise<Destination[]>;
  /**
   * Replaces a destination's fields (an absent `enabled` keeps its state, and its reason); its
   * id, kind, secrets and creation time stay. NOT_FOUND for an unknown id; ABORTED when
   * `expectedRevision` is given and it was changed since; INVALID_ARGUMENT as create, and for a
   * change of kind (`endpoint`).
   */
  update(id: string, input: DestinationInput, expectedRevision?: number): Promise<Destination>;
  /**
   * Adds a signing secret to a webhook, newest first; the secrets in use keep signing for the
   * grace period. NOT_FOUND as update; FAILED_PRECONDITION for a Kafka destination, or when more
   * than 3 secrets would sign at once; INVALID_ARGUMENT for a bad `secret` or `grace_seconds`.
   */
  rotateSecret(id: string, options?: RotateSecretOptions): Promise<Destination>;
  /** Deletes a destination (a tombstone the change feed reports, its secrets erased); NOT_FOUND for an unknown or deleted id. */
  delete(id: string): Promise<Destination>;
  /** The store's current revision: one cheap read, to tell whether anything changed. */
  revision(): Promise<number>;
  /** Every enabled destination, and the revision that snapshot is at. */
  loadEnabled(): Promise<DestinationSnapshot>;
  /** The destinations written and deleted after `revision`, and the revision the answer reaches. */
  changesSince(revision: number): Promise<DestinationChanges>;
}
