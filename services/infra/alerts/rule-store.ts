/**
 * The alert rule store port: rules as administrators manage them (create, get, list, update,
 * delete), and a change feed by revision for the process that evaluates them. Adapter:
 * sql-rule-store.ts, on the SQL port, so the same code serves PostgreSQL and the embedded PGlite.
 * docs/alerts.md describes the rules.
 */
import type { AlertRuleInput, AlertRuleSpec } from '../../domain/alert-rules.ts';

/** A stored rule: its spec with every default filled, its id, times and revision. */
export interface AlertRule extends AlertRuleSpec {
  /** `ar_` and 10 base62 characters, made by the store. */
  id: string;
  createdAt: Date;
  updatedAt: Date;
  /** The store's revision at the rule's last write; grows with every write to any rule. */
  revision: number;
}

/** Every enabled rule at one revision. */
export interface AlertRuleSnapshot {
  /** The revision the snapshot is complete up to: pass it to {@link RuleStore.changesSince}. */
  revision: number;
  /** Oldest first. */
  rules: AlertRule[];
}

/** What changed after a revision, up to `revision`. */
export interface AlertRuleChanges {
  /** The revision the answer is complete up to: pass it to the next call. */
  revision: number;
  /** Rules created or updated since, as they are now, enabled or not; in revision order. */
  changed: AlertRule[];
  /** Ids of the rules deleted since. */
  deleted: string[];
}

export interface RuleStore {
  /** Which adapter, for logs. */
  readonly description: string;
  /**
   * Stores a new rule with a new id, defaults filled; INVALID_ARGUMENT with every field at fault
   * (paths relative to the rule, as the proto names them: `milestone.thresholds[2]`).
   */
  create(input: AlertRuleInput): Promise<AlertRule>;
  /** The rule with `id`; undefined when there is none (or it was deleted). */
  get(id: string): Promise<AlertRule | undefined>;
  /** Every rule, oldest first (rules made in the same millisecond by id). */
  list(): Promise<AlertRule[]>;
  /**
   * Replaces a rule's name, state, event type, recipients and condition (an absent `enabled` keeps
   * its state); its id and creation time stay. NOT_FOUND for an unknown id; ABORTED when
   * `expectedRevision` is given and the rule was changed since (read it again); INVALID_ARGUMENT
   * as create.
   */
  update(id: string, input: AlertRuleInput, expectedRevision?: number): Promise<AlertRule>;
  /** Deletes a rule (a tombstone the change feed reports); NOT_FOUND for an unknown or deleted id. */
  delete(id: string): Promise<AlertRule>;
  /** The store's current revision: one cheap read, to tell whether anything changed. */
  revision(): Promise<number>;
  /** Every enabled rule, and the revision that snapshot is at. */
  loadEnabled(): Promise<AlertRuleSnapshot>;
  /** The rules written and deleted after `revision`, and the revision the answer reaches. */
  changesSince(revision: number): Promise<AlertRuleChanges>;
}
