/**
 * tally.v1.KeysService, served by the query role (the gRPC role that holds the SQL port): API
 * key administration (scope admin, checked by access control from the proto's `required_scope`)
 * and `WhoAmI` (any valid credential), which the gateway's WebSocket uses to check a socket's
 * credential. A key's text is answered once, by CreateKey and RotateKey; nothing here logs it.
 */

import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  API_KEY_KINDS,
  type ApiKeyKind,
  isScope,
  type RateLimitOverrides,
  type Scope,
  sortedScopes,
} from '../domain/api-keys.ts';
import { type ApiKeySchema, KeysService } from '../gen/tally/v1/keys_pb.js';
import { AppError } from '../infra/app-error.ts';
import type { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import type { ApiKeyRecord, KeyStore } from '../infra/keys/key-store.ts';
import type { Logger } from '../infra/logger.ts';

/** A rotated key works this long by default (as `tally keys rotate`). */
const DEFAULT_GRACE_SECONDS = 24 * 3600;

export interface KeysServiceDeps {
  keys: KeyStore;
  grpc: GrpcRegistry;
  logger: Logger;
  /** The clock (default: the system's). */
  now?: () => Date;
  /** Told of each revocation, so that other processes forget the key at once (optional). */
  onRevoked?: (id: string) => void;
}

export function registerKeysService(deps: KeysServiceDeps): void {
  const now = deps.now ?? (() => new Date());
  const logger = deps.logger.child({ component: 'keys' });
  deps.grpc.register(KeysService, {
    async createKey(request, context) {
      const kind = (request.kind === '' ? 'secret' : request.kind) as ApiKeyKind;
      if (!API_KEY_KINDS.includes(kind))
        throw AppError.invalidField('kind', `must be one of ${API_KEY_KINDS.join(', ')}`);
      const scopes = request.scopes.length === 0 && kind === 'ingest' ? ['ingest'] : request.scopes;
      scopes.forEach((scope, i) => {
        if (!isScope(scope)) throw AppError.invalidField(`scopes[${i}]`, 'must be ingest, read or admin');
      });
      const created = await deps.keys.create({
        name: request.name,
        kind,
        scopes: new Set(scopes as Scope[]),
        expiresAt:
          request.expiresInSeconds > 0n
            ? new Date(now().getTime() + Number(request.expiresInSeconds) * 1000)
            : undefined,
        allowedOrigins: request.allowedOrigins,
        allowedTypes: request.allowedTypes,
        limits: {
          ingestEventsPerMinute: perMinute('ingest_events_per_minute', request.ingestEventsPerMinute),
          readsPerMinute: perMinute('reads_per_minute', request.readsPerMinute),
        },
        monthlyQuota: wholeNumber('monthly_quota', request.monthlyQuota, Number.MAX_SAFE_INTEGER),
      });
      logger.info('key created', { id: created.record.id, by: context.principal?.id });
      return { key: created.key, record: toApiKey(created.record) };
    },

    async listKeys() {
      return { keys: (await deps.keys.list()).map(toApiKey) };
    },

    async revokeKey(request, context) {
      if (request.id === '') throw AppError.invalidField('id', 'is required');
      const record = await deps.keys.revoke(request.id);
      deps.onRevoked?.(record.id);
      logger.info('key revoked', { id: record.id, by: context.principal?.id });
      return { record: toApiKey(record) };
    },

    async rotateKey(request, context) {
      if (request.id === '') throw AppError.invalidField('id', 'is required');
      const graceSeconds = request.graceSeconds === 0n ? DEFAULT_GRACE_SECONDS : Number(request.graceSeconds);
      const created = await deps.keys.rotate(request.id, graceSeconds * 1000);
      logger.info('key rotated', {
        id: request.id,
        replacedBy: created.record.id,
        by: context.principal?.id,
      });
      return { key: created.key, record: toApiKey(created.record) };
    },

    async whoAmI(_request, context) {
      const principal = context.principal;
      if (!principal) return { kind: 'anonymous', id: 'anonymous', scopes: [] };
      return {
        kind: principal.kind,
        id: principal.id,
        scopes: sortedScopes(principal.scopes),
        expiresAt: principal.expiresAtMs === undefined ? undefined : timestampFromMs(principal.expiresAtMs),
        ...limitFields(principal.limits),
      };
    },
  });
}

function toApiKey(record: ApiKeyRecord): MessageInitShape<typeof ApiKeySchema> {
  const at = (date: Date | undefined) => (date === undefined ? undefined : timestampFromMs(date.getTime()));
  return {
    id: record.id,
    name: record.name,
    kind: record.kind,
    scopes: record.scopes,
    allowedOrigins: record.allowedOrigins,
    allowedTypes: record.allowedTypes,
    createdAt: at(record.createdAt),
    lastUsedAt: at(record.lastUsedAt),
    expiresAt: at(record.expiresAt),
    revokedAt: at(record.revokedAt),
    replacedBy: record.replacedBy ?? '',
    ...limitFields(record.limits),
    ...(record.monthlyQuota === undefined ? {} : { monthlyQuota: BigInt(record.monthlyQuota) }),
  };
}

/** A key's own rate limits as the messages carry them; absent ones stay unset. */
function limitFields(limits: RateLimitOverrides | undefined): {
  ingestEventsPerMinute?: bigint;
  readsPerMinute?: bigint;
} {
  return {
    ...(limits?.ingestEventsPerMinute === undefined
      ? {}
      : { ingestEventsPerMinute: BigInt(limits.ingestEventsPerMinute) }),
    ...(limits?.readsPerMinute === undefined ? {} : { readsPerMinute: BigInt(limits.readsPerMinute) }),
  };
}

/** The largest limit per minute a key may have (the column is a PostgreSQL integer). */
const MAX_PER_MINUTE = 2_147_483_647;

/** An optional limit per minute of a request; INVALID_ARGUMENT naming `field` when out of range. */
function perMinute(field: string, value: bigint | undefined): number | undefined {
  return wholeNumber(field, value, MAX_PER_MINUTE);
}

/** An optional count from 1 to `max`; unset stays undefined. */
function wholeNumber(field: string, value: bigint | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (value < 1n || value > BigInt(max))
    throw AppError.invalidField(
      field,
      `must be a whole number from 1 to ${max} (leave it unset for no limit of its own)`,
    );
  return Number(value);
}
