/**
 * The key store on the SQL port (table `api_key`, migration 0004): PostgreSQL and the embedded
 * PGlite alike. Timestamps come from the store's clock, not the database's, so that expiry and
 * grace periods are judged by one clock.
 */
import { randomBytes } from 'node:crypto';
import {
  API_KEY_RANDOM_BYTES,
  type ApiKeyKind,
  formatApiKey,
  parseApiKey,
  type Scope,
  sortedScopes,
} from '../../domain/api-keys.ts';
import { AppError, Code } from '../app-error.ts';
import type { SqlDatabase, SqlExecutor } from '../sql/sql-database.ts';
import {
  type ApiKeyRecord,
  type CreatedKey,
  hashApiKey,
  type KeyStore,
  keyState,
  type NewKeySpec,
  validateKeySpec,
} from './key-store.ts';

export interface SqlKeyStoreOptions {
  sql: SqlDatabase;
  /** The clock (default: the system's). */
  now?: () => Date;
  /** Random bytes for new keys (default: node's CSPRNG). */
  random?: (bytes: number) => Uint8Array;
  /** Least time between two writes of one key's last use (default 60 s). */
  touchIntervalMs?: number;
  /** How long touches gather before they are written (default 1 s). */
  flushDelayMs?: number;
  /** Told of a failed last-use write (the times are kept and written with the next flush). */
  onFlushError?: (error: unknown) => void;
}

interface Row {
  id: string;
  name: string;
  kind: ApiKeyKind;
  scopes: Scope[];
  allowed_origins: string[];
  allowed_types: string[];
  ingest_events_per_minute: number | null;
  reads_per_minute: number | null;
  monthly_quota: number | null;
  created_at: Date;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  replaced_by: string | null;
}

const COLUMNS = `id, name, kind, scopes, allowed_origins, allowed_types, ingest_events_per_minute,
  reads_per_minute, monthly_quota, created_at, last_used_at, expires_at, revoked_at, replaced_by`;

/** Attempts at a display id no other key has (two keys share one with odds of about 2^-47 each). */
const ID_ATTEMPTS = 5;

export function createSqlKeyStore(options: SqlKeyStoreOptions): KeyStore {
  const { sql } = options;
  const now = options.now ?? (() => new Date());
  const random = options.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const touchIntervalMs = options.touchIntervalMs ?? 60_000;
  const flushDelayMs = options.flushDelayMs ?? 1_000;
  /** Key id → when its last use was last queued for writing (epoch ms). */
  const queuedAt = new Map<string, number>();
  /** Key id → the last use still to write. */
  let pending = new Map<string, Date>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();

  const insert = async (tx: SqlExecutor, spec: NewKeySpec, createdAt: Date): Promise<CreatedKey> => {
    for (let attempt = 1; ; attempt++) {
      const key = formatApiKey(spec.kind, random(API_KEY_RANDOM_BYTES));
      const parsed = parseApiKey(key);
      if (!parsed.ok) throw new Error(`formatApiKey made a key parseApiKey refuses: ${parsed.problem}`);
      // A savepoint, so that an id taken by another key fails this attempt and not the transaction.
      await tx.query('SAVEPOINT new_key');
      try {
        const [row] = await tx.query<Row>(
          `INSERT INTO api_key (id, hash, name, kind, scopes, allowed_origins, allowed_types,
             ingest_events_per_minute, reads_per_minute, monthly_quota, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5::text[], $6::text[], $7::text[], $8, $9, $10, $11, $12)
           RETURNING ${COLUMNS}`,
          [
            parsed.id,
            hashApiKey(key),
            spec.name.trim(),
            spec.kind,
            sortedScopes(spec.scopes),
            [...(spec.allowedOrigins ?? [])],
            [...(spec.allowedTypes ?? [])],
            spec.limits?.ingestEventsPerMinute ?? null,
            spec.limits?.readsPerMinute ?? null,
            spec.monthlyQuota ?? null,
            createdAt,
            spec.expiresAt ?? null,
          ],
        );
        await tx.query('RELEASE SAVEPOINT new_key');
        return { key, record: toRecord(row!) };
      } catch (error) {
        await tx.query('ROLLBACK TO SAVEPOINT new_key');
        if ((error as { code?: unknown }).code !== '23505' || attempt >= ID_ATTEMPTS) throw error;
      }
    }
  };

  const byId = async (tx: SqlExecutor, id: string, lock = false) => {
    const [row] = await tx.query<Row>(
      `SELECT ${COLUMNS} FROM api_key WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return row && toRecord(row);
  };

  const notFound = (id: string) =>
    new AppError(Code.NOT_FOUND, `no API key with id ${JSON.stringify(id)}`, {
      fieldViolations: [{ field: 'id', description: 'no such key' }],
    });

  const flush = async (): Promise<void> => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = new Map();
    if (batch.size === 0) return;
    try {
      await sql.query(
        `UPDATE api_key SET last_used_at = GREATEST(last_used_at, u.at)
           FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
          WHERE api_key.id = u.id`,
        [[...batch.keys()], [...batch.values()].map((d) => d.toISOString())],
      );
    } catch (error) {
      for (const [id, at] of batch) if (!pending.has(id)) pending.set(id, at);
      options.onFlushError?.(error);
    }
  };
  const flushInTurn = () => {
    flushing = flushing.then(flush);
    return flushing;
  };

  return {
    description: `key store on ${sql.description}`,

    async create(spec) {
      const createdAt = now();
      validateKeySpec(spec, createdAt);
      return sql.transaction((tx) => insert(tx, spec, createdAt));
    },

    async adopt(key, spec) {
      const createdAt = now();
      validateKeySpec(spec, createdAt);
      const parsed = parseApiKey(key);
      if (!parsed.ok) throw AppError.invalidField('key', parsed.message);
      if (parsed.kind !== spec.kind) throw AppError.invalidField('key', `is not a ${spec.kind} key`);
      const hash = hashApiKey(key);
      const rows = await sql.query<{ id: string }>(
        `INSERT INTO api_key (id, hash, name, kind, scopes, allowed_origins, allowed_types, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5::text[], $6::text[], $7::text[], $8, $9)
         ON CONFLICT DO NOTHING RETURNING id`,
        [
          parsed.id,
          hash,
          spec.name.trim(),
          spec.kind,
          sortedScopes(spec.scopes),
          [...(spec.allowedOrigins ?? [])],
          [...(spec.allowedTypes ?? [])],
          createdAt,
          spec.expiresAt ?? null,
        ],
      );
      if (rows.length > 0) return true;
      const [same] = await sql.query<{ id: string }>('SELECT id FROM api_key WHERE hash = $1', [hash]);
      if (!same)
        throw new AppError(
          Code.ALREADY_EXISTS,
          `another key has the display id ${parsed.id}: make a new key`,
        );
      return false;
    },

    async findByHash(hash) {
      const [row] = await sql.query<Row>(`SELECT ${COLUMNS} FROM api_key WHERE hash = $1`, [hash]);
      return row && toRecord(row);
    },

    get: (id) => byId(sql, id),

    async list() {
      const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM api_key ORDER BY created_at, id`);
      return rows.map(toRecord);
    },

    async revoke(id) {
      const [row] = await sql.query<Row>(
        `UPDATE api_key SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, now()],
      );
      if (!row) throw notFound(id);
      return toRecord(row);
    },

    async rotate(id, graceMs) {
      if (!(Number.isSafeInteger(graceMs) && graceMs >= 0))
        throw AppError.invalidField('graceMs', 'must be a whole number of milliseconds, 0 or more');
      return sql.transaction(async (tx) => {
        const at = now();
        const old = await byId(tx, id, true);
        if (!old) throw notFound(id);
        if (old.replacedBy !== undefined)
          throw new AppError(
            Code.FAILED_PRECONDITION,
            `API key ${id} was already rotated: rotate its replacement, ${old.replacedBy}`,
          );
        const state = keyState(old, at);
        if (state !== 'active')
          throw new AppError(Code.FAILED_PRECONDITION, `API key ${id} is ${state}: create a new key instead`);
        // The new key lives as long as the old one was meant to.
        const lifetimeMs = old.expiresAt && old.expiresAt.getTime() - old.createdAt.getTime();
        const created = await insert(
          tx,
          {
            name: old.name,
            kind: old.kind,
            scopes: new Set(old.scopes),
            allowedOrigins: old.allowedOrigins,
            allowedTypes: old.allowedTypes,
            limits: old.limits,
            monthlyQuota: old.monthlyQuota,
            expiresAt: lifetimeMs === undefined ? undefined : new Date(at.getTime() + lifetimeMs),
          },
          at,
        );
        const graceEnd = new Date(at.getTime() + graceMs);
        await tx.query(
          `UPDATE api_key SET replaced_by = $2, expires_at = LEAST(COALESCE(expires_at, $3), $3) WHERE id = $1`,
          [id, created.record.id, graceEnd],
        );
        return created;
      });
    },

    touchLastUsed(id) {
      const at = now();
      const last = queuedAt.get(id);
      if (last !== undefined && at.getTime() - last < touchIntervalMs) return;
      queuedAt.set(id, at.getTime());
      pending.set(id, at);
      if (!timer) {
        timer = setTimeout(() => void flushInTurn(), flushDelayMs);
        timer.unref();
      }
    },

    flush: flushInTurn,

    async close() {
      await flushInTurn();
    },
  };
}

function toRecord(row: Row): ApiKeyRecord {
  const limits: ApiKeyRecord['limits'] = {};
  if (row.ingest_events_per_minute !== null) limits.ingestEventsPerMinute = row.ingest_events_per_minute;
  if (row.reads_per_minute !== null) limits.readsPerMinute = row.reads_per_minute;
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    scopes: sortedScopes(row.scopes),
    allowedOrigins: row.allowed_origins,
    allowedTypes: row.allowed_types,
    limits,
    monthlyQuota: row.monthly_quota ?? undefined,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at ?? undefined,
    expiresAt: row.expires_at ?? undefined,
    revokedAt: row.revoked_at ?? undefined,
    replacedBy: row.replaced_by ?? undefined,
  };
}
