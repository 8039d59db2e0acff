/**
 * The projection store on the SQL port (PostgreSQL or PGlite): one row per projection, its spec a
 * JSON object in the domain's shape, validated by domain/projections.ts before it is written.
 */
import { type Projection, type ProjectionSpec, validateProjection } from '../../domain/projections.ts';
import { AppError, Code } from '../app-error.ts';
import type { SqlDatabase } from '../sql/sql-database.ts';
import type { ProjectionStore } from './projection-store.ts';
import { recount } from './sql-entity-store.ts';

export interface SqlProjectionStoreOptions {
  sql: SqlDatabase;
  /** The clock of created_at/updated_at (default: the system's). */
  now?: () => Date;
}

interface Row {
  kind: string;
  spec: ProjectionSpec | string;
  created_at: Date | string;
  updated_at: Date | string;
  revision: string;
}

const COLUMNS = 'kind, spec, created_at, updated_at, revision::text AS revision';

function toProjection(row: Row): Projection {
  const spec = (typeof row.spec === 'string' ? JSON.parse(row.spec) : row.spec) as ProjectionSpec;
  return {
    ...spec,
    kind: row.kind,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    revision: Number(row.revision),
  };
}

export function notFound(kind: string): AppError {
  return new AppError(Code.NOT_FOUND, `no projection of kind ${JSON.stringify(kind)}`, {
    fieldViolations: [{ field: 'kind', description: 'no such projection' }],
  });
}

export function createSqlProjectionStore(options: SqlProjectionStoreOptions): ProjectionStore {
  const { sql } = options;
  const now = options.now ?? (() => new Date());
  return {
    description: `projection store on ${sql.description}`,

    async list() {
      const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM projection ORDER BY kind COLLATE "C"`);
      return rows.map(toProjection);
    },

    async get(kind) {
      const [row] = await sql.query<Row>(`SELECT ${COLUMNS} FROM projection WHERE kind = $1`, [kind]);
      return row && toProjection(row);
    },

    async put(input, expectedRevision) {
      const result = validateProjection(input);
      if (!result.ok) {
        const [first] = result.violations;
        throw new AppError(Code.INVALID_ARGUMENT, `${first!.field}: ${first!.description}`, {
          fieldViolations: result.violations,
        });
      }
      const { spec } = result;
      return sql.transaction(async (tx) => {
        const [found] = await tx.query<{ revision: string; count_by: string[] | string }>(
          `SELECT revision::text AS revision, spec -> 'countBy' AS count_by FROM projection WHERE kind = $1 FOR UPDATE`,
          [spec.kind],
        );
        const revision = found ? Number(found.revision) : 0;
        if (expectedRevision !== undefined && revision !== expectedRevision)
          throw new AppError(
            Code.ABORTED,
            `projection ${spec.kind} is at revision ${revision}, not ${expectedRevision}: read it again`,
            {
              retryable: false,
              fieldViolations: [
                { field: 'expected_revision', description: "is not the projection's revision" },
              ],
            },
          );
        const at = now();
        const [row] = await tx.query<Row>(
          `INSERT INTO projection (kind, spec, created_at, updated_at, revision)
           VALUES ($1, $2::jsonb, $3, $3, 1)
           ON CONFLICT (kind) DO UPDATE
              SET spec = EXCLUDED.spec, updated_at = EXCLUDED.updated_at, revision = projection.revision + 1
           RETURNING ${COLUMNS}`,
          [spec.kind, JSON.stringify(spec), at],
        );
        // New count_by: the kind's entities (left by a deleted projection, say) counted again.
        const countedBy =
          found && (typeof found.count_by === 'string' ? JSON.parse(found.count_by) : found.count_by);
        if (JSON.stringify(countedBy ?? null) !== JSON.stringify(spec.countBy))
          await recount(tx, spec.kind, spec.countBy);
        return { projection: toProjection(row!), created: !found };
      });
    },

    async delete(kind) {
      const [row] = await sql.query<Row>(`DELETE FROM projection WHERE kind = $1 RETURNING ${COLUMNS}`, [
        kind,
      ]);
      if (!row) throw notFound(kind);
      return toProjection(row);
    },
  };
}
