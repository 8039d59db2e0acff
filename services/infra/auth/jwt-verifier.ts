/**
 * End users' JWTs, verified with jose against a JWKS URL (cached; fetched again for an unknown
 * `kid`, at most once per cooldown; each fetch bounded by a timeout) or a static public key.
 * Rules (docs/security.md): an allow-list of algorithms, never `none`, never HMAC beside public-key
 * algorithms (the HS/RS confusion); `iss`, `aud`, `sub` and `exp` required; a small clock skew
 * allowed. A refusal is an AppError whose message and metadata never contain the token.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, errors, type JWK, type JWTPayload, jwtVerify } from 'jose';
import { isScope, type Principal, type Scope } from '../../domain/api-keys.ts';
import { defaultEventLimits } from '../../domain/event-rules.ts';
import { AppError, Code, Reason } from '../app-error.ts';

/** Why a token was refused (metadata `token_error` of the AppError). */
export type JwtFailure =
  | 'expired'
  | 'not_yet_valid'
  | 'bad_signature'
  | 'wrong_audience'
  | 'wrong_issuer'
  | 'unknown_kid'
  | 'algorithm_not_allowed'
  | 'malformed'
  | 'jwks_unavailable';

/** ErrorInfo reason of a refused token; metadata `token_error` is the {@link JwtFailure}. */
export const INVALID_TOKEN = Reason.INVALID_TOKEN;

export const DEFAULT_JWT_ALGORITHMS: readonly string[] = Object.freeze(['RS256', 'ES256', 'EdDSA']);

/** The public-key algorithms jose verifies, by the key type that verifies them. */
const ASYMMETRIC: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];
const HMAC = ['HS256', 'HS384', 'HS512'];
export const JWT_ALGORITHMS: readonly string[] = Object.freeze([...ASYMMETRIC, ...HMAC]);
/** The public-key algorithms: those a JWKS or a public key verifies. */
export const PUBLIC_KEY_JWT_ALGORITHMS: readonly string[] = Object.freeze([...ASYMMETRIC]);

/** Longest token accepted (characters); longer is `malformed` before any parsing. */
const MAX_TOKEN_CHARS = 16 * 1024;

export interface JwtVerifierOptions {
  /** Where the issuer publishes its keys (`…/.well-known/jwks.json`); or one of the keys below. */
  jwksUrl?: string | URL;
  /** A static public key in PEM (SPKI, or a certificate). */
  publicKeyPem?: string;
  /** A static public key as a JWK. */
  jwk?: JWK;
  /** A shared secret, for an HMAC-only `algorithms` list. */
  secret?: Uint8Array;
  /** The `iss` every token must carry. */
  issuer: string;
  /** The `aud` a token must name (one of them, for a list). */
  audience: string | readonly string[];
  /** Allowed `alg`s (default RS256, ES256, EdDSA); never `none`, never HS* beside others. */
  algorithms?: readonly string[];
  /** Clock skew allowed on `exp` and `nbf`, in seconds (default 30). */
  clockToleranceSec?: number;
  /** The claim holding the scopes: a space-separated string or an array (default `scope`). */
  scopesClaim?: string;
  /** Longest a JWKS fetch may take (default 5000 ms). */
  timeoutMs?: number;
  /** Least time after a fetch before an unknown `kid` fetches the JWKS again (default 30000 ms). */
  cooldownMs?: number;
  /** How long fetched keys are used before they are fetched again (default 10 minutes). */
  cacheMaxAgeMs?: number;
}

export interface JwtVerifier {
  /**
   * The principal of a valid token: `id` and `userId` its subject, its scopes (Tally's among the
   * scopes claim; others ignored). UNAUTHENTICATED (reason INVALID_TOKEN, metadata `token_error`)
   * for a refused token; UNAVAILABLE (`token_error` `jwks_unavailable`) when the keys cannot be fetched.
   */
  verify(token: string): Promise<Principal>;
}

/** A bad verifier configuration: the message names the option. */
export class JwtConfigError extends Error {
  override readonly name = 'JwtConfigError';
}

/** Thrown by the key lookup when the JWKS cannot be fetched. */
class JwksUnavailable extends Error {}

/** What jwtVerify takes as its key: a static key, or a lookup by the token's header (JWKS). */
type KeyInput = Parameters<typeof jwtVerify>[1];

export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const sources = [options.jwksUrl, options.publicKeyPem, options.jwk, options.secret].filter(
    (s) => s !== undefined,
  );
  if (sources.length !== 1)
    throw new JwtConfigError(
      'give exactly one of jwksUrl, publicKeyPem, jwk or secret (the keys tokens are verified with)',
    );
  if (options.issuer === '') throw new JwtConfigError('issuer: required');
  const audience = typeof options.audience === 'string' ? [options.audience] : [...options.audience];
  if (audience.length === 0 || audience.some((a) => a === '')) throw new JwtConfigError('audience: required');
  let algorithms = checkAlgorithms(options.algorithms ?? DEFAULT_JWT_ALGORITHMS);
  const hmac = algorithms.every((a) => HMAC.includes(a));
  if (hmac !== (options.secret !== undefined))
    throw new JwtConfigError(
      hmac
        ? 'algorithms: HMAC algorithms need a secret'
        : 'secret: a shared secret goes with HMAC algorithms only',
    );
  const clockTolerance = options.clockToleranceSec ?? 30;
  if (!(Number.isFinite(clockTolerance) && clockTolerance >= 0 && clockTolerance <= 300))
    throw new JwtConfigError('clockToleranceSec: from 0 to 300');
  const scopesClaim = options.scopesClaim ?? 'scope';
  if (scopesClaim === '') throw new JwtConfigError('scopesClaim: a claim name');

  let key: KeyInput;
  if (options.jwksUrl !== undefined) {
    const remote = createRemoteJWKSet(new URL(options.jwksUrl), {
      timeoutDuration: options.timeoutMs ?? 5_000,
      cooldownDuration: options.cooldownMs ?? 30_000,
      cacheMaxAge: options.cacheMaxAgeMs ?? 600_000,
    });
    key = async (header) => {
      try {
        return await remote(header);
      } catch (error) {
        if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys)
          throw error;
        throw new JwksUnavailable(`the JWKS could not be fetched: ${(error as Error).message}`);
      }
    };
  } else if (options.secret !== undefined) {
    key = options.secret;
  } else {
    const publicKey =
      options.publicKeyPem !== undefined
        ? loadKey(() => createPublicKey(options.publicKeyPem!), 'publicKeyPem')
        : loadKey(() => createPublicKey({ key: options.jwk!, format: 'jwk' }), 'jwk');
    // A static key verifies only its own algorithms: a token naming another is refused as such.
    const usable = algorithmsOf(publicKey);
    algorithms = algorithms.filter((a) => usable.includes(a));
    if (algorithms.length === 0)
      throw new JwtConfigError(`algorithms: the key verifies ${usable.join(', ')}, none of them allowed`);
    key = publicKey;
  }

  const verifyOptions = {
    algorithms,
    issuer: options.issuer,
    audience,
    clockTolerance,
    requiredClaims: ['exp', 'sub'],
  };
  return {
    async verify(token) {
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS)
        throw refused('malformed');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, verifyOptions));
      } catch (error) {
        throw refused(failureOf(error), error);
      }
      const subject = payload.sub;
      if (typeof subject !== 'string' || subject === '' || subject.length > defaultEventLimits.maxUserIdChars)
        throw refused('malformed');
      const scopes = scopesOf(payload[scopesClaim]);
      if (scopes === undefined) throw refused('malformed');
      const principal: Principal = { kind: 'jwt', id: subject, userId: subject, scopes };
      if (typeof payload.exp === 'number') principal.expiresAtMs = payload.exp * 1000;
      return principal;
    },
  };
}

function checkAlgorithms(list: readonly string[]): string[] {
  if (list.length === 0) throw new JwtConfigError('algorithms: at least one');
  for (const alg of list) {
    if (alg.toLowerCase() === 'none') throw new JwtConfigError('algorithms: "none" is never allowed');
    if (!JWT_ALGORITHMS.includes(alg))
      throw new JwtConfigError(
        `algorithms: unknown algorithm ${JSON.stringify(alg)} (one of ${JWT_ALGORITHMS.join(', ')})`,
      );
  }
  if (list.some((a) => HMAC.includes(a)) && list.some((a) => !HMAC.includes(a)))
    throw new JwtConfigError('algorithms: HMAC (HS*) and public-key algorithms may not be mixed');
  return [...new Set(list)];
}

function loadKey(load: () => KeyObject, option: string): KeyObject {
  try {
    return load();
  } catch (error) {
    throw new JwtConfigError(`${option}: not a public key (${(error as Error).message})`);
  }
}

/** The algorithms a public key verifies. */
function algorithmsOf(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const alg = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }[curve ?? ''];
      return alg ? [alg] : [];
    }
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    default:
      return [];
  }
}

/** Tally's scopes in a scopes claim (space-separated string or array); undefined when it is neither. */
function scopesOf(claim: unknown): ReadonlySet<Scope> | undefined {
  if (claim === undefined) return new Set();
  const names = typeof claim === 'string' ? claim.split(/\s+/) : Array.isArray(claim) ? claim : undefined;
  if (names === undefined || !names.every((n) => typeof n === 'string')) return undefined;
  return new Set((names as string[]).filter(isScope));
}

function failureOf(error: unknown): JwtFailure {
  if (error instanceof JwksUnavailable) return 'jwks_unavailable';
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return 'not_yet_valid';
    if (error.claim === 'aud') return 'wrong_audience';
    if (error.claim === 'iss') return 'wrong_issuer';
    return 'malformed';
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature';
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys)
    return 'unknown_kid';
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported)
    return 'algorithm_not_allowed';
  return 'malformed';
}

const MESSAGES: Record<JwtFailure, string> = {
  expired: 'the token has expired',
  not_yet_valid: 'the token is not valid yet (nbf)',
  bad_signature: 'the token signature does not verify',
  wrong_audience: 'the token is for another audience',
  wrong_issuer: 'the token is from another issuer',
  unknown_kid: 'the token is signed with a key the issuer does not publish',
  algorithm_not_allowed: 'the token algorithm is not allowed',
  malformed: 'the token is malformed or lacks a required claim',
  jwks_unavailable: "the issuer's keys cannot be fetched; retry later",
};

/**
 * The refusal for `failure`. jose's errors are kept as the cause (logged, never sent); they name
 * claims and algorithms, never the token.
 */
function refused(failure: JwtFailure, cause?: unknown): AppError {
  const unavailable = failure === 'jwks_unavailable';
  return new AppError(
    unavailable ? Code.UNAVAILABLE : Code.UNAUTHENTICATED,
    `invalid token: ${MESSAGES[failure]}`,
    {
      reason: INVALID_TOKEN,
      metadata: { token_error: failure },
      cause: cause instanceof Error ? new Error(`${cause.name}: ${cause.message}`) : undefined,
    },
  );
}
