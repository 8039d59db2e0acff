/**
 * Turns an incoming event into a log record: fills server-side fields (id,
 * received_at, ip), applies the rules, and encodes it.
 */
import { eventUserFor } from '../domain/api-keys.ts';
import { type EventLimits, validateEvent } from '../domain/event-rules.ts';
import type { Event } from '../gen/tally/v1/event_pb.js';
import { AppError, Code, Reason } from '../infra/app-error.ts';
import type { CallContext } from '../infra/grpc/grpc-service.ts';
import { uuidv7 } from '../infra/ids.ts';
import type { LogRecord } from '../infra/log/event-log.ts';
import { encodeEvent, msToTimestamp, partitionKey, toEventInput } from '../pipeline/event-codec.ts';

export interface AdmittedEvent {
  id: string;
  record: LogRecord;
}

export class EventAdmission {
  readonly #limits: EventLimits;
  readonly #now: () => number;
  readonly #addressOf: (context: CallContext) => string;
  /** Each call's client address, worked out once for all of its events. */
  readonly #ips = new WeakMap<CallContext, string>();

  /**
   * `addressOf` gives a call's client address, which fills an event's empty `ip`: the gateway's
   * forwarded address only when the gateway is one to believe (request-limits.ts `callAddress`).
   */
  constructor(limits: EventLimits, now: () => number, addressOf: (context: CallContext) => string) {
    this.#limits = limits;
    this.#now = now;
    this.#addressOf = addressOf;
  }

  /**
   * Validates `event` and encodes it into a record with `headers` (its trace context, when
   * tracing); throws INVALID_ARGUMENT naming the field. `index` undefined: the call's one `event`;
   * else the event `events[index]` of a batch or stream, whose error says so in structured form
   * (ErrorInfo reason INVALID_EVENT, metadata `index`), so that no caller parses the field path.
   * The call's principal (access control) decides too: a token's subject fills an empty
   * `user_id` and may not name another user without the admin scope (reason OTHER_USER), and an
   * ingest key held to some event types writes only those (EVENT_TYPE_NOT_ALLOWED); both are
   * PERMISSION_DENIED with metadata `index` in a batch.
   */
  admit(
    event: Event | undefined,
    index: number | undefined,
    context: CallContext,
    headers?: Readonly<Record<string, string>>,
  ): AdmittedEvent {
    const path = index === undefined ? 'event' : `events[${index}]`;
    const info =
      index === undefined ? {} : { reason: Reason.INVALID_EVENT, metadata: { index: String(index) } };
    if (!event) throw AppError.invalidField(path, 'is required', info);
    const principal = context.principal;
    const at: Record<string, string> = index === undefined ? {} : { index: String(index) };
    if (principal) {
      const user = eventUserFor(principal, event.userId);
      if ('error' in user)
        throw new AppError(Code.PERMISSION_DENIED, `${path}.user_id: ${user.error}`, {
          reason: Reason.OTHER_USER,
          metadata: at,
        });
      event.userId = user.userId;
    }
    const now = this.#now();
    const violation = validateEvent(toEventInput(event), this.#limits, now, `${path}.`);
    if (violation) throw AppError.invalidField(violation.field, violation.description, info);
    if (principal?.allowedTypes !== undefined && !principal.allowedTypes.includes(event.type))
      throw new AppError(
        Code.PERMISSION_DENIED,
        `${path}.type: API key ${principal.id} may not write events of this type`,
        { reason: Reason.EVENT_TYPE_NOT_ALLOWED, metadata: at },
      );
    if (event.id === '') event.id = uuidv7(now);
    if (event.ip === '') {
      let ip = this.#ips.get(context);
      if (ip === undefined) {
        ip = this.#addressOf(context);
        this.#ips.set(context, ip);
      }
      event.ip = ip;
    }
    event.receivedAt = msToTimestamp(now);
    const key = partitionKey(event);
    const value = encodeEvent(event);
    return { id: event.id, record: headers ? { key, value, headers } : { key, value } };
  }

  checkBatchSize(count: number, max: number): void {
    if (count > max)
      throw AppError.invalidField('events', `must hold at most ${max} events per call (got ${count})`);
  }
}
