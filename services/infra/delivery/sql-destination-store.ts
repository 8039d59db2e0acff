/**
 * The destination store on the SQL port (tables `destination` and `destination_clock`, migration
 * 0008): PostgreSQL and the embedded PGlite alike, built as the alert rule store is
 * (infra/alerts/sql-rule-store.ts). Every write takes the next revision from the one-row clock,
 * whose row lock holds other writers until it commits, so revisions become visible in order and a
 * reader that saw revision r has seen every write up to r. Deletes leave a tombstone (its secrets
 * erased), so that the change feed reports them. Timestamps come from the store's clock.
 */
import { randomBytes } from 'node:crypto';
import type { DestinationFilter, TransformSpec } from '../../domain/destination-transform.ts';
import {
  DESTINATION_ID_RANDOM_BYTES,
  type DestinationEndpoint,
  type DestinationInput,
  type DestinationKind,
  type DestinationSpec,
  type FieldViolation,
  formatDestinationId,
  formatSigningSecret,
  isDestinationId,
  type OrderingMode,
  rotateSecrets,
  SECRET_RANDOM_BYTES,
  type SigningSecret,
  validateDestination,
  validateSigningSecrets,
} from '../../domain/destinations.ts';
import { AppError, Code } from '../app-error.ts';
import type { SqlDatabase, SqlExecutor } from '../sql/sql-database.ts';
import type { Destination, DestinationStore } from './destination-store.ts';

export interface SqlDestinationStoreOptions {
  sql: SqlDatabase;
  /** The clock (default: the system's). */
  now?: () => Date;
  /** Random bytes for new ids and secrets (default: node's CSPRNG). */
  random?: (bytes: number) => Uint8Array;
}

interface RawSecret {
  secret: string;
  created_at_ms: number;
  expires_at_ms: number | null;
}

interface Row {
  id: string;
  name: string;
  enabled: boolean;
  disabled_reason: string;
  kind: DestinationKind;
  endpoint: Record<string, unknown>;
  filter: DestinationFilter;
  transform: TransformSpec;
  ordering: OrderingMode;
  retry_delays_seconds: number[];
  rate_limit_per_second: number | null;
  concurrency: number;
  signing_secrets: RawSecret[];
  created_at: Date;
  updated_at: Date;
  revision: number;
  deleted_at: Date | null;
}

const COLUMNS = `id, name, enabled, disabled_reason, kind, endpoint, filter, transform, ordering,
  retry_delays_seconds, rate_limit_per_second, concurrency, signing_secrets, created_at, updated_at,
  revision, deleted_at`;
const D_COLUMNS = COLUMNS.split(',')
  .map((c) => `d.${c.trim()}`)
  .join(', ');

/** Attempts at an id no other destination has (two share one with odds of about 2^-59 each). */
const ID_ATTEMPTS = 5;

/** The columns a spec is written to, in the order of {@link WRITE_COLUMNS}. */
function specParams(spec: DestinationSpec): unknown[] {
  const { kind, ...endpoint } = spec.endpoint;
  return [
    spec.name,
    spec.enabled,
    spec.disabledReason,
    kind,
    JSON.stringify(endpoint),
    JSON.stringify(spec.filter),
    JSON.stringify(spec.transform),
    spec.ordering,
    spec.retryDelaysSeconds,
    spec.rateLimitPerSecond ?? null,
    spec.concurrency,
  ];
}
const WRITE_COLUMNS = `name, enabled, disabled_reason, kind, endpoint, filter, transform, ordering,
  retry_delays_seconds, rate_limit_per_second, concurrency`;
const WRITE_VALUES = '$1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8, $9::integer[], $10, $11';

function rawSecrets(secrets: readonly SigningSecret[]): string {
  return JSON.stringify(
    secrets.map(
      (s): RawSecret => ({
        secret: s.secret,
        created_at_ms: s.createdAtMs,
        expires_at_ms: s.expiresAtMs ?? null,
      }),
    ),
  );
}

function invalid(violations: readonly FieldViolation[]): AppError {
  const [first] = violations;
  return new AppError(Code.INVALID_ARGUMENT, `${first!.field}: ${first!.description}`, {
    fieldViolations: violations,
  });
}

export function createSqlDestinationStore(options: SqlDestinationStoreOptions): DestinationStore {
  const { sql } = options;
  const now = options.now ?? (() => new Date());
  const random = options.random ?? ((n: number) => new Uint8Array(randomBytes(n)));

  const validated = (input: DestinationInput): DestinationSpec => {
    const result = validateDestination(input);
    if (result.ok) return result.spec;
    throw invalid(result.violations);
  };

  /** The next revision; holds the clock's row lock until the transaction ends. */
  const nextRevision = async (tx: SqlExecutor): Promise<number> => {
    const [row] = await tx.query<{ revision: number }>(
      'UPDATE destination_clock SET revision = revision + 1 RETURNING revision',
    );
    return Number(row!.revision);
  };

  const live = async (tx: SqlExecutor, id: string, lock: boolean): Promise<Destination | undefined> => {
    if (!isDestinationId(id)) return undefined;
    const [row] = await tx.query<Row>(
      `SELECT ${COLUMNS} FROM destination WHERE id = $1 AND deleted_at IS NULL${lock ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return row && toDestination(row);
  };

  /** The destination to change, locked until the transaction ends; NOT_FOUND, ABORTED as the port says. */
  const current = async (tx: SqlExecutor, id: string, expectedRevision?: number): Promise<Destination> => {
    const found = await live(tx, id, true);
    if (!found) throw notFound(id);
    if (expectedRevision !== undefined && found.revision !== expectedRevision)
      throw new AppError(
        Code.ABORTED,
        `destination ${id} was changed since revision ${expectedRevision} (it is at ${found.revision}): read it again`,
        {
          retryable: false,
          fieldViolations: [{ field: 'expected_revision', description: "is not the destination's revision" }],
        },
      );
    return found;
  };

  return {
    description: `destination store on ${sql.description}`,

    async create(input, secrets = []) {
      const result = validateDestination(input);
      const violations = result.ok ? [] : [...result.violations];
      const kind = input.endpoint?.kind;
      if (secrets.length > 0 && kind === 'kafka')
        violations.push({ field: 'signing_secrets', description: 'only a webhook signs: give none' });
      else violations.push(...validateSigningSecrets(secrets, 'signing_secrets'));
      if (!result.ok || violations.length > 0) throw invalid(violations);
      const spec = result.spec;
      return sql.transaction(async (tx) => {
        const at = now();
        const signing: SigningSecret[] =
          spec.endpoint.kind !== 'webhook'
            ? []
            : (secrets.length > 0 ? secrets : [formatSigningSecret(random(SECRET_RANDOM_BYTES))]).map(
                (secret) => ({
                  secret,
                  createdAtMs: at.getTime(),
                  expiresAtMs: undefined,
                }),
              );
        const revision = await nextRevision(tx);
        for (let attempt = 1; ; attempt++) {
          const id = formatDestinationId(random(DESTINATION_ID_RANDOM_BYTES));
          // A savepoint, so that an id taken by another destination fails this attempt and not the transaction.
          await tx.query('SAVEPOINT new_destination');
          try {
            const [row] = await tx.query<Row>(
              `INSERT INTO destination (${WRITE_COLUMNS}, id, signing_secrets, created_at, updated_at, revision)
               VALUES (${WRITE_VALUES}, $12, $13::jsonb, $14, $14, $15) RETURNING ${COLUMNS}`,
              [...specParams(spec), id, rawSecrets(signing), at, revision],
            );
            await tx.query('RELEASE SAVEPOINT new_destination');
            return toDestination(row!);
          } catch (error) {
            await tx.query('ROLLBACK TO SAVEPOINT new_destination');
            if ((error as { code?: unknown }).code !== '23505' || attempt >= ID_ATTEMPTS) throw error;
          }
        }
      });
    },

    get: (id) => live(sql, id, false),

    async list() {
      const rows = await sql.query<Row>(
        `SELECT ${COLUMNS} FROM destination WHERE deleted_at IS NULL ORDER BY created_at, id`,
      );
      return rows.map(toDestination);
    },

    async update(id, input, expectedRevision) {
      return sql.transaction(async (tx) => {
        const found = await current(tx, id, expectedRevision);
        const keepState =
          input.enabled === undefined
            ? { enabled: found.enabled, disabledReason: input.disabledReason ?? found.disabledReason }
            : {};
        const spec = validated({ ...input, ...keepState });
        if (spec.endpoint.kind !== found.endpoint.kind)
          throw invalid([
            {
              field: 'endpoint',
              description: `a destination's kind stays ${found.endpoint.kind}: create another destination for a ${spec.endpoint.kind}`,
            },
          ]);
        const revision = await nextRevision(tx);
        const [row] = await tx.query<Row>(
          `UPDATE destination SET (${WRITE_COLUMNS}, updated_at, revision) = (${WRITE_VALUES}, $12, $13)
            WHERE id = $14 RETURNING ${COLUMNS}`,
          [...specParams(spec), now(), revision, id],
        );
        return toDestination(row!);
      });
    },

    async rotateSecret(id, rotation = {}) {
      return sql.transaction(async (tx) => {
        const found = await current(tx, id);
        if (found.endpoint.kind !== 'webhook')
          throw new AppError(
            Code.FAILED_PRECONDITION,
            `destination ${id} is a ${found.endpoint.kind}: only a webhook signs`,
            {
              fieldViolations: [{ field: 'id', description: 'is not a webhook' }],
            },
          );
        const at = now();
        const secret = rotation.secret ?? formatSigningSecret(random(SECRET_RANDOM_BYTES));
        const result = rotateSecrets(found.signingSecrets, secret, at.getTime(), rotation.graceSeconds);
        if (!result.ok)
          throw result.precondition
            ? new AppError(
                Code.FAILED_PRECONDITION,
                `${result.violation.field}: ${result.violation.description}`,
                {
                  fieldViolations: [result.violation],
                },
              )
            : invalid([result.violation]);
        const revision = await nextRevision(tx);
        const [row] = await tx.query<Row>(
          `UPDATE destination SET signing_secrets = $2::jsonb, updated_at = $3, revision = $4
            WHERE id = $1 RETURNING ${COLUMNS}`,
          [id, rawSecrets(result.secrets), at, revision],
        );
        return toDestination(row!);
      });
    },

    async delete(id) {
      return sql.transaction(async (tx) => {
        const found = await current(tx, id);
        const revision = await nextRevision(tx);
        await tx.query(
          `UPDATE destination SET deleted_at = $2, revision = $3, signing_secrets = '[]'::jsonb WHERE id = $1`,
          [id, now(), revision],
        );
        // The destination as it was (secrets included: the caller decides what to show).
        return { ...found, revision };
      });
    },

    async revision() {
      const [row] = await sql.query<{ revision: number }>('SELECT revision FROM destination_clock');
      return Number(row?.revision ?? 0);
    },

    async loadEnabled() {
      // One statement, one snapshot: the destinations and the revision they are complete up to.
      const rows = await sql.query<Row & { at: number }>(
        `SELECT c.revision AS at, ${D_COLUMNS} FROM destination_clock c
           LEFT JOIN destination d ON d.deleted_at IS NULL AND d.enabled
          ORDER BY d.created_at, d.id`,
      );
      return {
        revision: Number(rows[0]?.at ?? 0),
        destinations: rows.filter((r) => r.id !== null).map(toDestination),
      };
    },

    async changesSince(revision) {
      if (!(Number.isSafeInteger(revision) && revision >= 0))
        throw AppError.invalidField('revision', 'must be a whole number, 0 or more');
      const rows = await sql.query<Row & { at: number }>(
        `SELECT c.revision AS at, ${D_COLUMNS} FROM destination_clock c
           LEFT JOIN destination d ON d.revision > $1
          ORDER BY d.revision`,
        [revision],
      );
      const written = rows.filter((r) => r.id !== null);
      return {
        revision: Number(rows[0]?.at ?? revision),
        changed: written.filter((r) => r.deleted_at === null).map(toDestination),
        deleted: written.filter((r) => r.deleted_at !== null).map((r) => r.id),
      };
    },
  };
}

function notFound(id: string): AppError {
  return new AppError(Code.NOT_FOUND, `no destination with id ${JSON.stringify(id)}`, {
    fieldViolations: [{ field: 'id', description: 'no such destination' }],
  });
}

function toDestination(row: Row): Destination {
  const endpoint = { ...row.endpoint, kind: row.kind } as DestinationEndpoint;
  return {
    id: row.id,
    name: row.name,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    endpoint,
    filter: row.filter,
    transform: row.transform,
    ordering: row.ordering,
    retryDelaysSeconds: row.retry_delays_seconds.map(Number),
    rateLimitPerSecond: row.rate_limit_per_second ?? undefined,
    concurrency: row.concurrency,
    signingSecrets: row.signing_secrets.map((s) => ({
      secret: s.secret,
      createdAtMs: Number(s.created_at_ms),
      expiresAtMs: s.expires_at_ms ?? undefined,
    })),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    revision: Number(row.revision),
  };
}
