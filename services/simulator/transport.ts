/**
 * How the simulator sends a request of events to Tally: REST (fetch, keep-alive) or gRPC
 * (IngestService over one HTTP/2 channel). A send never rejects: every failure becomes an
 * outcome with a code (the HTTP status, the gRPC code name, or a network error code).
 */
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { IngestService } from '../gen/tally/v1/ingest_pb.js';
import { AppError, codeName } from '../infra/app-error.ts';
import { createGrpcClient } from '../infra/grpc/grpc-service.ts';
import type { SimEvent } from './sim-event.ts';
import type { SimulateTarget } from './simulate-args.ts';

export type SendOutcome = { ok: true } | { ok: false; code: string; message: string };

export interface Transport {
  /** e.g. `REST POST /v1/events:batch` or `gRPC PublishBatch`. */
  readonly description: string;
  /** Sends `events` (all stamped `occurred_at` = `occurredAtMs`); resolves, never rejects. */
  send(events: readonly SimEvent[], occurredAtMs: number): Promise<SendOutcome>;
  /** Cancels what is in flight (where the protocol allows) and releases connections. */
  close(): void;
}

export interface TransportOptions {
  /** 1: one event per call (Publish); more: PublishBatch, even for a shorter last request. */
  batchSize: number;
  requestTimeoutMs: number;
}

export function createTransport(target: SimulateTarget, options: TransportOptions): Transport {
  return target.protocol === 'rest'
    ? createRestTransport(target.url, options)
    : createGrpcTransport(target.address, options);
}

/** The event in the protobuf JSON mapping (what `POST /v1/events` takes). */
export function eventJson(event: SimEvent, occurredAtMs: number): Record<string, unknown> {
  return {
    id: event.id,
    type: event.type,
    target: event.target,
    userId: event.userId,
    ...(event.ip === '' ? {} : { ip: event.ip }),
    ...(event.value === undefined ? {} : { value: event.value }),
    occurredAt: new Date(occurredAtMs).toISOString(),
    attributes: event.attributes,
  };
}

function createRestTransport(origin: string, options: TransportOptions): Transport {
  const single = options.batchSize === 1;
  const url = `${origin}${single ? '/v1/events' : '/v1/events:batch'}`;
  const closing = new AbortController();
  return {
    description: `REST POST ${single ? '/v1/events' : '/v1/events:batch'}`,
    async send(events, occurredAtMs) {
      const body = single
        ? eventJson(events[0]!, occurredAtMs)
        : { events: events.map((e) => eventJson(e, occurredAtMs)) };
      let status: number;
      let text: string;
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.any([closing.signal, AbortSignal.timeout(options.requestTimeoutMs)]),
        });
        status = response.status;
        text = await response.text();
      } catch (error) {
        return networkFailure(error);
      }
      if (status !== 200) return { ok: false, code: String(status), message: restErrorMessage(text) };
      let answer: unknown;
      try {
        answer = JSON.parse(text);
      } catch {
        return {
          ok: false,
          code: 'bad-response',
          message: `200 with a body that is not JSON: ${text.slice(0, 120)}`,
        };
      }
      const ids = single ? [(answer as { id?: unknown }).id] : (answer as { ids?: unknown }).ids;
      return checkIds(ids, events);
    },
    close: () => closing.abort(),
  };
}

function createGrpcTransport(address: string, options: TransportOptions): Transport {
  const single = options.batchSize === 1;
  const client = createGrpcClient(IngestService, address, { defaultTimeoutMs: options.requestTimeoutMs });
  const init = (event: SimEvent, occurredAtMs: number) => ({
    id: event.id,
    type: event.type,
    target: event.target,
    userId: event.userId,
    ip: event.ip,
    value: event.value,
    occurredAt: timestampFromMs(occurredAtMs),
    attributes: event.attributes,
  });
  return {
    description: `gRPC ${single ? 'Publish' : 'PublishBatch'}`,
    async send(events, occurredAtMs) {
      try {
        if (single) {
          const answer = await client.publish({ event: init(events[0]!, occurredAtMs) });
          return checkIds([answer.id], events);
        }
        const answer = await client.publishBatch({ events: events.map((e) => init(e, occurredAtMs)) });
        return checkIds(answer.ids, events);
      } catch (error) {
        if (error instanceof AppError)
          return { ok: false, code: codeName(error.code), message: error.message };
        return networkFailure(error);
      }
    },
    close: () => client.close(),
  };
}

/** An OK answer must name exactly the ids sent, in order: anything else is not an acknowledgement. */
function checkIds(ids: unknown, events: readonly SimEvent[]): SendOutcome {
  if (!Array.isArray(ids) || ids.length !== events.length)
    return {
      ok: false,
      code: 'bad-response',
      message: `OK answer with ${Array.isArray(ids) ? ids.length : 'no'} ids for ${events.length} events`,
    };
  for (let i = 0; i < events.length; i++)
    if (ids[i] !== events[i]!.id)
      return {
        ok: false,
        code: 'bad-response',
        message: `OK answer names id ${JSON.stringify(ids[i])} where ${events[i]!.id} was sent`,
      };
  return { ok: true };
}

/** `{"error":{"message"}}` from Tally, else the start of the body. */
function restErrorMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } };
    if (typeof parsed.error?.message === 'string') return parsed.error.message;
  } catch {}
  return text.slice(0, 200) || '(empty body)';
}

function networkFailure(error: unknown): SendOutcome {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError')
      return { ok: false, code: 'timeout', message: 'no answer before the deadline' };
    if (error.name === 'AbortError')
      return { ok: false, code: 'cancelled', message: 'cancelled at shutdown' };
    const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
    if (typeof cause?.code === 'string')
      return {
        ok: false,
        code: cause.code,
        message: typeof cause.message === 'string' ? cause.message : error.message,
      };
    return { ok: false, code: 'network', message: error.message };
  }
  return { ok: false, code: 'network', message: String(error) };
}
