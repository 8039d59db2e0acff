/**
 * Single-event publishes from many HTTP requests, sent to ingest as few gRPC calls: while
 * `maxInFlight` calls are out, new events wait, and the next call carries every event waiting
 * (one `PublishBatch`). Under light load each event goes alone, as a `Publish`, at once; under
 * heavy load the batches grow with the load, so the per-call cost of gRPC (in the gateway and in
 * ingest) is paid once for many requests instead of once per request.
 *
 * Each request keeps its own answer: its id, or its own error. A batch is all-or-nothing in
 * ingest (an invalid event refuses the call before anything is written), so when one event is
 * invalid its request gets the error, renamed from `events[i].…` to `event.…` as a lone `Publish`
 * would have said, and the others are sent again. Any other error (the log unreachable, a
 * deadline) is every event's in the call, as it would have been for each alone. An event without
 * an `ip` gets its caller's address, which a lone call would have carried as `x-forwarded-for`.
 */

import type { MessageInitShape } from '@bufbuild/protobuf';
import { type Context, context } from '@opentelemetry/api';
import { isIpAddress } from '../domain/event-rules.ts';
import type { EventSchema } from '../gen/tally/v1/event_pb.js';
import type { IngestService } from '../gen/tally/v1/ingest_pb.js';
import { AppError, Code, Reason } from '../infra/app-error.ts';
import type { CallOptions, ServiceClient } from '../infra/grpc/grpc-service.ts';
import { REQUESTS_METADATA } from '../pipeline/request-limits.ts';

type IngestClient = ServiceClient<(typeof IngestService)['method']>;
type EventInit = MessageInitShape<typeof EventSchema>;

export interface CoalescerOptions {
  /** Calls to ingest out at once; past them, events wait for the next call (default 2). */
  maxInFlight?: number;
  /** Most events in one call: ingest's own per-call bound (TALLY_MAX_BATCH_EVENTS). */
  maxBatchEvents: number;
  /** Most bytes (by the callers' size hints) in one call, under the gRPC message limit. */
  maxBatchBytes: number;
  /**
   * Whether ingest limits requests per client address: then a call carries the events of one
   * address only, named in its `x-forwarded-for`, with the number of requests it carries
   * (`tally-requests`).
   */
  perAddress?: boolean;
}

/** What one publish gives: the event, where it came from, and its deadline. */
export interface PublishCall {
  event: EventInit;
  /** The caller's address (x-forwarded-for). */
  clientIp: string;
  timeoutMs?: number;
  /** About the event's encoded size (its request body's length); unknown: it is sent alone. */
  sizeHint?: number;
  /**
   * The caller's credential and origin as call metadata (`authorization`, `origin`,
   * `tally-surface`): a call carries the events of one credential only, checked by ingest.
   */
  metadata?: Readonly<Record<string, string>>;
}

interface Waiting {
  call: PublishCall;
  /** Events share a call only with events of the same credential and origin. */
  sharedWith: string;
  size: number;
  /** Epoch ms past which the caller no longer waits. */
  deadline: number;
  /** The caller's trace context: the call carrying the event runs in the first one's. */
  context: Context;
  /** Set after a batch refused another event: this one goes alone. */
  alone: boolean;
  /**
   * Set when a rate limit refused a call holding this event and it goes again in a smaller one
   * (as many events as the limit had left); a second refusal is its answer.
   */
  limitRetry: boolean;
  resolve(id: string): void;
  reject(error: unknown): void;
}

export class PublishCoalescer {
  readonly #client: IngestClient;
  readonly #maxInFlight: number;
  readonly #maxBatchEvents: number;
  readonly #maxBatchBytes: number;
  readonly #perAddress: boolean;
  #waiting: Waiting[] = [];
  #inFlight = 0;

  constructor(client: IngestClient, options: CoalescerOptions) {
    this.#client = client;
    this.#maxInFlight = options.maxInFlight ?? 2;
    this.#maxBatchEvents = Math.max(1, options.maxBatchEvents);
    this.#maxBatchBytes = options.maxBatchBytes;
    this.#perAddress = options.perAddress ?? false;
  }

  /** Publishes one event; resolves with its id once the log holds it. */
  publish(call: PublishCall): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.#waiting.push({
        call,
        sharedWith: JSON.stringify([
          call.metadata?.authorization ?? '',
          call.metadata?.origin ?? '',
          this.#perAddress ? call.clientIp : '',
        ]),
        size: call.sizeHint ?? this.#maxBatchBytes,
        deadline: call.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + call.timeoutMs,
        context: context.active(),
        alone: false,
        limitRetry: false,
        resolve,
        reject,
      });
      this.#pump();
    });
  }

  /** Events waiting for a call (for tests and metrics). */
  get waiting(): number {
    return this.#waiting.length;
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#waiting.length > 0) {
      const batch = this.#take();
      if (batch.length === 0) continue;
      this.#inFlight++;
      const sent = context.with(batch[0]!.context, () =>
        batch.length === 1 ? this.#sendOne(batch[0]!) : this.#sendBatch(batch),
      );
      void sent.finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  /** The next call's events, oldest first; drops (and fails) those whose caller stopped waiting. */
  #take(): Waiting[] {
    const now = Date.now();
    const batch: Waiting[] = [];
    let bytes = 0;
    while (this.#waiting.length > 0 && batch.length < this.#maxBatchEvents) {
      const next = this.#waiting[0]!;
      if (next.deadline <= now) {
        this.#waiting.shift();
        next.reject(
          new AppError(Code.DEADLINE_EXCEEDED, 'the event waited past its deadline; nothing was written'),
        );
        continue;
      }
      if (
        batch.length > 0 &&
        (next.alone ||
          batch[0]!.alone ||
          next.sharedWith !== batch[0]!.sharedWith ||
          next.limitRetry !== batch[0]!.limitRetry ||
          bytes + next.size > this.#maxBatchBytes)
      )
        break;
      this.#waiting.shift();
      batch.push(next);
      bytes += next.size;
    }
    return batch;
  }

  #options(batch: readonly Waiting[]): CallOptions {
    const deadline = Math.min(...batch.map((w) => w.deadline));
    const options: CallOptions = { metadata: { ...batch[0]!.call.metadata } };
    if (Number.isFinite(deadline)) options.timeoutMs = Math.max(1, deadline - Date.now());
    if (batch.length === 1 || this.#perAddress)
      options.metadata!['x-forwarded-for'] = batch[0]!.call.clientIp;
    if (batch.length > 1 && this.#perAddress) options.metadata![REQUESTS_METADATA] = String(batch.length);
    return options;
  }

  async #sendOne(waiting: Waiting): Promise<void> {
    try {
      const response = await this.#client.publish({ event: waiting.call.event }, this.#options([waiting]));
      waiting.resolve(response.id);
    } catch (error) {
      waiting.reject(error);
    }
  }

  async #sendBatch(batch: Waiting[]): Promise<void> {
    const events = batch.map(({ call }) =>
      call.event.ip || !isIpAddress(call.clientIp) ? call.event : { ...call.event, ip: call.clientIp },
    );
    try {
      const response = await this.#client.publishBatch({ events }, this.#options(batch));
      batch.forEach((w, i) => {
        w.resolve(response.ids[i] ?? '');
      });
    } catch (error) {
      if (error instanceof AppError && error.reason === Reason.COST_EXCEEDS_LIMIT) {
        // Together, more events than the limit takes at once (a tiny limit): each goes alone,
        // and gets the answer it would have had alone.
        for (const w of batch) w.alone = true;
        this.#waiting.unshift(...batch);
        return;
      }
      const admissible = limitedShare(error, batch);
      if (admissible !== undefined) {
        // A rate limit or quota had fewer units than the call holds: its first `admissible`
        // events go again together, first in line, so that the limit's last units are used; the
        // others get the refusal (each would have had it sent alone, once the units are gone).
        const again = batch.slice(0, admissible);
        for (const w of batch.slice(admissible)) w.reject(error);
        for (const w of again) w.limitRetry = true;
        this.#waiting.unshift(...again);
        return;
      }
      const refused = refusedEvent(error, batch.length);
      if (refused === undefined) {
        for (const w of batch) w.reject(error);
        return;
      }
      // Nothing was written: the refused event's request gets its error, the others go again,
      // first in line, each alone when the refusal named no event.
      const again = refused.index === undefined ? batch : batch.filter((_, i) => i !== refused.index);
      if (refused.index !== undefined) batch[refused.index]!.reject(refused.error);
      for (const w of again) w.alone ||= refused.index === undefined;
      this.#waiting.unshift(...again);
    }
  }
}

/**
 * How many of a refused batch's events to send again after a rate limit's or quota's refusal
 * (ErrorInfo RATE_LIMITED or QUOTA_EXCEEDED, metadata `remaining`): the units left, when some are
 * and fewer than the batch holds; undefined for any other error, and for events already sent
 * again once.
 */
function limitedShare(error: unknown, batch: readonly Waiting[]): number | undefined {
  if (!(error instanceof AppError) || error.code !== Code.RESOURCE_EXHAUSTED) return undefined;
  if (error.reason !== Reason.RATE_LIMITED && error.reason !== Reason.QUOTA_EXCEEDED) return undefined;
  if (batch.some((w) => w.limitRetry)) return undefined;
  const remaining = Number(error.metadata.remaining);
  if (!Number.isSafeInteger(remaining) || remaining < 1 || remaining >= batch.length) return undefined;
  return remaining;
}

/**
 * The event a batch refused as invalid: its index (from the error's structured detail, ErrorInfo
 * reason INVALID_EVENT with metadata `index`) and its error in a lone call's terms; index
 * undefined when the refusal names no one event (then each is sent alone to find out).
 */
function refusedEvent(error: unknown, size: number): { index?: number; error?: AppError } | undefined {
  if (!(error instanceof AppError)) return undefined;
  if (error.code === Code.PERMISSION_DENIED) return permissionRefusal(error, size);
  if (error.code !== Code.INVALID_ARGUMENT) return undefined;
  const index = error.reason === Reason.INVALID_EVENT ? Number(error.metadata.index) : Number.NaN;
  if (!Number.isInteger(index) || index < 0 || index >= size) return {};
  const path = `events[${index}]`;
  const renamed = error.renameFields((field) =>
    field.startsWith(path) ? `event${field.slice(path.length)}` : field,
  );
  return { index, error: renamed };
}

/**
 * An event of a batch its credential may not write (an event type, another user: metadata
 * `index`), in a lone call's terms; undefined for a refusal of the whole call (a scope), which is
 * every event's.
 */
function permissionRefusal(error: AppError, size: number): { index: number; error: AppError } | undefined {
  const index = Number(error.metadata.index ?? Number.NaN);
  if (!Number.isInteger(index) || index < 0 || index >= size) return undefined;
  const path = `events[${index}]`;
  const message = error.message.startsWith(path) ? `event${error.message.slice(path.length)}` : error.message;
  const { index: _, ...metadata } = error.metadata;
  return {
    index,
    error: new AppError(error.code, message, { reason: error.reason, metadata, cause: error }),
  };
}
