/**
 * The alert rule store on the SQL port (tables `alert_rule` and `alert_rule_clock`, migration
 * 0005): PostgreSQL and the embedded PGlite alike. Every write takes the next revision from the
 * one-row clock, whose row lock holds other writers until it commits, so revisions become visible
 * in order and a reader that saw revision r has seen every write up to r. Deletes leave a
 * tombstone, so that the change feed reports them. Timestamps come from the store's clock.
 */
import { randomBytes } from 'node:crypto';
import {
  ALERT_RULE_ID_RANDOM_BYTES,
  type AlertCondition,
  type AlertRuleInput,
  type AlertRuleKind,
  type AlertRuleSpec,
  type AlertSubject,
  formatAlertRuleId,
  isAlertRuleId,
  validateAlertRule,
} from '../../domain/alert-rules.ts';
import { AppError, Code } from '../app-error.ts';
import type { SqlDatabase, SqlExecutor } from '../sql/sql-database.ts';
import type { AlertRule, RuleStore } from './rule-store.ts';

export interface SqlRuleStoreOptions {
  sql: SqlDatabase;
  /** The clock (default: the system's). */
  now?: () => Date;
  /** Random bytes for new ids (default: node's CSPRNG). */
  random?: (bytes: number) => Uint8Array;
}

interface Row {
  id: string;
  name: string;
  enabled: boolean;
  event_type: string;
  kind: AlertRuleKind;
  subject_kind: AlertSubject['kind'];
  subject: string;
  condition: Record<string, unknown>;
  recipient_user_ids: string[];
  recipient_groups: string[];
  notify_target_owner: boolean;
  notify_dashboard: boolean;
  created_at: Date;
  updated_at: Date;
  revision: number;
  deleted_at: Date | null;
}

const COLUMNS = `id, name, enabled, event_type, kind, subject_kind, subject, condition, recipient_user_ids,
  recipient_groups, notify_target_owner, notify_dashboard, created_at, updated_at, revision, deleted_at`;
const R_COLUMNS = COLUMNS.split(',')
  .map((c) => `r.${c.trim()}`)
  .join(', ');

/** Attempts at an id no other rule has (two share one with odds of about 2^-59 each). */
const ID_ATTEMPTS = 5;

/** The columns a spec is written to, in the order of {@link WRITE_COLUMNS}. */
function specParams(spec: AlertRuleSpec): unknown[] {
  const { kind, subject, ...params } = spec.condition;
  return [
    spec.name,
    spec.enabled,
    spec.eventType,
    kind,
    subject.kind,
    subject.value,
    JSON.stringify(params),
    spec.recipients.userIds,
    spec.recipients.groups,
    spec.recipients.targetOwner,
    spec.recipients.dashboard,
  ];
}
const WRITE_COLUMNS = `name, enabled, event_type, kind, subject_kind, subject, condition, recipient_user_ids,
  recipient_groups, notify_target_owner, notify_dashboard`;
const WRITE_VALUES = '$1, $2, $3, $4, $5, $6, $7::jsonb, $8::text[], $9::text[], $10, $11';

export function createSqlRuleStore(options: SqlRuleStoreOptions): RuleStore {
  const { sql } = options;
  const now = options.now ?? (() => new Date());
  const random = options.random ?? ((n: number) => new Uint8Array(randomBytes(n)));

  const validated = (input: AlertRuleInput): AlertRuleSpec => {
    const result = validateAlertRule(input);
    if (result.ok) return result.spec;
    const [first] = result.violations;
    throw new AppError(Code.INVALID_ARGUMENT, `${first!.field}: ${first!.description}`, {
      fieldViolations: result.violations,
    });
  };

  /** The next revision; holds the clock's row lock until the transaction ends. */
  const nextRevision = async (tx: SqlExecutor): Promise<number> => {
    const [row] = await tx.query<{ revision: number }>(
      'UPDATE alert_rule_clock SET revision = revision + 1 RETURNING revision',
    );
    return Number(row!.revision);
  };

  const live = async (tx: SqlExecutor, id: string, lock: boolean): Promise<AlertRule | undefined> => {
    if (!isAlertRuleId(id)) return undefined;
    const [row] = await tx.query<Row>(
      `SELECT ${COLUMNS} FROM alert_rule WHERE id = $1 AND deleted_at IS NULL${lock ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return row && toRule(row);
  };

  return {
    description: `alert rule store on ${sql.description}`,

    async create(input) {
      const spec = validated(input);
      return sql.transaction(async (tx) => {
        const at = now();
        const revision = await nextRevision(tx);
        for (let attempt = 1; ; attempt++) {
          const id = formatAlertRuleId(random(ALERT_RULE_ID_RANDOM_BYTES));
          // A savepoint, so that an id taken by another rule fails this attempt and not the transaction.
          await tx.query('SAVEPOINT new_rule');
          try {
            const [row] = await tx.query<Row>(
              `INSERT INTO alert_rule (${WRITE_COLUMNS}, id, created_at, updated_at, revision)
               VALUES (${WRITE_VALUES}, $12, $13, $13, $14) RETURNING ${COLUMNS}`,
              [...specParams(spec), id, at, revision],
            );
            await tx.query('RELEASE SAVEPOINT new_rule');
            return toRule(row!);
          } catch (error) {
            await tx.query('ROLLBACK TO SAVEPOINT new_rule');
            if ((error as { code?: unknown }).code !== '23505' || attempt >= ID_ATTEMPTS) throw error;
          }
        }
      });
    },

    get: (id) => live(sql, id, false),

    async list() {
      const rows = await sql.query<Row>(
        `SELECT ${COLUMNS} FROM alert_rule WHERE deleted_at IS NULL ORDER BY created_at, id`,
      );
      return rows.map(toRule);
    },

    async update(id, input, expectedRevision) {
      return sql.transaction(async (tx) => {
        const current = await live(tx, id, true);
        if (!current) throw notFound(id);
        if (expectedRevision !== undefined && current.revision !== expectedRevision)
          throw new AppError(
            Code.ABORTED,
            `alert rule ${id} was changed since revision ${expectedRevision} (it is at ${current.revision}): read it again`,
            {
              retryable: false,
              fieldViolations: [{ field: 'expected_revision', description: "is not the rule's revision" }],
            },
          );
        const spec = validated({ ...input, enabled: input.enabled ?? current.enabled });
        const revision = await nextRevision(tx);
        const [row] = await tx.query<Row>(
          `UPDATE alert_rule SET (${WRITE_COLUMNS}, updated_at, revision) = (${WRITE_VALUES}, $12, $13)
            WHERE id = $14 RETURNING ${COLUMNS}`,
          [...specParams(spec), now(), revision, id],
        );
        return toRule(row!);
      });
    },

    async delete(id) {
      return sql.transaction(async (tx) => {
        const current = await live(tx, id, true);
        if (!current) throw notFound(id);
        const revision = await nextRevision(tx);
        const [row] = await tx.query<Row>(
          `UPDATE alert_rule SET deleted_at = $2, revision = $3 WHERE id = $1 RETURNING ${COLUMNS}`,
          [id, now(), revision],
        );
        return toRule(row!);
      });
    },

    async revision() {
      const [row] = await sql.query<{ revision: number }>('SELECT revision FROM alert_rule_clock');
      return Number(row?.revision ?? 0);
    },

    async loadEnabled() {
      // One statement, one snapshot: the rules and the revision they are complete up to.
      const rows = await sql.query<Row & { at: number }>(
        `SELECT c.revision AS at, ${R_COLUMNS} FROM alert_rule_clock c
           LEFT JOIN alert_rule r ON r.deleted_at IS NULL AND r.enabled
          ORDER BY r.created_at, r.id`,
      );
      return {
        revision: Number(rows[0]?.at ?? 0),
        rules: rows.filter((r) => r.id !== null).map(toRule),
      };
    },

    async changesSince(revision) {
      if (!(Number.isSafeInteger(revision) && revision >= 0))
        throw AppError.invalidField('revision', 'must be a whole number, 0 or more');
      const rows = await sql.query<Row & { at: number }>(
        `SELECT c.revision AS at, ${R_COLUMNS} FROM alert_rule_clock c
           LEFT JOIN alert_rule r ON r.revision > $1
          ORDER BY r.revision`,
        [revision],
      );
      const written = rows.filter((r) => r.id !== null);
      return {
        revision: Number(rows[0]?.at ?? revision),
        changed: written.filter((r) => r.deleted_at === null).map(toRule),
        deleted: written.filter((r) => r.deleted_at !== null).map((r) => r.id),
      };
    },
  };
}

function notFound(id: string): AppError {
  return new AppError(Code.NOT_FOUND, `no alert rule with id ${JSON.stringify(id)}`, {
    fieldViolations: [{ field: 'id', description: 'no such rule' }],
  });
}

function toRule(row: Row): AlertRule {
  const subject: AlertSubject = { kind: row.subject_kind, value: row.subject };
  const condition = { ...row.condition, kind: row.kind, subject } as AlertCondition;
  return {
    id: row.id,
    name: row.name,
    enabled: row.enabled,
    eventType: row.event_type,
    recipients: {
      userIds: row.recipient_user_ids,
      groups: row.recipient_groups,
      targetOwner: row.notify_target_owner,
      dashboard: row.notify_dashboard,
    },
    condition,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    revision: Number(row.revision),
  };
}
