/**
 * How the simulator sends a request of events to Tally: REST (fetch, keep-alive), gRPC
 * (IngestService over one HTTP/2 channel) or one PublishStreamAcked stream (a request is one
 * message, answered when every event of it is answered). A send never rejects: every failure
 * becomes an outcome with a code (the HTTP status, the gRPC code name, or a network error code).
 */
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { IngestService, type PublishStreamAckedResponse } from '../gen/tally/v1/ingest_pb.js';
import { AppError, codeName } from '../infra/app-error.ts';
import { createGrpcClient, type ServiceClient } from '../infra/grpc/grpc-service.ts';
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
  /**
   * 1: one event per call (Publish); more: PublishBatch, even for a shorter last request. A stream
   * sends a request as one message whatever its size.
   */
  batchSize: number;
  requestTimeoutMs: number;
}

export function createTransport(target: SimulateTarget, options: TransportOptions): Transport {
  if (target.protocol === 'rest') return createRestTransport(target.url, options);
  if (target.protocol === 'grpc-stream') return createGrpcStreamTransport(target.address, options);
  return createGrpcTransport(target.address, options);
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

const grpcEvent = (event: SimEvent, occurredAtMs: number) => ({
  id: event.id,
  type: event.type,
  target: event.target,
  userId: event.userId,
  ip: event.ip,
  value: event.value,
  occurredAt: timestampFromMs(occurredAtMs),
  attributes: event.attributes,
});

function createGrpcTransport(address: string, options: TransportOptions): Transport {
  const single = options.batchSize === 1;
  const client = createGrpcClient(IngestService, address, { defaultTimeoutMs: options.requestTimeoutMs });
  const init = grpcEvent;
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

/** A request sent on the stream, waiting for an answer for each of its sequence numbers. */
interface StreamRequest {
  firstSeq: number;
  lastSeq: number;
  unanswered: number;
  refused: string | undefined;
  failed: string | undefined;
  settle: (outcome: SendOutcome) => void;
}

/**
 * One PublishStreamAcked stream, opened at the first send and again after it ends: each request
 * is a message; it succeeds when all its events are acked, fails INVALID_ARGUMENT when one is
 * refused, UNAVAILABLE when some were not acknowledged (the simulator may send it again, same ids),
 * and with the stream's status when the stream ends before answering it.
 */
function createGrpcStreamTransport(address: string, options: TransportOptions): Transport {
  // No deadline: the stream lives as long as the run; each request has its own timer.
  const client: ServiceClient<typeof IngestService.method> = createGrpcClient(IngestService, address);
  let stream: { call: ReturnType<typeof client.publishStreamAcked>; nextSeq: number } | undefined;
  let pending: StreamRequest[] = [];

  const answer = (first: number, last: number, apply: (r: StreamRequest) => void) => {
    for (const r of pending) {
      const overlap = Math.min(last, r.lastSeq) - Math.max(first, r.firstSeq) + 1;
      if (overlap <= 0) continue;
      r.unanswered -= overlap;
      apply(r);
      if (r.unanswered === 0) {
        r.settle(
          r.refused !== undefined
            ? { ok: false, code: 'INVALID_ARGUMENT', message: r.refused }
            : r.failed !== undefined
              ? { ok: false, code: 'UNAVAILABLE', message: r.failed }
              : { ok: true },
        );
      }
    }
    pending = pending.filter((r) => r.unanswered > 0);
  };
  const read = async (call: ReturnType<typeof client.publishStreamAcked>) => {
    let end: SendOutcome;
    try {
      for await (const { result } of call as AsyncIterable<PublishStreamAckedResponse>) {
        if (result.case === 'acked')
          answer(Number(result.value.firstSeq), Number(result.value.lastSeq), () => {});
        else if (result.case === 'failed') {
          const message = result.value.message;
          answer(Number(result.value.firstSeq), Number(result.value.lastSeq), (r) => {
            r.failed ??= message;
          });
        } else if (result.case === 'refused') {
          const message = result.value.message;
          answer(Number(result.value.seq), Number(result.value.seq), (r) => {
            r.refused ??= message;
          });
        }
      }
      end = { ok: false, code: 'bad-response', message: 'the stream ended before answering every event' };
    } catch (error) {
      end =
        error instanceof AppError
          ? { ok: false, code: codeName(error.code), message: error.message }
          : networkFailure(error);
    }
    // Whatever the stream did not answer fails with its end; the next send opens a new stream.
    if (stream?.call === call) stream = undefined;
    const unanswered = pending;
    pending = [];
    for (const r of unanswered) r.settle(end);
  };

  return {
    description: 'gRPC PublishStreamAcked',
    send(events, occurredAtMs) {
      if (!stream) {
        const call = client.publishStreamAcked();
        stream = { call, nextSeq: 1 };
        void read(call);
      }
      const firstSeq = stream.nextSeq;
      stream.nextSeq += events.length;
      return new Promise<SendOutcome>((resolve) => {
        const timer = setTimeout(() => {
          pending = pending.filter((r) => r !== request);
          resolve({ ok: false, code: 'timeout', message: 'no answer before the deadline' });
        }, options.requestTimeoutMs);
        const request: StreamRequest = {
          firstSeq,
          lastSeq: firstSeq + events.length - 1,
          unanswered: events.length,
          refused: undefined,
          failed: undefined,
          settle: (outcome) => {
            clearTimeout(timer);
            resolve(outcome);
          },
        };
        pending.push(request);
        // Flow control is the server's: a full buffer here only delays this message.
        stream!.call.write({ events: events.map((e) => grpcEvent(e, occurredAtMs)) });
      });
    },
    close: () => {
      stream?.call.cancel();
      client.close();
    },
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
