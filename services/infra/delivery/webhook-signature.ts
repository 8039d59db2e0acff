/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/): the sender's headers and the
 * receiver's check. A secret reads `whsec_<base64 of 24 to 64 random bytes>`; the signature is
 * `v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`, one per secret,
 * space-separated, so that during a rotation a receiver holding either secret verifies.
 * No I/O but node:crypto (which is why it lives in infra/ and not domain/).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, Code } from '../app-error.ts';

export const SECRET_PREFIX = 'whsec_';
/** Random bytes in a generated secret (the specification asks for 24 to 64). */
export const SECRET_BYTES = 32;
/** How far a timestamp may be from the receiver's clock, either way (the libraries' default). */
export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;
/** Secrets signing at once: the current one and those being rotated out. */
export const MAX_SECRETS = 3;

/** The headers a webhook request carries. */
export interface WebhookHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** A new secret, `whsec_` and 32 random bytes in base64. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

/**
 * The key bytes of a secret. Throws INVALID_ARGUMENT for a malformed one; the message describes
 * the problem and never quotes the secret.
 */
export function secretKey(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX))
    throw new AppError(Code.INVALID_ARGUMENT, `a webhook secret starts with ${SECRET_PREFIX}`);
  const text = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0)
    throw new AppError(Code.INVALID_ARGUMENT, `a webhook secret is ${SECRET_PREFIX} and base64`);
  const key = Buffer.from(text, 'base64');
  if (key.length < 24 || key.length > 64)
    throw new AppError(
      Code.INVALID_ARGUMENT,
      `a webhook secret holds 24 to 64 bytes (this one ${key.length})`,
    );
  return key;
}

function signature(key: Buffer, id: string, timestamp: string, body: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
}

export interface SignInput {
  /** The current secret first, then up to two being rotated out. */
  secrets: readonly string[];
  /** The message id: the same on every attempt of a message, so receivers can drop duplicates. */
  id: string;
  /** When this attempt is sent (the receiver checks it against its clock). */
  timestamp: Date;
  /** The exact bytes sent as the body. */
  body: string | Uint8Array;
}

/** The three Standard Webhooks headers for one attempt, one `v1,` signature per secret. */
export function signWebhook(input: SignInput): WebhookHeaders {
  if (input.secrets.length < 1 || input.secrets.length > MAX_SECRETS)
    throw new AppError(Code.INVALID_ARGUMENT, `a webhook is signed with 1 to ${MAX_SECRETS} secrets`);
  if (input.id === '' || /[\s.]/.test(input.id))
    throw new AppError(Code.INVALID_ARGUMENT, 'a webhook id is not empty and holds no spaces or dots');
  const timestamp = String(Math.floor(input.timestamp.getTime() / 1000));
  const signatures = input.secrets.map(
    (secret) => `v1,${signature(secretKey(secret), input.id, timestamp, input.body).toString('base64')}`,
  );
  return {
    'webhook-id': input.id,
    'webhook-timestamp': timestamp,
    'webhook-signature': signatures.join(' '),
  };
}

export interface VerifyInput {
  /** The secrets the receiver accepts (any one matching is enough). */
  secrets: readonly string[];
  /** Request headers, names in any case (node's lower-cased ones as they come). */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  body: string | Uint8Array;
  /** The receiver's clock (default: the system's). */
  now?: Date;
  toleranceSeconds?: number;
}

export type VerifyResult = { ok: true; id: string; timestamp: Date } | { ok: false; reason: string };

function header(headers: VerifyInput['headers'], name: string): string | undefined {
  for (const [key, value] of Object.entries(headers))
    if (key.toLowerCase() === name) return typeof value === 'string' ? value : value?.[0];
  return undefined;
}

/**
 * The receiver's check: the three headers present, the timestamp within the tolerance of `now`,
 * and one `v1` signature matching one secret (compared in constant time).
 */
export function verifyWebhook(input: VerifyInput): VerifyResult {
  const id = header(input.headers, 'webhook-id');
  const timestampText = header(input.headers, 'webhook-timestamp');
  const signatures = header(input.headers, 'webhook-signature');
  if (!id || !timestampText || !signatures)
    return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature' };
  if (!/^[0-9]{1,12}$/.test(timestampText)) return { ok: false, reason: 'webhook-timestamp is not a number' };
  const seconds = Number(timestampText);
  const now = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const tolerance = input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (seconds < now - tolerance) return { ok: false, reason: 'webhook-timestamp is too old' };
  if (seconds > now + tolerance) return { ok: false, reason: 'webhook-timestamp is in the future' };
  const expected = input.secrets.map((secret) => signature(secretKey(secret), id, timestampText, input.body));
  for (const versioned of signatures.split(' ')) {
    const comma = versioned.indexOf(',');
    if (comma < 0 || versioned.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(versioned.slice(comma + 1), 'base64');
    if (expected.some((e) => e.length === given.length && timingSafeEqual(e, given)))
      return { ok: true, id, timestamp: new Date(seconds * 1000) };
  }
  return { ok: false, reason: 'no signature matches' };
}
