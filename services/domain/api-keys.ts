/**
 * Credentials: scopes, the API key format and the principal a request acts as.
 * Pure: no I/O, no clock, no randomness of its own (the caller passes the 32 random bytes).
 *
 * A key reads `tly_sk_<body><checksum>`: a prefix naming its kind, a body of 43 base62 characters
 * holding 32 random bytes, and 6 base62 characters of CRC32 over everything before them. The
 * prefix and the checksum let secret scanners find leaked keys with no false positives to speak
 * of (GitHub's token format; docs/security.md). Only a key's SHA-256 is stored.
 */

/** What a credential may do: `ingest` writes events, `read` reads counters, reports, top and the stream, `admin` manages keys and alert rules. */
export type Scope = 'ingest' | 'read' | 'admin';
export const SCOPES: readonly Scope[] = Object.freeze(['ingest', 'read', 'admin'] as const);

/**
 * The scope that lets a credential write events for another user than its own: a JWT with it may
 * set any `user_id`; without it, only its subject's (or none, which becomes its subject).
 */
export const ACT_FOR_OTHER_USERS_SCOPE: Scope = 'admin';

export function isScope(text: string): text is Scope {
  return (SCOPES as readonly string[]).includes(text);
}

/**
 * `ingest,read` → {ingest, read} (spaces around names ignored, repeats merged); an empty list or
 * an unknown name is an error naming it.
 */
export function parseScopes(text: string): { scopes: ReadonlySet<Scope> } | { error: string } {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) return { error: `no scope given (one or more of ${SCOPES.join(', ')})` };
  const unknown = names.find((s) => !isScope(s));
  if (unknown !== undefined)
    return { error: `unknown scope ${JSON.stringify(unknown)} (one of ${SCOPES.join(', ')})` };
  return { scopes: new Set(names as Scope[]) };
}

/** Scopes in their fixed order (ingest, read, admin), for storage and display. */
export function sortedScopes(scopes: Iterable<Scope>): Scope[] {
  const set = new Set(scopes);
  return SCOPES.filter((s) => set.has(s));
}

/**
 * `ingest`: may only write events, and may be shipped in a browser or an app (optionally held to
 * some origins and event types); `secret`: a server's key with the scopes chosen at creation.
 */
export type ApiKeyKind = 'ingest' | 'secret';
export const API_KEY_KINDS: readonly ApiKeyKind[] = Object.freeze(['ingest', 'secret'] as const);

export const API_KEY_PREFIXES: Readonly<Record<ApiKeyKind, string>> = Object.freeze({
  ingest: 'tly_ik_',
  secret: 'tly_sk_',
});

/** Random bytes in a key. */
export const API_KEY_RANDOM_BYTES = 32;
/** Base62 characters of the body: the fewest that hold 32 bytes (62^43 > 2^256). */
export const API_KEY_BODY_CHARS = 43;
/** Base62 characters of the checksum: the fewest that hold a CRC32 (62^6 > 2^32). */
export const API_KEY_CHECKSUM_CHARS = 6;
/** Characters of the display id, taken from the start of the body. */
export const API_KEY_ID_CHARS = 8;
/** Characters of a whole key (prefix, body, checksum); both prefixes have the same length. */
export const API_KEY_CHARS = API_KEY_PREFIXES.secret.length + API_KEY_BODY_CHARS + API_KEY_CHECKSUM_CHARS;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BASE62_TEXT = /^[0-9A-Za-z]*$/;

/** `value` in base62 (0-9A-Za-z, most significant first), left-padded with `0` to `width`. */
export function base62(value: bigint, width: number): string {
  if (value < 0n) throw new RangeError('base62 encodes non-negative integers');
  let text = '';
  for (let v = value; v > 0n; v /= 62n) text = BASE62[Number(v % 62n)] + text;
  return text.padStart(width, '0');
}

function fromBase62(text: string): bigint {
  let value = 0n;
  for (const c of text) value = value * 62n + BigInt(BASE62.indexOf(c));
  return value;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, as zlib's `crc32`) of an ASCII string's bytes. */
export function crc32(ascii: string): number {
  let crc = 0xffffffff;
  for (let i = 0; i < ascii.length; i++) crc = CRC_TABLE[(crc ^ ascii.charCodeAt(i)) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The checksum of a key: CRC32 over the prefix and the body, in base62. */
function checksum(prefixAndBody: string): string {
  return base62(BigInt(crc32(prefixAndBody)), API_KEY_CHECKSUM_CHARS);
}

/**
 * A new key of `kind` from exactly {@link API_KEY_RANDOM_BYTES} random bytes (the caller draws
 * them from a cryptographic source: node's `randomBytes`). The result is shown once.
 */
export function formatApiKey(kind: ApiKeyKind, random: Uint8Array): string {
  if (random.length !== API_KEY_RANDOM_BYTES)
    throw new RangeError(`an API key takes ${API_KEY_RANDOM_BYTES} random bytes, got ${random.length}`);
  let value = 0n;
  for (const byte of random) value = (value << 8n) | BigInt(byte);
  const head = API_KEY_PREFIXES[kind] + base62(value, API_KEY_BODY_CHARS);
  return head + checksum(head);
}

/** Why a text is not a key; the message never repeats the text. */
export type ApiKeyProblem = 'wrong_prefix' | 'bad_length' | 'bad_characters' | 'bad_checksum';

export type ParsedApiKey =
  | { ok: true; kind: ApiKeyKind; body: string; id: string }
  | { ok: false; problem: ApiKeyProblem; message: string };

/**
 * The kind, body and display id of a well-formed key, or why the text is not one. Checks only the
 * format (prefix, length, alphabet, checksum): whether the key exists is the key store's question.
 */
export function parseApiKey(text: string): ParsedApiKey {
  const kind = API_KEY_KINDS.find((k) => text.startsWith(API_KEY_PREFIXES[k]));
  if (kind === undefined)
    return {
      ok: false,
      problem: 'wrong_prefix',
      message: `not a Tally API key: it must start with ${Object.values(API_KEY_PREFIXES).join(' or ')}`,
    };
  if (text.length !== API_KEY_CHARS)
    return {
      ok: false,
      problem: 'bad_length',
      message: `malformed API key: ${text.length} characters instead of ${API_KEY_CHARS}`,
    };
  const prefix = API_KEY_PREFIXES[kind];
  const body = text.slice(prefix.length, prefix.length + API_KEY_BODY_CHARS);
  const sum = text.slice(prefix.length + API_KEY_BODY_CHARS);
  if (!BASE62_TEXT.test(body) || !BASE62_TEXT.test(sum))
    return {
      ok: false,
      problem: 'bad_characters',
      message: 'malformed API key: characters other than 0-9, A-Z and a-z after the prefix',
    };
  if (fromBase62(sum) !== BigInt(crc32(prefix + body)))
    return {
      ok: false,
      problem: 'bad_checksum',
      message: 'malformed API key: its checksum does not match (mistyped or truncated)',
    };
  return { ok: true, kind, body, id: apiKeyIdOfBody(body) };
}

/** The display id of a key's body: its first {@link API_KEY_ID_CHARS} characters. Not secret. */
function apiKeyIdOfBody(body: string): string {
  return body.slice(0, API_KEY_ID_CHARS);
}

/**
 * The short, non-secret id of a well-formed key (the first 8 characters after the prefix), which
 * listings and logs show instead of the key; undefined for a text that is not a key.
 */
export function apiKeyId(key: string): string | undefined {
  const parsed = parseApiKey(key);
  return parsed.ok ? parsed.id : undefined;
}

/** Per-credential overrides of the rate limits, in requests per minute; absent: the default limit. */
export interface RateLimitOverrides {
  /** Events written per minute. */
  ingestEventsPerMinute?: number;
  /** Read calls per minute. */
  readsPerMinute?: number;
}

/**
 * Who a request acts as: a key (`id`: the key's display id), a JWT's end user (`id` and `userId`:
 * its subject) or nobody (`anonymous`, when access control is off).
 */
export interface Principal {
  kind: 'key' | 'jwt' | 'anonymous';
  id: string;
  scopes: ReadonlySet<Scope>;
  /** Origins (`https://host[:port]`) a browser may call from; absent: any. */
  allowedOrigins?: readonly string[];
  /** Event types it may write; absent: any. */
  allowedTypes?: readonly string[];
  /** The end user a JWT speaks for (its subject). */
  userId?: string;
  limits?: RateLimitOverrides;
  /** Events it may write per calendar month (UTC); absent: no quota. */
  monthlyQuota?: number;
  /** When the credential stops working (a key's expiry, a token's `exp`), epoch ms; absent: never. */
  expiresAtMs?: number;
}

/**
 * The `user_id` an event written by `principal` carries, or why it may not be written: a JWT's
 * subject fills an empty `user_id`; a JWT may name another user only with
 * {@link ACT_FOR_OTHER_USERS_SCOPE}. Keys (servers) and anonymous callers write what they send.
 */
export function eventUserFor(principal: Principal, userId: string): { userId: string } | { error: string } {
  if (principal.kind !== 'jwt' || principal.userId === undefined) return { userId };
  if (userId === '' || userId === principal.userId) return { userId: principal.userId };
  if (principal.scopes.has(ACT_FOR_OTHER_USERS_SCOPE)) return { userId };
  return {
    error: `a token may write events only for its own user unless it has the ${ACT_FOR_OTHER_USERS_SCOPE} scope`,
  };
}
