/**
 * AppError in the gRPC ecosystem's standard error model (https://google.aip.dev/193): a
 * google.rpc.Status whose details are
 * - google.rpc.BadRequest, one FieldViolation per field at fault (invalid input);
 * - google.rpc.RetryInfo with the delay to wait, when the error is retryable (UNAVAILABLE,
 *   RESOURCE_EXHAUSTED, …): its presence is what says "retry";
 * - google.rpc.QuotaFailure, one Violation per limit a call ran past (rate limits, quotas);
 * - google.rpc.ErrorInfo (reason, domain `tally.dev`, metadata), on every error.
 * gRPC carries the Status in the `grpc-status-details-bin` trailer, which grpcurl and the
 * standard libraries of Go, Java and Python read; REST carries the same details in the body's
 * `details` (protobuf JSON mapping, with `@type`).
 */
import { create, createRegistry, fromBinary, type JsonValue, toBinary, toJson } from '@bufbuild/protobuf';
import {
  type Any,
  AnySchema,
  anyIs,
  anyPack,
  anyUnpack,
  durationFromMs,
  durationMs,
} from '@bufbuild/protobuf/wkt';
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from '../gen/google/rpc/error_details_pb.js';
import { type Status, StatusSchema } from '../gen/google/rpc/status_pb.js';
import { AppError, type AppErrorOptions, type Code, ERROR_DOMAIN } from './app-error.ts';

/** The trailer holding the serialized google.rpc.Status. */
export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

const DETAILS = createRegistry(BadRequestSchema, RetryInfoSchema, QuotaFailureSchema, ErrorInfoSchema);

/** The standard detail messages of `error`, packed in Any: BadRequest?, RetryInfo?, QuotaFailure?, ErrorInfo. */
export function errorDetails(error: AppError): Any[] {
  const details: Any[] = [];
  if (error.fieldViolations.length > 0)
    details.push(
      anyPack(BadRequestSchema, create(BadRequestSchema, { fieldViolations: [...error.fieldViolations] })),
    );
  if (error.retryable && error.retryAfterMs !== undefined)
    details.push(
      anyPack(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: durationFromMs(error.retryAfterMs) })),
    );
  if (error.quotaViolations.length > 0)
    details.push(
      anyPack(
        QuotaFailureSchema,
        create(QuotaFailureSchema, {
          violations: error.quotaViolations.map((v) => ({ subject: v.subject, description: v.description })),
        }),
      ),
    );
  details.push(
    anyPack(
      ErrorInfoSchema,
      create(ErrorInfoSchema, {
        reason: error.reason,
        domain: ERROR_DOMAIN,
        metadata: { ...error.metadata },
      }),
    ),
  );
  return details;
}

/** `error` as a google.rpc.Status. */
export function statusOf(error: AppError): Status {
  return create(StatusSchema, { code: error.code, message: error.message, details: errorDetails(error) });
}

/** The `grpc-status-details-bin` value for `error`. */
export function encodeStatus(error: AppError): Uint8Array {
  return toBinary(StatusSchema, statusOf(error));
}

/** The details of `error` in the protobuf JSON mapping (`{"@type": "type.googleapis.com/…", …}`). */
export function detailsJson(error: AppError): JsonValue[] {
  return errorDetails(error).map((any) => toJson(AnySchema, any, { registry: DETAILS }));
}

/**
 * The AppError a peer sent as a serialized google.rpc.Status: the fields at fault, the retry
 * delay and the reason and metadata its details carry (details of other types are ignored);
 * undefined when `bytes` is not a Status.
 */
export function decodeStatus(
  bytes: Uint8Array,
  fallback: { code: Code; message: string; cause?: unknown },
): AppError | undefined {
  let status: Status;
  try {
    status = fromBinary(StatusSchema, bytes);
  } catch {
    return undefined;
  }
  const options: AppErrorOptions = { cause: fallback.cause, retryable: false };
  for (const any of status.details) {
    if (anyIs(any, BadRequestSchema)) {
      const detail = anyUnpack(any, BadRequestSchema);
      options.fieldViolations = detail?.fieldViolations.map((v) => ({
        field: v.field,
        description: v.description,
      }));
    } else if (anyIs(any, RetryInfoSchema)) {
      const detail = anyUnpack(any, RetryInfoSchema);
      options.retryable = true;
      options.retryAfterMs = detail?.retryDelay ? durationMs(detail.retryDelay) : undefined;
    } else if (anyIs(any, QuotaFailureSchema)) {
      const detail = anyUnpack(any, QuotaFailureSchema);
      options.quotaViolations = detail?.violations.map((v) => ({
        subject: v.subject,
        description: v.description,
      }));
    } else if (anyIs(any, ErrorInfoSchema)) {
      const detail = anyUnpack(any, ErrorInfoSchema);
      options.reason = detail?.reason || undefined;
      options.metadata = { ...detail?.metadata };
    }
  }
  return new AppError((status.code || fallback.code) as Code, status.message || fallback.message, options);
}
