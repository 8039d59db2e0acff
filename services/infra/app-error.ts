/**
 * One error vocabulary for every role: the 16 gRPC status codes, and one table
 * from code to HTTP status. The cause is logged, never sent to a client.
 */

export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

const NAMES = Object.fromEntries(Object.entries(Code).map(([name, code]) => [code, name])) as Record<
  Code,
  string
>;

/** `INVALID_ARGUMENT` for 3, and so on. */
export function codeName(code: Code): string {
  return NAMES[code] ?? 'UNKNOWN';
}

const HTTP_STATUS: Record<Code, number> = {
  [Code.OK]: 200,
  [Code.CANCELLED]: 499,
  [Code.UNKNOWN]: 500,
  [Code.INVALID_ARGUMENT]: 400,
  [Code.DEADLINE_EXCEEDED]: 504,
  [Code.NOT_FOUND]: 404,
  [Code.ALREADY_EXISTS]: 409,
  [Code.PERMISSION_DENIED]: 403,
  [Code.RESOURCE_EXHAUSTED]: 429,
  [Code.FAILED_PRECONDITION]: 400,
  [Code.ABORTED]: 409,
  [Code.OUT_OF_RANGE]: 400,
  [Code.UNIMPLEMENTED]: 501,
  [Code.INTERNAL]: 500,
  [Code.UNAVAILABLE]: 503,
  [Code.DATA_LOSS]: 500,
  [Code.UNAUTHENTICATED]: 401,
};

/** The HTTP status for a code (INVALID_ARGUMENT→400, UNAVAILABLE→503, ...). */
export function httpStatusFor(code: Code): number {
  return HTTP_STATUS[code] ?? 500;
}

const RETRYABLE: ReadonlySet<Code> = new Set([
  Code.UNAVAILABLE,
  Code.DEADLINE_EXCEEDED,
  Code.ABORTED,
  Code.RESOURCE_EXHAUSTED,
]);

/** The `domain` of every ErrorInfo Tally sends: the namespace of its `reason`s. */
export const ERROR_DOMAIN = 'tally.dev';

/** How long a client should wait before retrying a retryable error that names no delay. */
export const DEFAULT_RETRY_DELAY_MS = 1_000;

/**
 * The `reason`s Tally gives in ErrorInfo beyond the code's own name (UPPER_SNAKE_CASE, stable:
 * clients may branch on them).
 */
export const Reason = {
  /** One event of a batch or stream was refused; metadata `index` is its position (from 0). */
  INVALID_EVENT: 'INVALID_EVENT',
  /** A REST body over the size limit; metadata `limit_bytes`. */
  BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  /** The server drains; another instance will take the call. */
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  /** UNAUTHENTICATED: the request carries no credential (an API key or a JWT). */
  MISSING_CREDENTIAL: 'MISSING_CREDENTIAL',
  /**
   * UNAUTHENTICATED: the API key is refused; metadata `credential_error`: `malformed`, `unknown`,
   * `revoked` or `expired`.
   */
  INVALID_CREDENTIAL: 'INVALID_CREDENTIAL',
  /** UNAUTHENTICATED: the JWT is refused; metadata `token_error` says why (docs/security.md). */
  INVALID_TOKEN: 'INVALID_TOKEN',
  /** PERMISSION_DENIED: the credential lacks the scope the call needs; metadata `required_scope`. */
  INSUFFICIENT_SCOPE: 'INSUFFICIENT_SCOPE',
  /** PERMISSION_DENIED: the ingest key may not be used from the request's `Origin`. */
  ORIGIN_NOT_ALLOWED: 'ORIGIN_NOT_ALLOWED',
  /** PERMISSION_DENIED: the ingest key may not write this event type; metadata `index` in a batch. */
  EVENT_TYPE_NOT_ALLOWED: 'EVENT_TYPE_NOT_ALLOWED',
  /** PERMISSION_DENIED: a token writes an event for another user than its subject; metadata `index` in a batch. */
  OTHER_USER: 'OTHER_USER',
  /** PERMISSION_DENIED: an end user's token asks for notifications addressed to someone else. */
  OTHER_RECIPIENT: 'OTHER_RECIPIENT',
  /**
   * RESOURCE_EXHAUSTED: over a rate limit; RetryInfo says when the same call would pass. Metadata
   * `limit` (the policy: `ingest`, `read`, `ip`), `remaining` (units the bucket holds now),
   * `ratelimit` and `ratelimit_policy` (the HTTP `RateLimit` and `RateLimit-Policy` values).
   */
  RATE_LIMITED: 'RATE_LIMITED',
  /**
   * RESOURCE_EXHAUSTED: the call costs more than the limit's whole burst (a batch of more events
   * than the per-minute limit): it never passes, so there is no RetryInfo. Metadata as RATE_LIMITED.
   */
  COST_EXCEEDS_LIMIT: 'COST_EXCEEDS_LIMIT',
  /** RESOURCE_EXHAUSTED: the key's monthly event quota is used up; RetryInfo until the month ends. */
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  /** RESOURCE_EXHAUSTED: the limits could not be checked and are configured to fail closed. */
  LIMITS_UNAVAILABLE: 'LIMITS_UNAVAILABLE',
} as const;

/** A request field at fault (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  /** Path of the field, e.g. `events[3].type`, `attributes["city"]`, `body`. */
  field: string;
  /** What is wrong with it, e.g. `must match ^[A-Za-z0-9_.:-]{1,64}$`. */
  description: string;
}

/** A quota or limit a call ran past (google.rpc.QuotaFailure.Violation). */
export interface QuotaViolation {
  /** Whose limit: `api_key:<display id>`, `subject`, `client_ip`. */
  subject: string;
  /** Which limit and by how much, e.g. `ingest: 1000 events per 60 s`. */
  description: string;
}

/**
 * How REST answers an error no gRPC code describes (405 Method Not Allowed, 426 Upgrade
 * Required); such an error never travels over gRPC.
 */
export interface HttpOverride {
  status: number;
  /** Shown as the body's `status`, e.g. `METHOD_NOT_ALLOWED`. */
  name: string;
  headers?: Readonly<Record<string, string>>;
}

export interface AppErrorOptions {
  /** Defaults to the code's nature: UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED retry. */
  retryable?: boolean;
  /** Logged, never sent. */
  cause?: unknown;
  /** The request fields at fault (sent as google.rpc.BadRequest). */
  fieldViolations?: readonly FieldViolation[];
  /** How long to wait before a retry, for a retryable error (default {@link DEFAULT_RETRY_DELAY_MS}). */
  retryAfterMs?: number;
  /** ErrorInfo's reason (default: the code's name, e.g. `NOT_FOUND`); see {@link Reason}. */
  reason?: string;
  /** ErrorInfo's metadata: facts a client can act on (`index`, `limit_bytes`); never secrets. */
  metadata?: Readonly<Record<string, string>>;
  /** The limits the call ran past (sent as google.rpc.QuotaFailure). */
  quotaViolations?: readonly QuotaViolation[];
  http?: HttpOverride;
}

/**
 * An error with a status code; `message` is safe to send to a client. Its structured details
 * travel in the standard google.rpc forms: over gRPC in `grpc-status-details-bin`
 * (infra/error-details.ts), over REST in the body's `details` (infra/http/http-server.ts).
 */
export class AppError extends Error {
  readonly code: Code;
  /** Whether the same call may succeed later; sent as google.rpc.RetryInfo when true. */
  readonly retryable: boolean;
  readonly fieldViolations: readonly FieldViolation[];
  /** The delay a retry should wait, when {@link retryable}. */
  readonly retryAfterMs: number | undefined;
  readonly reason: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly quotaViolations: readonly QuotaViolation[];
  readonly http: HttpOverride | undefined;

  constructor(code: Code, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE.has(code);
    this.fieldViolations = options.fieldViolations ?? [];
    // Whole milliseconds: RetryInfo's Duration holds whole nanoseconds.
    this.retryAfterMs = this.retryable
      ? Math.ceil(options.retryAfterMs ?? DEFAULT_RETRY_DELAY_MS)
      : undefined;
    this.reason = options.reason ?? codeName(code);
    this.metadata = options.metadata ?? {};
    this.quotaViolations = options.quotaViolations ?? [];
    this.http = options.http;
  }

  /** The first field at fault, e.g. `events[3].type` (REST's `field`). */
  get field(): string | undefined {
    return this.fieldViolations[0]?.field;
  }

  /** INVALID_ARGUMENT naming the field: `"<field>: <description>"`. */
  static invalidField(
    field: string,
    description: string,
    options: Pick<AppErrorOptions, 'reason' | 'metadata'> = {},
  ): AppError {
    return new AppError(Code.INVALID_ARGUMENT, `${field}: ${description}`, {
      ...options,
      fieldViolations: [{ field, description }],
    });
  }

  /**
   * The same error as another request would have named its fields (`events[3].type` →
   * `event.type`): each field path through `rename`, and the message's leading field too;
   * `info` replaces the reason and metadata (default: the code's, none).
   */
  renameFields(
    rename: (field: string) => string,
    info: Pick<AppErrorOptions, 'reason' | 'metadata'> = {},
  ): AppError {
    const first = this.field;
    const message =
      first !== undefined && this.message.startsWith(`${first}: `)
        ? `${rename(first)}${this.message.slice(first.length)}`
        : this.message;
    return new AppError(this.code, message, {
      ...info,
      cause: this,
      retryable: this.retryable,
      retryAfterMs: this.retryAfterMs,
      fieldViolations: this.fieldViolations.map((v) => ({
        field: rename(v.field),
        description: v.description,
      })),
    });
  }
}

/** UNAVAILABLE (retryable): a backend or dependency cannot serve now; `cause` is logged, never sent. */
export function unavailable(message: string, cause?: unknown): AppError {
  return new AppError(Code.UNAVAILABLE, message, { cause });
}

/** UNAVAILABLE (retryable at once, elsewhere): this server drains. */
export function shuttingDown(): AppError {
  return new AppError(Code.UNAVAILABLE, 'server is shutting down, retry on another instance', {
    reason: Reason.SHUTTING_DOWN,
  });
}

/** Any thrown value as an AppError; unknown errors become INTERNAL with a generic message. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return new AppError(Code.INTERNAL, 'internal error', { cause: error, retryable: false });
}
