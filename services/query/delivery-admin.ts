/**
 * The delivery methods of tally.v1.DestinationService (docs/delivery.md, "Deliveries: the admin
 * API"): ListDeliveries (newest first, filtered, opaque keyset pages), ListAttempts, Redeliver and
 * Recover, on the delivery log (infra/delivery/delivery-log.ts). Bad input is INVALID_ARGUMENT
 * naming each field at fault; an unknown delivery or destination NOT_FOUND naming `id` (or
 * `destination_id`, the list's filter).
 */
import { createHash } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { type Timestamp, timestampDate, timestampFromMs } from '@bufbuild/protobuf/wkt';
import type {
  DeliveryAttemptSchema,
  DeliverySchema,
  ListAttemptsRequest,
  ListDeliveriesRequest,
  RecoverRequest,
  RedeliverRequest,
} from '../gen/tally/v1/destinations_pb.js';
import { AppError, Code, type FieldViolation } from '../infra/app-error.ts';
import {
  type AttemptEntry,
  DELIVERY_STATES,
  type DeliveryEntry,
  type DeliveryFilter,
  type DeliveryLog,
  type DeliveryState,
} from '../infra/delivery/delivery-log.ts';
import type { DestinationStore } from '../infra/delivery/destination-store.ts';

export interface DeliveryAdminDeps {
  log: DeliveryLog;
  /** To tell an unknown destination from one without deliveries. */
  destinations: Pick<DestinationStore, 'get'>;
  /** The clock (ms since the epoch); default the system's. */
  now?: () => number;
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

const PAGE_TOKEN = /^([0-9]{1,19})\.([A-Za-z0-9_-]{11})$/;

/** The digest of a listing's filters, so a page token is only taken with the filters it was made for. */
function filterDigest(filter: DeliveryFilter): string {
  const key = JSON.stringify([
    filter.destinationId ?? null,
    filter.state ?? null,
    filter.userKey ?? null,
    filter.sinceMs ?? null,
    filter.untilMs ?? null,
  ]);
  return createHash('sha256').update(key).digest('base64url').slice(0, 11);
}

function pageToken(filter: DeliveryFilter, last: bigint): string {
  return Buffer.from(`${last}.${filterDigest(filter)}`).toString('base64url');
}

function timeOf(t: Timestamp | undefined): number | undefined {
  return t === undefined ? undefined : timestampDate(t).getTime();
}

function notFound(field: string, what: string, id: string): AppError {
  return new AppError(Code.NOT_FOUND, `no ${what} with id ${JSON.stringify(id)}`, {
    fieldViolations: [{ field, description: `no such ${what}` }],
  });
}

function invalid(violations: FieldViolation[]): AppError {
  return new AppError(
    Code.INVALID_ARGUMENT,
    violations.map((v) => `${v.field}: ${v.description}`).join('; '),
    { fieldViolations: violations },
  );
}

export function deliveryAdmin(deps: DeliveryAdminDeps) {
  const now = deps.now ?? Date.now;
  const requireId = (id: string) => {
    if (id === '') throw AppError.invalidField('id', 'is required');
  };
  const requireDestination = async (field: string, id: string) => {
    if (!(await deps.destinations.get(id))) throw notFound(field, 'destination', id);
  };
  return {
    async listDeliveries(request: ListDeliveriesRequest) {
      const violations: FieldViolation[] = [];
      let state: DeliveryState | undefined;
      if (request.state !== '') {
        if ((DELIVERY_STATES as readonly string[]).includes(request.state))
          state = request.state as DeliveryState;
        else violations.push({ field: 'state', description: `must be one of ${DELIVERY_STATES.join(', ')}` });
      }
      const sinceMs = timeOf(request.since);
      const untilMs = timeOf(request.until);
      if (sinceMs !== undefined && untilMs !== undefined && untilMs <= sinceMs)
        violations.push({ field: 'until', description: 'must be after since' });
      const limit = request.pageSize ?? DEFAULT_PAGE_SIZE;
      if (limit < 1 || limit > MAX_PAGE_SIZE)
        violations.push({ field: 'page_size', description: `must be 1 to ${MAX_PAGE_SIZE}` });
      const filter: DeliveryFilter = {
        ...(request.destinationId === '' ? {} : { destinationId: request.destinationId }),
        ...(state ? { state } : {}),
        ...(request.userId === '' ? {} : { userKey: request.userId }),
        ...(sinceMs === undefined ? {} : { sinceMs }),
        ...(untilMs === undefined ? {} : { untilMs }),
      };
      let after: bigint | undefined;
      if (request.pageToken !== '') {
        const match = PAGE_TOKEN.exec(Buffer.from(request.pageToken, 'base64url').toString('latin1'));
        if (!match) violations.push({ field: 'page_token', description: 'is not a token this server made' });
        else if (match[2] !== filterDigest(filter))
          violations.push({ field: 'page_token', description: 'was made for other filters' });
        else after = BigInt(match[1]!);
      }
      if (violations.length > 0) throw invalid(violations);
      if (filter.destinationId !== undefined)
        await requireDestination('destination_id', filter.destinationId);
      const page = await deps.log.list(filter, limit, after);
      return {
        deliveries: page.entries.map(deliveryMessage),
        nextPageToken: page.last === undefined ? '' : pageToken(filter, page.last),
      };
    },

    async listAttempts(request: ListAttemptsRequest) {
      requireId(request.id);
      if (!(await deps.log.get(request.id))) throw notFound('id', 'delivery', request.id);
      return { attempts: (await deps.log.attempts(request.id)).map(attemptMessage) };
    },

    async redeliver(request: RedeliverRequest) {
      requireId(request.id);
      const result = await deps.log.redeliver(request.id, now());
      if (!result) throw notFound('id', 'delivery', request.id);
      if (!result.changed)
        throw new AppError(
          Code.FAILED_PRECONDITION,
          `delivery ${request.id} is ${result.entry.state === 'pending' ? 'pending: it will be attempted' : 'not kept with its body'}`,
          { fieldViolations: [{ field: 'id', description: `is ${result.entry.state}` }] },
        );
      return { delivery: deliveryMessage(result.entry) };
    },

    async recover(request: RecoverRequest) {
      const violations: FieldViolation[] = [];
      if (request.id === '') violations.push({ field: 'id', description: 'is required' });
      const sinceMs = timeOf(request.since);
      if (sinceMs === undefined) violations.push({ field: 'since', description: 'is required' });
      else if (sinceMs > now()) violations.push({ field: 'since', description: 'must not be in the future' });
      if (violations.length > 0) throw invalid(violations);
      await requireDestination('id', request.id);
      return { recovered: await deps.log.recover(request.id, sinceMs!, now()) };
    },
  };
}

export function deliveryMessage(e: DeliveryEntry): MessageInitShape<typeof DeliverySchema> {
  return {
    id: e.id,
    destinationId: e.destinationId,
    state: e.state,
    userId: e.userKey,
    eventId: e.eventId,
    eventType: e.eventType,
    occurredAt: timestampFromMs(e.occurredAtMs),
    attempts: e.attempts,
    ...(e.nextAttemptAtMs === undefined ? {} : { nextAttemptAt: timestampFromMs(e.nextAttemptAtMs) }),
    ...(e.lastStatus === undefined ? {} : { lastStatus: e.lastStatus }),
    lastError: e.lastError ?? '',
    createdAt: timestampFromMs(e.createdAtMs),
    ...(e.finishedAtMs === undefined ? {} : { finishedAt: timestampFromMs(e.finishedAtMs) }),
  };
}

function attemptMessage(a: AttemptEntry): MessageInitShape<typeof DeliveryAttemptSchema> {
  return {
    attempt: a.attempt,
    attemptedAt: timestampFromMs(a.atMs),
    outcome: a.outcome,
    ...(a.status === undefined ? {} : { status: a.status }),
    latencyMs: a.latencyMs,
    error: a.error ?? '',
  };
}
