/**
 * Destinations: where Tally delivers events (an HTTPS webhook or a Kafka topic), which events
 * (the filter), as what (the transform), in what order, with which retries and pace; and the
 * validation every way in (gRPC, REST, `tally destinations`) shares. Pure: no I/O, no clock, no
 * randomness of its own. docs/delivery.md describes each field, its default and its limits.
 *
 * Field paths in violations are the proto's (`webhook.headers["x-team"]`, `filter.event_types[2]`),
 * relative to the destination: the caller puts the request's path in front (`destination.`).
 */
import { base62 } from './api-keys.ts';
import {
  checkList,
  type DestinationFilter,
  type FieldViolation,
  type TransformSpec,
  validateFilter,
  validateTransform,
} from './destination-transform.ts';
import { textProblem } from './event-rules.ts';

export type { FieldViolation };

export const DESTINATION_KINDS = Object.freeze(['webhook', 'kafka'] as const);
export type DestinationKind = (typeof DESTINATION_KINDS)[number];

export const ORDERING_MODES = Object.freeze(['per_user', 'none'] as const);
/**
 * `per_user`: a user's next event is sent once the previous one succeeded or was dead-lettered;
 * `none`: events are sent as fast as concurrency allows, in any order.
 */
export type OrderingMode = (typeof ORDERING_MODES)[number];

/** An HTTPS endpoint that receives each event as a signed POST (Standard Webhooks). */
export interface WebhookEndpoint {
  kind: 'webhook';
  /** `https://…`, or `http://…` when {@link allowPlainHttp}; no credentials in it. */
  url: string;
  /** For local receivers and tests only: accept an `http://` URL. */
  allowPlainHttp: boolean;
  /** Sent with every request (names lower-cased); never logged (see {@link redactHeaders}). */
  headers: Record<string, string>;
  /** How long one attempt may take, connection to response. */
  timeoutMs: number;
}

/** A Kafka topic that receives each event as a record keyed by user id. */
export interface KafkaEndpoint {
  kind: 'kafka';
  topic: string;
  /** Another cluster's bootstrap brokers (`host:port`); empty: Tally's own cluster. */
  brokers: string[];
}

export type DestinationEndpoint = WebhookEndpoint | KafkaEndpoint;

/** A destination as stored and answered, every default filled (secrets apart: see {@link SigningSecret}). */
export interface DestinationSpec {
  name: string;
  enabled: boolean;
  /** Why it is disabled ('' while enabled): an administrator's note, or the sender's (a 410 answer). */
  disabledReason: string;
  endpoint: DestinationEndpoint;
  filter: DestinationFilter;
  transform: TransformSpec;
  ordering: OrderingMode;
  /**
   * Seconds before each attempt, the first being the first attempt: its length is the number of
   * attempts. Default {@link DEFAULT_RETRY_DELAYS_SECONDS}.
   */
  retryDelaysSeconds: number[];
  /** Most requests started per second; undefined: no limit. */
  rateLimitPerSecond: number | undefined;
  /** Most requests in flight at once. */
  concurrency: number;
}

/** A destination as a request gives it: absent fields take their defaults. */
export interface DestinationInput {
  name: string;
  /** Absent: enabled (create) or unchanged (update). */
  enabled?: boolean;
  disabledReason?: string;
  /** Absent: no kind chosen (refused). */
  endpoint?:
    | {
        kind: 'webhook';
        url: string;
        allowPlainHttp?: boolean;
        headers?: Readonly<Record<string, string>>;
        timeoutMs?: number;
      }
    | { kind: 'kafka'; topic: string; brokers?: readonly string[] };
  filter?: Partial<DestinationFilter>;
  transform?: Partial<TransformSpec>;
  /** `per_user` (or empty) or `none`. */
  ordering?: string;
  /** Absent or empty: the default schedule. */
  retryDelaysSeconds?: readonly number[];
  rateLimitPerSecond?: number;
  concurrency?: number;
}

/**
 * The default retry schedule, in the spirit of Standard Webhooks: at once, then 5 s, 5 min,
 * 30 min, 2 h, 5 h, 10 h and 10 h later (8 attempts over about 27.6 hours).
 */
export const DEFAULT_RETRY_DELAYS_SECONDS: readonly number[] = Object.freeze([
  0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000,
]);

export const DESTINATION_DEFAULTS = Object.freeze({
  ordering: 'per_user' as OrderingMode,
  concurrency: 10,
  webhookTimeoutMs: 10_000,
});

export const DESTINATION_LIMITS = Object.freeze({
  maxNameChars: 200,
  maxDisabledReasonChars: 500,
  maxUrlChars: 2048,
  maxHeaders: 20,
  maxHeaderValueChars: 4096,
  minTimeoutMs: 100,
  maxTimeoutMs: 60_000,
  maxBrokers: 10,
  maxAttempts: 20,
  /** One delay of the schedule. */
  maxRetryDelaySeconds: 86_400,
  maxRateLimitPerSecond: 100_000,
  maxConcurrency: 1_000,
  /** Signing secrets a webhook holds at once (the current one and those still in their grace period). */
  maxSigningSecrets: 3,
  minSecretBytes: 24,
  maxSecretBytes: 64,
  /** Longest grace period of a rotated-out secret. */
  maxGraceSeconds: 7 * 86_400,
});

/** The grace period of a rotated-out secret when the request names none: 24 hours. */
export const DEFAULT_SECRET_GRACE_SECONDS = 86_400;

/** The prefix of every delivery topic; a destination's is this and its id. */
export const DELIVERY_TOPIC_PREFIX = 'deliveries.';

/** Characters after the `ds_` prefix of a destination id. */
export const DESTINATION_ID_CHARS = 10;
/** Random bytes a destination id is made from. */
export const DESTINATION_ID_RANDOM_BYTES = 8;
const ID_PATTERN = /^ds_[0-9A-Za-z]{10}$/;

/** A destination id (`ds_` and 10 base62 characters, about 59 random bits) from 8 random bytes. */
export function formatDestinationId(random: Uint8Array): string {
  if (random.length !== DESTINATION_ID_RANDOM_BYTES)
    throw new RangeError(
      `a destination id takes ${DESTINATION_ID_RANDOM_BYTES} random bytes, got ${random.length}`,
    );
  let value = 0n;
  for (const byte of random) value = (value << 8n) | BigInt(byte);
  return `ds_${base62(value % 62n ** BigInt(DESTINATION_ID_CHARS), DESTINATION_ID_CHARS)}`;
}

export function isDestinationId(text: string): boolean {
  return ID_PATTERN.test(text);
}

// ---- signing secrets -------------------------------------------------------------------------

/**
 * A webhook's signing secret as stored: usable to sign (an HMAC key cannot be kept as a hash),
 * so the store holds it as it is; the API shows it once (on create or rotation), then only its
 * {@link secretHint}. A secret with `expiresAtMs` was rotated out and signs until then.
 */
export interface SigningSecret {
  secret: string;
  createdAtMs: number;
  expiresAtMs: number | undefined;
}

/** Random bytes a generated secret holds (Standard Webhooks allows 24 to 64). */
export const SECRET_RANDOM_BYTES = 32;

/** `whsec_` and the base64 of the key's bytes, as Standard Webhooks writes a secret. */
export function formatSigningSecret(random: Uint8Array): string {
  if (random.length < DESTINATION_LIMITS.minSecretBytes || random.length > DESTINATION_LIMITS.maxSecretBytes)
    throw new RangeError(`a signing secret takes 24 to 64 random bytes, got ${random.length}`);
  return `whsec_${btoa(String.fromCharCode(...random))}`;
}

/** Why `secret` is not a usable signing secret, or undefined. */
export function signingSecretProblem(secret: string): string | undefined {
  const L = DESTINATION_LIMITS;
  const wrong = `must be whsec_ and the base64 of ${L.minSecretBytes} to ${L.maxSecretBytes} random bytes`;
  if (!secret.startsWith('whsec_')) return wrong;
  const body = secret.slice('whsec_'.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return wrong;
  const bytes = (body.length / 4) * 3 - (body.endsWith('==') ? 2 : body.endsWith('=') ? 1 : 0);
  return bytes >= L.minSecretBytes && bytes <= L.maxSecretBytes ? undefined : wrong;
}

/** What the API shows of a secret after it was made: its prefix and first 4 characters. */
export function secretHint(secret: string): string {
  return `${secret.slice(0, 'whsec_'.length + 4)}…`;
}

/** The secrets that sign at `nowMs`: every one not expired, newest first. */
export function activeSecrets(secrets: readonly SigningSecret[], nowMs: number): SigningSecret[] {
  return secrets.filter((s) => s.expiresAtMs === undefined || s.expiresAtMs > nowMs);
}

export type SecretRotation =
  | { ok: true; secrets: SigningSecret[] }
  | { ok: false; violation: FieldViolation; precondition: boolean };

/**
 * A rotation: `secret` becomes the newest; every secret still signing now expires `graceSeconds`
 * from now (or sooner, if it was to expire sooner); expired ones are dropped. With grace 0, the
 * old secrets stop at once. Refused when it would leave more than 3 secrets signing.
 */
export function rotateSecrets(
  current: readonly SigningSecret[],
  secret: string,
  nowMs: number,
  graceSeconds: number = DEFAULT_SECRET_GRACE_SECONDS,
): SecretRotation {
  const L = DESTINATION_LIMITS;
  if (!(Number.isInteger(graceSeconds) && graceSeconds >= 0 && graceSeconds <= L.maxGraceSeconds))
    return {
      ok: false,
      precondition: false,
      violation: {
        field: 'grace_seconds',
        description: `must be a whole number from 0 to ${L.maxGraceSeconds}`,
      },
    };
  const problem = signingSecretProblem(secret);
  if (problem)
    return { ok: false, precondition: false, violation: { field: 'secret', description: problem } };
  const until = nowMs + graceSeconds * 1000;
  const kept = graceSeconds === 0 ? [] : activeSecrets(current, nowMs);
  if (kept.some((s) => s.secret === secret))
    return {
      ok: false,
      precondition: false,
      violation: { field: 'secret', description: 'is already one of the destination’s secrets' },
    };
  if (kept.length + 1 > L.maxSigningSecrets)
    return {
      ok: false,
      precondition: true,
      violation: {
        field: 'grace_seconds',
        description: `${kept.length} secrets still sign and at most ${L.maxSigningSecrets} may: rotate with grace_seconds 0 to drop them, or wait until one expires`,
      },
    };
  return {
    ok: true,
    secrets: [
      { secret, createdAtMs: nowMs, expiresAtMs: undefined },
      ...kept.map((s) => ({ ...s, expiresAtMs: Math.min(s.expiresAtMs ?? until, until) })),
    ],
  };
}

// ---- headers -----------------------------------------------------------------------------------

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;
/** Headers the sender sets itself. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'user-agent',
]);
const RESERVED_HEADER_PREFIX = 'webhook-'; // webhook-id, webhook-timestamp, webhook-signature
const SENSITIVE_HEADER = /authorization|cookie|token|secret|key|password|signature|session|credential/i;

/** `headers` with every value that may be a credential (authorization, cookies, keys…) replaced by `***`. */
export function redactHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => [name, SENSITIVE_HEADER.test(name) ? '***' : value]),
  );
}

// ---- validation --------------------------------------------------------------------------------

export type DestinationValidation =
  | { ok: true; spec: DestinationSpec }
  | { ok: false; violations: FieldViolation[] };

/**
 * Checks a destination and fills its defaults: the destination as it is stored, or every field at
 * fault (paths relative to it, as the proto names them: `webhook.url`, `transform.fields[1].to`).
 */
export function validateDestination(input: DestinationInput): DestinationValidation {
  const violations: FieldViolation[] = [];
  const bad = (field: string, description: string) => {
    violations.push({ field, description });
  };
  const L = DESTINATION_LIMITS;

  const name = input.name.trim();
  if (name === '') bad('name', 'is required');
  else {
    const problem = textProblem(name, L.maxNameChars);
    if (problem) bad('name', problem);
  }

  const enabled = input.enabled ?? true;
  const disabledReason = enabled ? '' : (input.disabledReason ?? '').trim();
  if (disabledReason !== '') {
    const problem = textProblem(disabledReason, L.maxDisabledReasonChars);
    if (problem) bad('disabled_reason', problem);
  }

  const endpoint = validateEndpoint(input.endpoint, bad);
  const filter = validateFilter(input.filter, 'filter.', bad);
  const transform = validateTransform(input.transform, 'transform.', bad);

  const ordering = input.ordering === undefined || input.ordering === '' ? 'per_user' : input.ordering;
  if (!(ORDERING_MODES as readonly string[]).includes(ordering))
    bad('ordering', `must be ${ORDERING_MODES.join(' or ')}`);

  const retryDelaysSeconds =
    input.retryDelaysSeconds === undefined || input.retryDelaysSeconds.length === 0
      ? [...DEFAULT_RETRY_DELAYS_SECONDS]
      : [...input.retryDelaysSeconds];
  if (retryDelaysSeconds.length > L.maxAttempts)
    bad('retry.delays_seconds', `must have at most ${L.maxAttempts} entries (one per attempt)`);
  retryDelaysSeconds.forEach((delay, i) => {
    if (!(Number.isInteger(delay) && delay >= 0 && delay <= L.maxRetryDelaySeconds))
      bad(
        `retry.delays_seconds[${i}]`,
        `must be a whole number of seconds from 0 to ${L.maxRetryDelaySeconds}`,
      );
  });

  const rate = input.rateLimitPerSecond;
  if (rate !== undefined && !(Number.isInteger(rate) && rate >= 1 && rate <= L.maxRateLimitPerSecond))
    bad(
      'rate_limit_per_second',
      `must be a whole number from 1 to ${L.maxRateLimitPerSecond} (unset: no limit)`,
    );
  const concurrency = input.concurrency ?? DESTINATION_DEFAULTS.concurrency;
  if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= L.maxConcurrency))
    bad('concurrency', `must be a whole number from 1 to ${L.maxConcurrency}`);

  if (violations.length > 0 || endpoint === undefined) return { ok: false, violations };
  return {
    ok: true,
    spec: {
      name,
      enabled,
      disabledReason,
      endpoint,
      filter,
      transform,
      ordering: ordering as OrderingMode,
      retryDelaysSeconds,
      rateLimitPerSecond: rate,
      concurrency,
    },
  };
}

/** Checks secrets a create request gives (1 to 3, distinct, each well-formed); `field` is their path. */
export function validateSigningSecrets(secrets: readonly string[], field: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  checkList(
    field,
    secrets,
    DESTINATION_LIMITS.maxSigningSecrets,
    (f, d) => violations.push({ field: f, description: d }),
    signingSecretProblem,
  );
  return violations;
}

type Bad = (field: string, description: string) => void;

const KAFKA_TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
const BROKER = /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/;

function validateEndpoint(endpoint: DestinationInput['endpoint'], bad: Bad): DestinationEndpoint | undefined {
  const L = DESTINATION_LIMITS;
  if (endpoint === undefined) {
    bad('endpoint', `must be one of ${DESTINATION_KINDS.join(', ')}`);
    return undefined;
  }
  switch (endpoint.kind) {
    case 'webhook': {
      const allowPlainHttp = endpoint.allowPlainHttp ?? false;
      const url = endpoint.url.trim();
      const urlProblem = webhookUrlProblem(url, allowPlainHttp);
      if (urlProblem) bad('webhook.url', urlProblem);
      const headers: Record<string, string> = {};
      const names = Object.keys(endpoint.headers ?? {});
      if (names.length > L.maxHeaders) bad('webhook.headers', `must have at most ${L.maxHeaders} entries`);
      for (const given of names) {
        const value = endpoint.headers![given]!;
        const lower = given.toLowerCase();
        const field = `webhook.headers[${JSON.stringify(given)}]`;
        if (!HEADER_NAME.test(given)) bad(field, 'is not a valid HTTP header name');
        else if (RESERVED_HEADERS.has(lower) || lower.startsWith(RESERVED_HEADER_PREFIX))
          bad(field, 'is set by the sender itself and cannot be given');
        else if (Object.hasOwn(headers, lower)) bad(field, 'repeats a header (names are case-insensitive)');
        // Visible ASCII, spaces and tabs: no line breaks to split a request with.
        else if (!/^[\t\x20-\x7e]*$/.test(value) || value.length > L.maxHeaderValueChars)
          bad(field, `value must be at most ${L.maxHeaderValueChars} visible ASCII characters`);
        else headers[lower] = value;
      }
      const timeoutMs = endpoint.timeoutMs ?? DESTINATION_DEFAULTS.webhookTimeoutMs;
      if (!(Number.isInteger(timeoutMs) && timeoutMs >= L.minTimeoutMs && timeoutMs <= L.maxTimeoutMs))
        bad('webhook.timeout_ms', `must be a whole number from ${L.minTimeoutMs} to ${L.maxTimeoutMs}`);
      return { kind: 'webhook', url, allowPlainHttp, headers, timeoutMs };
    }
    case 'kafka': {
      const topic = endpoint.topic;
      if (topic === '') bad('kafka.topic', 'is required');
      else if (!KAFKA_TOPIC.test(topic) || topic === '.' || topic === '..')
        bad('kafka.topic', 'must be 1 to 249 letters, digits and . _ -, and not . or ..');
      const brokers = [...(endpoint.brokers ?? [])];
      checkList('kafka.brokers', brokers, L.maxBrokers, bad, (b) =>
        BROKER.test(b) && Number(b.slice(b.lastIndexOf(':') + 1)) <= 65_535 ? undefined : 'must be host:port',
      );
      if (brokers.length === 0 && topic.startsWith(DELIVERY_TOPIC_PREFIX))
        bad('kafka.topic', `must not be a delivery topic (${DELIVERY_TOPIC_PREFIX}…) of this cluster`);
      return { kind: 'kafka', topic, brokers };
    }
    default:
      bad('endpoint', `must be one of ${DESTINATION_KINDS.join(', ')}`);
      return undefined;
  }
}

function webhookUrlProblem(url: string, allowPlainHttp: boolean): string | undefined {
  if (url === '') return 'is required';
  if (url.length > DESTINATION_LIMITS.maxUrlChars)
    return `must be at most ${DESTINATION_LIMITS.maxUrlChars} characters`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a valid absolute URL';
  }
  if (parsed.protocol === 'http:' && !allowPlainHttp)
    return 'must be https:// (set allow_plain_http for a local receiver)';
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'must be https://';
  if (parsed.username !== '' || parsed.password !== '')
    return 'must not hold credentials: put them in a header';
  if (parsed.hostname === '') return 'must name a host';
  if (parsed.hash !== '') return 'must not have a #fragment';
  return undefined;
}
