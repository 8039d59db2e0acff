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

export interface AppErrorOptions {
  /** Defaults to the code's nature: UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED retry. */
  retryable?: boolean;
  /** Logged, never sent. */
  cause?: unknown;
  /** The request field at fault, e.g. `events[3].type`. */
  field?: string;
}

/** An error with a status code; `message` is safe to send to a client. */
export class AppError extends Error {
  readonly code: Code;
  readonly retryable: boolean;
  readonly field: string | undefined;

  constructor(code: Code, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE.has(code);
    this.field = options.field;
  }

  /** INVALID_ARGUMENT naming the field: `"<field>: <description>"`. */
  static invalidField(field: string, description: string): AppError {
    return new AppError(Code.INVALID_ARGUMENT, `${field}: ${description}`, { field });
  }
}

/** UNAVAILABLE (retryable): a backend or dependency cannot serve now; `cause` is logged, never sent. */
export function unavailable(message: string, cause?: unknown): AppError {
  return new AppError(Code.UNAVAILABLE, message, { cause });
}

/** Any thrown value as an AppError; unknown errors become INTERNAL with a generic message. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return new AppError(Code.INTERNAL, 'internal error', { cause: error, retryable: false });
}
