/**
 * tally.v1.EventLogService, served by the query role (the gRPC role with the SQL port): the stored
 * events of one user or one target, a page at a time, by keyset cursors (event-cursor.ts) over the
 * (occurred_at, id) order (docs/events-api.md). Pages are read from the read replicas when
 * configured; a long-poll (`wait_seconds`) reads the primary, which is where the signal it waits
 * for (infra/events/event-appends.ts) comes from. Who may list what is the domain's rule
 * (domain/event-access.ts); scope read is checked by access control from the proto's
 * `required_scope`.
 */
import { createHash } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { Timestamp, TimestampSchema } from '@bufbuild/protobuf/wkt';
import { type EventSubject, eventSubjectFor } from '../domain/event-access.ts';
import {
  EventLogService,
  type ListEventsRequest,
  type ListEventsResponseSchema,
} from '../gen/tally/v1/event_log_pb.js';
import type { EventSchema } from '../gen/tally/v1/event_pb.js';
import { AppError, Code, Reason } from '../infra/app-error.ts';
import type { AppendWaits } from '../infra/events/event-appends.ts';
import {
  type EventPosition,
  estimateEvents,
  type StoredEvent,
  scanEvents,
} from '../infra/events/sql-event-history.ts';
import type { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import type { CallContext } from '../infra/grpc/grpc-service.ts';
import type { Logger } from '../infra/logger.ts';
import type { SqlDatabase, SqlExecutor } from '../infra/sql/sql-database.ts';
import { decodeCursor, encodeCursor, type ListingFilter, type PageCursor } from './event-cursor.ts';

/** Events a page holds unless the request says otherwise, and at most. */
export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1_000;
/**
 * How long after the lateness bound an accepted event may still be on its way to the table (the
 * persister's lag, a redelivery): a range is closed once its `to` is older than both.
 */
export const EVENT_LOG_SETTLE_MS = 5 * 60_000;
/** The longest long-poll, seconds. */
export const MAX_WAIT_SECONDS = 30;
/** Timestamps PostgreSQL and RFC 3339 both hold: years 0001 to 9999, in seconds. */
const MIN_SECONDS = -62_135_596_800n;
const MAX_SECONDS = 253_402_300_799n;

export interface EventLogConfig {
  /** How late an event may be stored after its time (TALLY_MAX_LATENESS_MS): ingest refuses older ones. */
  maxLatenessMs: number;
  /**
   * Beyond the lateness bound, how long an accepted event may take to be stored (the persister's
   * lag): a range whose `to` is older than both is closed, and its pages are final.
   */
  settleMs: number;
  maxUserIdChars: number;
  maxTargetChars: number;
  maxTypeChars: number;
}

export interface EventLogServiceDeps {
  sql: SqlDatabase;
  /** The signal of stored events; without it a long-poll answers at once. */
  appends?: AppendWaits;
  grpc: GrpcRegistry;
  logger: Logger;
  /** Charges a read to the caller's rate limits (each listing, a long-poll once). */
  limits?: (context: CallContext) => Promise<void>;
  /** The clock deciding which ranges are closed (default Date.now). */
  now?: () => number;
}

/** A page as answered, before the not-modified check. */
interface Page {
  events: StoredEvent[];
  nextPageToken: string;
  prevPageToken: string;
  etag: string;
}

export function registerEventLogService(deps: EventLogServiceDeps, config: EventLogConfig): void {
  const charge = deps.limits ?? (async () => {});
  const now = deps.now ?? Date.now;
  deps.grpc.register(EventLogService, {
    async listEvents(request, context) {
      const decision = eventSubjectFor(context.principal, request);
      if (!decision.ok) {
        if (!decision.denied) throw AppError.invalidField(decision.field, decision.reason);
        throw new AppError(Code.PERMISSION_DENIED, `${decision.field}: ${decision.reason}`, {
          reason: Reason.OTHER_USER,
          fieldViolations: [{ field: decision.field, description: decision.reason }],
        });
      }
      const filter = listingFilter(request, decision.subject, config);
      const pageSize = request.pageSize === 0 ? DEFAULT_PAGE : request.pageSize;
      if (pageSize > MAX_PAGE)
        throw AppError.invalidField('page_size', `must be at most ${MAX_PAGE} (0: ${DEFAULT_PAGE})`);
      if (request.waitSeconds > MAX_WAIT_SECONDS)
        throw AppError.invalidField('wait_seconds', `must be at most ${MAX_WAIT_SECONDS}`);
      if (request.knownEtag.length > 100)
        throw AppError.invalidField('known_etag', 'is not an etag this server gave');
      const cursor = request.pageToken === '' ? undefined : decodeCursor(request.pageToken, filter);
      await charge(context);

      const closed =
        filter.toUs !== undefined &&
        filter.toUs / 1000n + BigInt(config.maxLatenessMs + config.settleMs) < BigInt(now());
      const read = (sql: SqlExecutor) => readPage(sql, filter, cursor, pageSize, closed);
      const waitMs = closed || !deps.appends ? 0 : request.waitSeconds * 1000;
      let page: Page;
      if (waitMs === 0) page = await read(deps.sql.reader);
      else {
        // Subscribed before the first read, so that no event stored after it goes unnoticed.
        const subscription = deps.appends!.subscribe(filter.subject);
        try {
          page = await read(deps.sql);
          const baseline = request.knownEtag === '' ? page.etag : request.knownEtag;
          const stop = AbortSignal.any([
            AbortSignal.timeout(waitMs),
            ...(context.signal ? [context.signal] : []),
            ...(context.draining ? [context.draining] : []),
          ]);
          while (page.etag === baseline && (await subscription.next(stop))) page = await read(deps.sql);
        } finally {
          subscription.close();
        }
      }
      const estimatedTotal = request.estimate
        ? BigInt(await estimateEvents(deps.sql.reader, filter))
        : undefined;
      const notModified = request.knownEtag !== '' && request.knownEtag === page.etag;
      const answer: MessageInitShape<typeof ListEventsResponseSchema> = {
        events: notModified ? [] : page.events.map(eventMessage),
        nextPageToken: page.nextPageToken,
        prevPageToken: page.prevPageToken,
        etag: page.etag,
        closed,
        notModified,
        waitedSeconds: waitMs / 1000,
      };
      if (estimatedTotal !== undefined) answer.estimatedTotal = estimatedTotal;
      return answer;
    },
  });
}

/** The listing's filter, every field checked (INVALID_ARGUMENT naming the field at fault). */
function listingFilter(
  request: ListEventsRequest,
  subject: EventSubject,
  config: EventLogConfig,
): ListingFilter {
  if (subject.kind === 'user' && subject.id.length > config.maxUserIdChars)
    throw AppError.invalidField('user', `must be at most ${config.maxUserIdChars} characters`);
  if (subject.kind === 'target' && subject.id.length > config.maxTargetChars)
    throw AppError.invalidField('target', `must be at most ${config.maxTargetChars} characters`);
  if (request.type.length > config.maxTypeChars)
    throw AppError.invalidField('type', `must be at most ${config.maxTypeChars} characters`);
  if (request.order !== '' && request.order !== 'newest' && request.order !== 'oldest')
    throw AppError.invalidField(
      'order',
      `must be "newest" or "oldest", not ${JSON.stringify(request.order)}`,
    );
  const fromUs = request.from && micros('from', request.from);
  const toUs = request.to && micros('to', request.to);
  if (fromUs !== undefined && toUs !== undefined && toUs <= fromUs)
    throw AppError.invalidField('to', 'must be after from');
  return {
    subject,
    ...(request.type === '' ? {} : { type: request.type }),
    ...(fromUs === undefined ? {} : { fromUs }),
    ...(toUs === undefined ? {} : { toUs }),
    order: request.order === 'oldest' ? 'oldest' : 'newest',
  };
}

/** A timestamp in whole microseconds (PostgreSQL's precision: finer digits are dropped). */
function micros(field: string, ts: Timestamp): bigint {
  if (ts.seconds < MIN_SECONDS || ts.seconds > MAX_SECONDS || ts.nanos < 0 || ts.nanos > 999_999_999)
    throw AppError.invalidField(field, 'must be a time between the years 0001 and 9999');
  return ts.seconds * 1_000_000n + BigInt(Math.floor(ts.nanos / 1000));
}

/**
 * One page: the events beyond the cursor, `pageSize` at most, and the tokens around them. Toward
 * the newest end of an open range (`prev` newest first, `next` oldest first) a token is always
 * given, since events may still be stored there; toward the other end, only while more are stored.
 */
async function readPage(
  sql: SqlExecutor,
  filter: ListingFilter,
  cursor: PageCursor | undefined,
  pageSize: number,
  closed: boolean,
): Promise<Page> {
  const newestFirst = filter.order === 'newest';
  const forward = cursor?.toward !== 'prev';
  const rows = await scanEvents(sql, {
    ...filter,
    direction: newestFirst === forward ? 'desc' : 'asc',
    ...(cursor?.at ? { after: cursor.at } : {}),
    limit: pageSize + 1,
  });
  const more = rows.length > pageSize;
  const events = rows.slice(0, pageSize);
  if (!forward) events.reverse();
  const position = (e: StoredEvent | undefined): EventPosition | undefined =>
    e ? { occurredUs: e.occurredUs, id: e.id } : cursor?.at;
  const start = position(events[0]);
  const end = position(events.at(-1));
  const headward = closed ? undefined : newestFirst ? 'prev' : 'next';
  const hasNext = (forward ? more : cursor?.at !== undefined) || headward === 'next';
  const hasPrev = ((forward ? cursor?.at !== undefined : more) || headward === 'prev') && start !== undefined;
  const nextPageToken = hasNext ? encodeCursor(filter, { toward: 'next', ...(end ? { at: end } : {}) }) : '';
  const prevPageToken = hasPrev ? encodeCursor(filter, { toward: 'prev', at: start! }) : '';
  const etag = createHash('sha256')
    .update(JSON.stringify([events.map((e) => e.id), nextPageToken, prevPageToken, closed]))
    .digest('base64url')
    .slice(0, 27);
  return { events, nextPageToken, prevPageToken, etag };
}

/** Microseconds since the epoch as a Timestamp (seconds floored, so nanos stay positive). */
function timestamp(us: bigint): MessageInitShape<typeof TimestampSchema> {
  const seconds = us >= 0n ? us / 1_000_000n : -((-us + 999_999n) / 1_000_000n);
  return { seconds, nanos: Number(us - seconds * 1_000_000n) * 1000 };
}

function eventMessage(e: StoredEvent): MessageInitShape<typeof EventSchema> {
  return {
    id: e.id,
    type: e.type,
    target: e.target,
    userId: e.userId,
    ip: e.ip,
    ...(e.value === null ? {} : { value: e.value }),
    occurredAt: timestamp(e.occurredUs),
    receivedAt: timestamp(e.receivedUs),
    attributes: e.attributes,
  };
}
