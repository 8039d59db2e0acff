/**
 * Access control: who a call is (an API key or a JWT in its `authorization`) and whether it may
 * make the call (the method's `required_scope` option in the proto; the key's allowed origins).
 * One instance per process, used by the gRPC server and the in-process clients for every method
 * of a served service (grpc-service.ts), so that REST (the gateway forwards the caller's
 * credential), gRPC and the WebSocket (through `KeysService.WhoAmI`) pass the same checks.
 * docs/security.md describes the rules; nothing here logs or repeats a credential.
 */

import type { DescMethod } from '@bufbuild/protobuf';
import { getOption } from '@bufbuild/protobuf';
import { type Principal, SCOPES, type Scope } from '../../domain/api-keys.ts';
import { AccessScope, required_scope } from '../../gen/tally/v1/access_pb.js';
import { AppError, Code, Reason } from '../app-error.ts';
import { type ApiKeyRecord, authenticateApiKey, type KeyStore } from '../keys/key-store.ts';
import type { Logger } from '../logger.ts';
import { authMetrics, type Registry } from '../metrics.ts';
import type { JwtVerifier } from './jwt-verifier.ts';

/** Where a refusal happened, the label of `tally_auth_failures_total`. */
export type AuthSurface = 'rest' | 'grpc' | 'websocket' | 'metrics';
export const AUTH_SURFACES: readonly AuthSurface[] = ['rest', 'grpc', 'websocket', 'metrics'];

/**
 * Metadata a gateway adds to the calls it makes for a REST request or a WebSocket, so that a
 * refusal is counted under the surface the caller used. A client setting it only moves its own
 * refusals to another label: it is no credential.
 */
export const SURFACE_METADATA = 'tally-surface';

/** What a call's metadata offers: the first value of a header, by lower-case name. */
export type HeaderLookup = (name: string) => string | undefined;

/** The scope a method needs, from its `required_scope` option; undefined when it names none. */
export function requiredScope(method: DescMethod): Scope | 'authenticated' | undefined {
  switch (getOption(method, required_scope)) {
    case AccessScope.INGEST:
      return 'ingest';
    case AccessScope.READ:
      return 'read';
    case AccessScope.ADMIN:
      return 'admin';
    case AccessScope.AUTHENTICATED:
      return 'authenticated';
    default:
      return undefined;
  }
}

/** A credential as presented: an API key or a JWT, not yet checked. */
export type Credential = { kind: 'key' | 'jwt'; text: string };

/**
 * The credential of an `Authorization` value: `Bearer <key or JWT>`, or `Basic` with the key as
 * the user name (as Segment's and RudderStack's clients send it; the password is ignored).
 * Undefined when there is none; UNAUTHENTICATED (INVALID_CREDENTIAL `malformed`) when the value
 * is neither form. The message never repeats the value.
 */
export function credentialOf(authorization: string | undefined): Credential | undefined {
  const value = authorization?.trim();
  if (value === undefined || value === '') return undefined;
  const space = value.indexOf(' ');
  const scheme = (space < 0 ? value : value.slice(0, space)).toLowerCase();
  const rest = space < 0 ? '' : value.slice(space + 1).trim();
  if (scheme === 'bearer') {
    if (rest === '') throw malformed('the Bearer credential is empty');
    return { kind: rest.startsWith('tly_') ? 'key' : 'jwt', text: rest };
  }
  if (scheme === 'basic') {
    let decoded: string;
    try {
      decoded = Buffer.from(rest, 'base64').toString('utf8');
    } catch {
      throw malformed('the Basic credential is not base64');
    }
    const user = decoded.split(':')[0] ?? '';
    if (!user.startsWith('tly_')) throw malformed('Basic authentication takes an API key as the user name');
    return { kind: 'key', text: user };
  }
  throw malformed('the Authorization header must be "Bearer <credential>" or "Basic <base64 key:>"');
}

function malformed(message: string): AppError {
  return new AppError(Code.UNAUTHENTICATED, message, {
    reason: Reason.INVALID_CREDENTIAL,
    metadata: { credential_error: 'malformed' },
  });
}

export interface AccessControlOptions {
  /**
   * `off`: every call acts as an anonymous principal with every scope (TALLY_AUTH=off, or the
   * open loopback default of `npm start`).
   */
  mode: 'on' | 'off';
  /** The keys callers present (required when on). */
  keys?: KeyStore;
  /** End users' tokens; without it a JWT is refused as INVALID_TOKEN `malformed`. */
  jwt?: JwtVerifier;
  metrics?: Registry;
  logger: Logger;
  now?: () => Date;
}

export interface AccessControl {
  readonly mode: 'on' | 'off';
  /** The principal of an `Authorization` value; UNAUTHENTICATED when missing or refused. */
  authenticate(authorization: string | undefined): Promise<Principal>;
  /**
   * The principal of a call to `method`: authenticated, holding the method's scope, and for a
   * key with allowed origins, called from one when the call names an `origin`. Refusals are
   * counted under `surface` (default: the call's `tally-surface`, else `grpc`).
   */
  authorizeCall(method: DescMethod, header: HeaderLookup): Promise<Principal>;
  /** Counts a refusal that happened elsewhere (the gateway's own checks). */
  countFailure(surface: AuthSurface, error: unknown): void;
}

/** Every scope, for the anonymous principal of an open server. */
const ALL_SCOPES: ReadonlySet<Scope> = new Set(SCOPES);
export const ANONYMOUS: Principal = Object.freeze({ kind: 'anonymous', id: 'anonymous', scopes: ALL_SCOPES });

export function createAccessControl(options: AccessControlOptions): AccessControl {
  const now = options.now ?? (() => new Date());
  const failures = options.metrics && authMetrics(options.metrics).failures;
  if (options.mode === 'on' && !options.keys) throw new Error('access control on needs a key store');

  const countFailure = (surface: AuthSurface, error: unknown) => {
    if (!(error instanceof AppError)) return;
    if (error.code !== Code.UNAUTHENTICATED && error.code !== Code.PERMISSION_DENIED) return;
    failures?.inc({ surface, reason: error.reason });
  };

  const authenticate = async (authorization: string | undefined): Promise<Principal> => {
    const credential = credentialOf(authorization);
    if (!credential)
      throw new AppError(
        Code.UNAUTHENTICATED,
        'a credential is required: an API key or a token in "Authorization: Bearer …"',
        { reason: Reason.MISSING_CREDENTIAL },
      );
    if (credential.kind === 'key') return authenticateApiKey(options.keys!, credential.text, now());
    if (!options.jwt)
      throw new AppError(Code.UNAUTHENTICATED, 'invalid token: tokens are not accepted by this server', {
        reason: Reason.INVALID_TOKEN,
        metadata: { token_error: 'malformed' },
      });
    return options.jwt.verify(credential.text);
  };

  return {
    mode: options.mode,
    async authenticate(authorization) {
      if (options.mode === 'off') return ANONYMOUS;
      return authenticate(authorization);
    },
    async authorizeCall(method, header) {
      if (options.mode === 'off') return ANONYMOUS;
      try {
        const scope = requiredScope(method);
        if (scope === undefined)
          throw new AppError(
            Code.PERMISSION_DENIED,
            `${method.parent.typeName}/${method.name} names no required scope: refused to every caller`,
            { reason: Reason.INSUFFICIENT_SCOPE },
          );
        const principal = await authenticate(header('authorization'));
        if (scope !== 'authenticated' && !principal.scopes.has(scope))
          throw insufficientScope(principal, scope);
        checkOrigin(principal, header('origin'));
        return principal;
      } catch (error) {
        const surface = header(SURFACE_METADATA);
        countFailure(
          AUTH_SURFACES.includes(surface as AuthSurface) ? (surface as AuthSurface) : 'grpc',
          error,
        );
        throw error;
      }
    },
    countFailure,
  };
}

/** PERMISSION_DENIED naming the scope `principal` lacks (and what an ingest key is for). */
export function insufficientScope(principal: Principal, scope: Scope): AppError {
  const who = principal.kind === 'jwt' ? 'the token' : `API key ${principal.id}`;
  const ingestOnly =
    principal.kind === 'key' && principal.scopes.size === 1 && principal.scopes.has('ingest');
  return new AppError(
    Code.PERMISSION_DENIED,
    `${who} lacks the ${scope} scope${ingestOnly ? ' (it may only write events)' : ''}`,
    { reason: Reason.INSUFFICIENT_SCOPE, metadata: { required_scope: scope } },
  );
}

/** PERMISSION_DENIED when `principal` is held to some origins and `origin` (when sent) is not one. */
export function checkOrigin(principal: Principal, origin: string | undefined): void {
  if (origin === undefined || origin === '' || principal.allowedOrigins === undefined) return;
  if (principal.allowedOrigins.includes(origin)) return;
  throw new AppError(Code.PERMISSION_DENIED, `API key ${principal.id} may not be used from this origin`, {
    reason: Reason.ORIGIN_NOT_ALLOWED,
  });
}

/**
 * A key store whose `findByHash` answers from memory for `ttlMs` (default 2 s), so a key used on
 * every request costs one lookup per process per `ttlMs`, and a revocation made anywhere is seen
 * within it. When the database cannot answer, an entry up to `staleMs` old (default 5 minutes) is
 * used rather than refusing every caller; `invalidate` forgets every entry at once (a revocation
 * made through this store, or announced by another process).
 */
export function cachedKeyStore(
  store: KeyStore,
  options: { ttlMs?: number; staleMs?: number; maxEntries?: number; logger?: Logger } = {},
): KeyStore & { invalidate(): void } {
  const ttlMs = options.ttlMs ?? 2_000;
  const staleMs = options.staleMs ?? 300_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const cache = new Map<string, { record: ApiKeyRecord | undefined; at: number }>();
  const invalidate = () => cache.clear();
  return {
    ...store,
    description: store.description,
    create: (spec) => store.create(spec),
    get: (id) => store.get(id),
    list: () => store.list(),
    touchLastUsed: (id) => store.touchLastUsed(id),
    flush: () => store.flush(),
    close: () => store.close(),
    async revoke(id) {
      const record = await store.revoke(id);
      invalidate();
      return record;
    },
    async rotate(id, graceMs) {
      const created = await store.rotate(id, graceMs);
      invalidate();
      return created;
    },
    async findByHash(hash) {
      const at = Date.now();
      const hit = cache.get(hash);
      if (hit && at - hit.at < ttlMs) return hit.record;
      try {
        const record = await store.findByHash(hash);
        cache.delete(hash);
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
        cache.set(hash, { record, at });
        return record;
      } catch (error) {
        if (hit && at - hit.at < staleMs) {
          options.logger?.warn('key lookup failed; using the cached record', { error });
          return hit.record;
        }
        throw new AppError(Code.UNAVAILABLE, 'API keys cannot be checked now; retry later', { cause: error });
      }
    },
    invalidate,
  };
}
