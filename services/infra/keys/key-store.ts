/**
 * The key store port: API keys as records found by the SHA-256 of their text (the key itself is
 * never stored, and shown once, at creation). Adapter: sql-key-store.ts, on the SQL port, so the
 * same code serves PostgreSQL and the embedded PGlite. docs/security.md describes the credentials.
 */
import { createHash } from 'node:crypto';
import {
  API_KEY_KINDS,
  type ApiKeyKind,
  type Principal,
  parseApiKey,
  type RateLimitOverrides,
  type Scope,
} from '../../domain/api-keys.ts';
import { AppError, Code, Reason } from '../app-error.ts';

/**
 * SHA-256 of the whole key text, in lower-case hex: what the key store keeps and looks keys up by.
 * A key holds 256 random bits, so a fast unsalted hash is safe: there is nothing to guess.
 * Synchronous on purpose: Web Crypto's digest runs as a thread-pool job: 45 µs of CPU a key against
 * 1.5 µs for node:crypto's hash.
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** What a new key may do and for how long (create's input; rotate copies it from the old key). */
export interface NewKeySpec {
  /** Who or what the key is for, as people read it (1–200 characters). */
  name: string;
  kind: ApiKeyKind;
  /** An ingest key has exactly {ingest}; a secret key any non-empty set. */
  scopes: ReadonlySet<Scope>;
  /** When it stops working; absent: never. */
  expiresAt?: Date;
  /** Origins (`https://host[:port]`) a browser may use it from; ingest keys only; absent or empty: any. */
  allowedOrigins?: readonly string[];
  /** Event types it may write; ingest keys only; absent or empty: any. */
  allowedTypes?: readonly string[];
  limits?: RateLimitOverrides;
  /** Events it may write per calendar month; absent: no quota. */
  monthlyQuota?: number;
}

/** A stored key, as listings show it: everything but the key and its hash. */
export interface ApiKeyRecord {
  /** The display id: the first 8 characters after the key's prefix. */
  id: string;
  name: string;
  kind: ApiKeyKind;
  /** In the fixed order ingest, read, admin. */
  scopes: Scope[];
  /** Empty: any origin. */
  allowedOrigins: string[];
  /** Empty: any type. */
  allowedTypes: string[];
  limits: RateLimitOverrides;
  monthlyQuota: number | undefined;
  createdAt: Date;
  /** Accurate to about a minute (touchLastUsed). */
  lastUsedAt: Date | undefined;
  expiresAt: Date | undefined;
  revokedAt: Date | undefined;
  /** The key that replaced this one by a rotation; this one works until `expiresAt`. */
  replacedBy: string | undefined;
}

/** A key just made: its text, shown once and never again, and its record. */
export interface CreatedKey {
  key: string;
  record: ApiKeyRecord;
}

export interface KeyStore {
  /** Which adapter, for the start-up log. */
  readonly description: string;
  /** Makes a key; INVALID_ARGUMENT naming the field for a bad spec. */
  create(spec: NewKeySpec): Promise<CreatedKey>;
  /**
   * Stores a key whose text was made elsewhere (the bootstrap admin key of a deployment's Secret),
   * hashed, unless it is stored already: true when it was added. Refuses a malformed key.
   */
  adopt(key: string, spec: NewKeySpec): Promise<boolean>;
  /** The key whose text hashes to `hash` (hashApiKey), whatever its state; undefined if none. */
  findByHash(hash: string): Promise<ApiKeyRecord | undefined>;
  /** The key with display id `id`; undefined if none. */
  get(id: string): Promise<ApiKeyRecord | undefined>;
  /** Every key, oldest first. */
  list(): Promise<ApiKeyRecord[]>;
  /** Revokes the key at once (again: no change); NOT_FOUND for an unknown id. */
  revoke(id: string): Promise<ApiKeyRecord>;
  /**
   * A new key with the old one's name, kind, scopes, restrictions and lifetime; the old one keeps
   * working until now + `graceMs` (or its own expiry, if sooner) and names the new one. NOT_FOUND
   * for an unknown id; FAILED_PRECONDITION for a key revoked, expired or already rotated.
   */
  rotate(id: string, graceMs: number): Promise<CreatedKey>;
  /**
   * Notes that key `id` was used now. Never waits and never fails: the time is written later, in
   * one statement for every key touched meanwhile, and at most once per key per interval
   * (a minute by default), so a key used on every request costs no write per request.
   */
  touchLastUsed(id: string): void;
  /** Writes the pending last-used times now. */
  flush(): Promise<void>;
  /** Flushes and stops the timer; the SQL database is the caller's to close. */
  close(): Promise<void>;
}

/** Whether a key lets requests in at `now`. */
export type KeyState = 'active' | 'expired' | 'revoked';

export function keyState(record: ApiKeyRecord, now: Date): KeyState {
  if (record.revokedAt !== undefined) return 'revoked';
  if (record.expiresAt !== undefined && record.expiresAt.getTime() <= now.getTime()) return 'expired';
  return 'active';
}

/** The principal a request with this key acts as. */
export function principalOfKey(record: ApiKeyRecord): Principal {
  const principal: Principal = { kind: 'key', id: record.id, scopes: new Set(record.scopes) };
  if (record.allowedOrigins.length > 0) principal.allowedOrigins = record.allowedOrigins;
  if (record.allowedTypes.length > 0) principal.allowedTypes = record.allowedTypes;
  if (record.limits.ingestEventsPerMinute !== undefined || record.limits.readsPerMinute !== undefined)
    principal.limits = { ...record.limits };
  if (record.monthlyQuota !== undefined) principal.monthlyQuota = record.monthlyQuota;
  if (record.expiresAt !== undefined) principal.expiresAtMs = record.expiresAt.getTime();
  return principal;
}

/** ErrorInfo reason of a refused credential; metadata `credential_error` says why. */
export const INVALID_CREDENTIAL = Reason.INVALID_CREDENTIAL;

/**
 * The principal of an API key presented with a request, touching its last use; UNAUTHENTICATED
 * (reason INVALID_CREDENTIAL, metadata `credential_error`: `malformed`, `unknown`, `revoked`,
 * `expired`) otherwise. The message names the key by its display id at most, never by its text.
 */
export async function authenticateApiKey(store: KeyStore, key: string, now: Date): Promise<Principal> {
  const parsed = parseApiKey(key);
  if (!parsed.ok) throw refused('malformed', parsed.message);
  const record = await store.findByHash(hashApiKey(key));
  if (record === undefined) throw refused('unknown', `API key ${parsed.id} is not known`);
  const state = keyState(record, now);
  if (state !== 'active') throw refused(state, `API key ${record.id} is ${state}`);
  store.touchLastUsed(record.id);
  return principalOfKey(record);
}

function refused(why: string, message: string): AppError {
  return new AppError(Code.UNAUTHENTICATED, message, {
    reason: INVALID_CREDENTIAL,
    metadata: { credential_error: why },
  });
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this rejects
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const ORIGIN = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/;
const EVENT_TYPE = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/; // as domain/event-rules.ts accepts

/** INVALID_ARGUMENT naming the first field of `spec` at fault, as create refuses it. */
export function validateKeySpec(spec: NewKeySpec, now: Date): void {
  const bad = (field: string, description: string) => {
    throw AppError.invalidField(field, description);
  };
  const name = spec.name.trim();
  if (name.length === 0 || name.length > 200) bad('name', 'must be 1 to 200 characters');
  if (CONTROL_CHARS.test(name)) bad('name', 'must not hold control characters');
  if (!API_KEY_KINDS.includes(spec.kind)) bad('kind', `must be one of ${API_KEY_KINDS.join(', ')}`);
  if (spec.scopes.size === 0) bad('scopes', 'must name at least one scope');
  if (spec.kind === 'ingest' && (spec.scopes.size !== 1 || !spec.scopes.has('ingest')))
    bad('scopes', 'an ingest key has the ingest scope only');
  if (spec.kind === 'secret' && (spec.allowedOrigins?.length ?? 0) > 0)
    bad('allowedOrigins', 'only ingest keys are restricted to origins');
  if (spec.kind === 'secret' && (spec.allowedTypes?.length ?? 0) > 0)
    bad('allowedTypes', 'only ingest keys are restricted to event types');
  spec.allowedOrigins?.forEach((origin, i) => {
    if (!ORIGIN.test(origin))
      bad(`allowedOrigins[${i}]`, 'must be an origin: http(s)://host[:port], without a path');
  });
  spec.allowedTypes?.forEach((type, i) => {
    if (!EVENT_TYPE.test(type)) bad(`allowedTypes[${i}]`, `must match ${EVENT_TYPE.source}`);
  });
  const positive = (field: string, value: number | undefined, max: number) => {
    if (value !== undefined && !(Number.isSafeInteger(value) && value > 0 && value <= max))
      bad(field, `must be a whole number from 1 to ${max}`);
  };
  positive('limits.ingestEventsPerMinute', spec.limits?.ingestEventsPerMinute, 2_147_483_647);
  positive('limits.readsPerMinute', spec.limits?.readsPerMinute, 2_147_483_647);
  positive('monthlyQuota', spec.monthlyQuota, Number.MAX_SAFE_INTEGER);
  if (spec.expiresAt !== undefined && !(spec.expiresAt.getTime() > now.getTime()))
    bad('expiresAt', 'must be in the future');
}
