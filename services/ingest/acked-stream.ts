/**
 * `PublishStreamAcked`: a bidirectional stream whose events are numbered by their position in it
 * (1, 2, 3… over every request message) and answered by number as the log acknowledges them:
 * `acked` ranges, `refused` events (invalid, never written) and `failed` ranges (not acknowledged
 * in time: the client resends them with the same ids). The contract is in proto/tally/v1/ingest.proto.
 *
 * Flow control: an event counts against `maxUnansweredEvents` from the moment its message is read
 * until its answer is handed to gRPC; while the next message would pass the bound, it is not
 * read, so gRPC's flow control holds the client's writes. A client that does not read its answers
 * is held the same way.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type {
  PublishStreamAckedRequest,
  PublishStreamAckedResponseSchema,
} from '../gen/tally/v1/ingest_pb.js';
import { AppError, Code } from '../infra/app-error.ts';
import type { BidiCallContext } from '../infra/grpc/grpc-service.ts';
import type { LogRecord } from '../infra/log/event-log.ts';
import type { AdmittedEvent, EventAdmission } from './event-admission.ts';

type Answer = MessageInitShape<typeof PublishStreamAckedResponseSchema>;

export interface AckedStreamOptions {
  admission: EventAdmission;
  /** Resolves once the log acknowledged every record (BatchingProducer.append). */
  append: (records: readonly LogRecord[]) => Promise<void>;
  /** Most events in one request message. */
  maxMessageEvents: number;
  /** Most events of one stream read and not yet answered. */
  maxUnansweredEvents: number;
  /** The records' trace headers (one object per stream), when tracing. */
  headers: Readonly<Record<string, string>> | undefined;
  /** Called with the number of events each acknowledgement covers. */
  onAcked: (events: number) => void;
}

interface Queued {
  answer: Answer;
  /** Events this answer settles (released from the bound once it is handed to gRPC). */
  events: number;
}

/** An event read and admitted, waiting for the log. */
interface Numbered extends AdmittedEvent {
  seq: number;
  /** The id was generated here (the client sent none). */
  generated: boolean;
}

/** Serves one `PublishStreamAcked` call: yields its answers; throws the status that ends it. */
export async function* ackedStream(
  requests: AsyncIterable<PublishStreamAckedRequest>,
  context: BidiCallContext,
  options: AckedStreamOptions,
): AsyncGenerator<Answer> {
  const answers = new AnswerQueue();
  const reading = readRequests(requests, context, options, answers);
  reading.then(
    () => answers.close(),
    (error: unknown) => answers.close(error),
  );
  yield* answers.drain();
}

async function readRequests(
  requests: AsyncIterable<PublishStreamAckedRequest>,
  context: BidiCallContext,
  options: AckedStreamOptions,
  answers: AnswerQueue,
): Promise<void> {
  const stop = new Stop([context.signal, context.draining]);
  const inFlight = new Set<Promise<void>>();
  // Not `for await`: leaving that loop would destroy the call, and a draining stream still answers.
  const iterator = requests[Symbol.asyncIterator]();
  let nextSeq = 1;
  let ending: unknown;
  try {
    for (;;) {
      const next = await stop.race(iterator.next());
      if (next === STOPPED || next.done) break;
      const request = next.value;
      const count = request.events.length;
      if (count > options.maxMessageEvents) {
        ending = AppError.invalidField(
          'events',
          `must hold at most ${options.maxMessageEvents} events per message (got ${count}; sequence numbers from ${nextSeq} not used)`,
        );
        break;
      }
      // Not a single event is checked before it fits under the bound.
      await answers.reserve(count, options.maxUnansweredEvents, stop);
      const firstSeq = nextSeq;
      nextSeq += count;
      const admitted: Numbered[] = [];
      const refused: Answer[] = [];
      for (let i = 0; i < count; i++) {
        const event = request.events[i]!;
        const seq = firstSeq + i;
        const generated = event.id === '';
        try {
          admitted.push({
            ...options.admission.admit(event, i, context, options.headers),
            seq,
            generated,
          });
        } catch (error) {
          if (!(error instanceof AppError) || error.code !== Code.INVALID_ARGUMENT) throw error;
          if (request.allOrNothing) {
            ending = new AppError(
              Code.INVALID_ARGUMENT,
              `${error.message} (sequence number ${seq}; no event of its message, ${firstSeq} to ${nextSeq - 1}, was written)`,
              {
                fieldViolations: error.fieldViolations,
                reason: error.reason,
                metadata: { ...error.metadata, seq: String(seq) },
              },
            );
            break;
          }
          refused.push({
            result: {
              case: 'refused',
              value: { seq: BigInt(seq), field: error.field ?? '', message: error.message },
            },
          });
        }
      }
      if (ending !== undefined) break;
      // Refused events count against the bound too, until their answers are handed over.
      for (const answer of refused) answers.push({ answer, events: 1 });
      if (admitted.length === 0) continue;
      if (stop.stopped) {
        // Read while draining, never handed to the log: the client resends them elsewhere.
        answers.pushFailed(
          admitted,
          'the server is draining: not written, send them again to another instance',
        );
        continue;
      }
      const sent = options.append(admitted.map((a) => a.record)).then(
        () => {
          options.onAcked(admitted.length);
          answers.pushAcked(admitted);
        },
        (error: unknown) => answers.pushFailed(admitted, failureMessage(error)),
      );
      inFlight.add(sent);
      void sent.finally(() => inFlight.delete(sent));
    }
  } catch (error) {
    ending = error; // a malformed message, or the call failing under us
  }
  // Every event handed to the log is answered before the stream ends (each append is bounded by
  // the produce timeout).
  await Promise.all(inFlight);
  if (ending !== undefined) throw ending;
  if (context.draining.aborted && !context.signal.aborted)
    throw new AppError(
      Code.UNAVAILABLE,
      `the server is draining: every event it read is answered above (sequence numbers up to ${nextSeq - 1}); send the rest to another instance`,
    );
}

function failureMessage(error: unknown): string {
  if (error instanceof AppError && error.code !== Code.INTERNAL && error.code !== Code.UNKNOWN)
    return error.message;
  return 'the event log did not acknowledge';
}

const STOPPED = Symbol('stopped');

/** The call was cancelled or the server drains: stop reading. */
class Stop {
  readonly #signals: readonly AbortSignal[];

  constructor(signals: readonly AbortSignal[]) {
    this.#signals = signals;
  }

  get stopped(): boolean {
    return this.#signals.some((s) => s.aborted);
  }

  /**
   * `promise`'s value, or STOPPED as soon as a signal aborts. Unlike a `Promise.race` with a
   * pending promise, it leaves nothing behind once settled (a stream may read millions of messages).
   */
  race<T>(promise: Promise<T>): Promise<T | typeof STOPPED> {
    return new Promise((resolve, reject) => {
      if (this.stopped) {
        promise.catch(() => {}); // settles later or never; nobody waits for it any more
        return resolve(STOPPED);
      }
      const onStop = () => {
        promise.catch(() => {});
        resolve(STOPPED);
      };
      for (const s of this.#signals) s.addEventListener('abort', onStop, { once: true });
      const detach = () => {
        for (const s of this.#signals) s.removeEventListener('abort', onStop);
      };
      promise.then(
        (value) => {
          detach();
          resolve(value);
        },
        (error: unknown) => {
          detach();
          reject(error);
        },
      );
    });
  }
}

/**
 * The answers waiting to be handed to gRPC, with the count of events read and not yet answered.
 * Adjacent acknowledged ranges queued meanwhile go out as one answer.
 */
class AnswerQueue {
  #items: Queued[] = [];
  #unanswered = 0;
  #closed = false;
  #error: unknown;
  #wake: (() => void) | undefined;
  #released: (() => void) | undefined;

  /** Waits until `count` more events fit under `max` (or `stop`), then counts them. */
  async reserve(count: number, max: number, stop: Stop): Promise<void> {
    while (this.#unanswered > 0 && this.#unanswered + count > max) {
      const released = new Promise<void>((resolve) => {
        this.#released = resolve;
      });
      if ((await stop.race(released)) === STOPPED) break;
    }
    this.#unanswered += count;
  }

  push(item: Queued): void {
    this.#items.push(item);
    this.#wake?.();
  }

  pushAcked(events: readonly Numbered[]): void {
    for (const run of runs(events)) {
      const generatedIds: Record<string, string> = {};
      for (const e of run) if (e.generated) generatedIds[String(e.seq)] = e.id;
      const first = run[0]!.seq;
      const last = run[run.length - 1]!.seq;
      const tail = this.#items[this.#items.length - 1];
      if (tail?.answer.result?.case === 'acked' && tail.answer.result.value.lastSeq === BigInt(first - 1)) {
        const acked = tail.answer.result.value;
        acked.lastSeq = BigInt(last);
        acked.generatedIds = { ...acked.generatedIds, ...generatedIds };
        tail.events += run.length;
        continue;
      }
      this.push({
        answer: {
          result: {
            case: 'acked',
            value: { firstSeq: BigInt(first), lastSeq: BigInt(last), generatedIds },
          },
        },
        events: run.length,
      });
    }
  }

  pushFailed(events: readonly Numbered[], message: string): void {
    for (const run of runs(events))
      this.push({
        answer: {
          result: {
            case: 'failed',
            value: {
              firstSeq: BigInt(run[0]!.seq),
              lastSeq: BigInt(run[run.length - 1]!.seq),
              message,
            },
          },
        },
        events: run.length,
      });
  }

  close(error?: unknown): void {
    this.#closed = true;
    this.#error = error;
    this.#wake?.();
  }

  /** Yields every answer; an event leaves the count once its answer was taken and written. */
  async *drain(): AsyncGenerator<Answer> {
    for (;;) {
      const item = this.#items.shift();
      if (item) {
        yield item.answer;
        this.#unanswered -= item.events;
        this.#released?.();
        continue;
      }
      if (this.#closed) {
        if (this.#error !== undefined) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}

/** Splits events into runs of consecutive sequence numbers (a refused event breaks a run). */
function runs(events: readonly Numbered[]): Numbered[][] {
  const out: Numbered[][] = [];
  for (const e of events) {
    const run = out[out.length - 1];
    if (run && run[run.length - 1]!.seq === e.seq - 1) run.push(e);
    else out.push([e]);
  }
  return out;
}
