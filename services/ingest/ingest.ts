/**
 * The ingest role: tally.v1.IngestService over gRPC. Validates every event,
 * appends it to the `events` topic keyed by user (else target), and answers OK
 * only once Kafka acknowledged it.
 */
import { type Cidr, inRanges } from '../domain/client-address.ts';
import type { EventLimits } from '../domain/event-rules.ts';
import { IngestService } from '../gen/tally/v1/ingest_pb.js';
import { AppError, Code } from '../infra/app-error.ts';
import type { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import type { CallContext } from '../infra/grpc/grpc-service.ts';
import type { Stoppable } from '../infra/lifecycle.ts';
import type { EventLog } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';
import { ingestMetrics, produceMetrics, type Registry } from '../infra/metrics.ts';
import { recordTraceHeaders, type Tracer } from '../infra/tracing.ts';
import { BatchingProducer } from '../pipeline/batching-producer.ts';
import { callAddress } from '../pipeline/request-limits.ts';
import { ackedStream } from './acked-stream.ts';
import { type AdmittedEvent, EventAdmission } from './event-admission.ts';

export interface IngestConfig {
  /** The topic events are written to; run-roles.ts ensures it exists before any role starts. */
  eventsTopic: string;
  /**
   * Most events in one PublishBatch (and per chunk of a stream, per PublishStreamAcked message);
   * a PublishStreamAcked stream holds at most {@link ACKED_STREAM_WINDOW} times as many unanswered.
   */
  maxBatchEvents: number;
  limits: EventLimits;
  lingerMs: number;
  maxProduceBatchEvents: number;
  /** Longest a call waits for the log's acknowledgement before UNAVAILABLE. */
  produceTimeoutMs: number;
  /**
   * Peers whose `x-forwarded-for` metadata gives the client's address (TALLY_TRUSTED_PROXIES), as
   * for the rate limits; the gateway of this process is believed too. From any other peer an
   * event's `ip` is the peer's address.
   */
  trustedProxies: readonly Cidr[];
}

export interface IngestDeps {
  log: EventLog;
  grpc: GrpcRegistry;
  logger: Logger;
  metrics: Registry;
  /**
   * Traces each write to the log, and gives each record its request's trace context
   * (`traceparent` header) for the consumers to continue; none when tracing is off.
   */
  tracer?: Tracer;
  /** Epoch ms; injectable for tests. */
  now?: () => number;
  /**
   * The hook for rate limits and quotas: called once per call (per chunk of a stream, per
   * message of an acked stream) after access control and validation, with the call (its
   * principal, its peer and forwarded address) and its cost in events, before anything is
   * written; a rejection (RESOURCE_EXHAUSTED) refuses the call. None: no limits.
   */
  limits?: (context: CallContext, cost: number) => Promise<void>;
}

/** A PublishStreamAcked stream reads at most this many batches' worth of events ahead of its answers. */
export const ACKED_STREAM_WINDOW = 4;

export async function start(deps: IngestDeps, config: IngestConfig): Promise<Stoppable> {
  const producer = new BatchingProducer(deps.log.producer(), {
    topic: config.eventsTopic,
    lingerMs: config.lingerMs,
    maxBatchRecords: config.maxProduceBatchEvents,
    timeoutMs: config.produceTimeoutMs,
    metrics: produceMetrics(deps.metrics),
    tracer: deps.tracer,
  });
  // Each call's records carry its span (the gRPC server span): one headers object per call.
  const traceHeaders = deps.tracer ? () => recordTraceHeaders() : () => undefined;
  const ingested = ingestMetrics(deps.metrics).events;
  const acceptedBy = {
    publish: ingested.labels({ method: 'Publish' }),
    publishBatch: ingested.labels({ method: 'PublishBatch' }),
    publishStream: ingested.labels({ method: 'PublishStream' }),
    publishStreamAcked: ingested.labels({ method: 'PublishStreamAcked' }),
  };
  const admission = new EventAdmission(config.limits, deps.now ?? Date.now, (context) =>
    callAddress(context, (address) => inRanges(address, config.trustedProxies)),
  );

  const charge = deps.limits ?? (async () => {});
  deps.grpc.register(IngestService, {
    async publish(request, context) {
      const record = admission.admit(request.event, undefined, context, traceHeaders());
      await charge(context, 1);
      await producer.append([record.record]);
      acceptedBy.publish.inc();
      return { id: record.id };
    },

    async publishBatch(request, context) {
      admission.checkBatchSize(request.events.length, config.maxBatchEvents);
      const headers = traceHeaders();
      const admitted = request.events.map((event, i) => admission.admit(event, i, context, headers));
      await charge(context, admitted.length);
      await producer.append(admitted.map((a) => a.record));
      acceptedBy.publishBatch.inc(admitted.length);
      return { ids: admitted.map((a) => a.id) };
    },

    async publishStream(requests, context) {
      const headers = traceHeaders();
      let index = 0;
      let chunk: AdmittedEvent[] = [];
      const inFlight: Promise<number>[] = [];
      const send = () => {
        const records = chunk.map((a) => a.record);
        inFlight.push(
          charge(context, records.length)
            .then(() => producer.append(records))
            .then(() => records.length),
        );
        chunk = [];
      };
      let streamError: unknown;
      try {
        for await (const request of requests) {
          chunk.push(admission.admit(request.event, index, context, headers));
          index++;
          if (chunk.length >= config.maxBatchEvents) {
            send();
            // Bound what a fast stream can hold unacknowledged.
            if (inFlight.length >= 4) await inFlight[inFlight.length - 4];
          }
        }
        if (chunk.length > 0) send();
      } catch (error) {
        streamError = error;
        if (chunk.length > 0) send(); // the events before the bad one are accepted, as documented
      }
      // Whatever was handed to the producer is acknowledged (or failed) before the call answers.
      const results = await Promise.allSettled(inFlight);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      const accepted = results.reduce((n, r) => n + (r.status === 'fulfilled' ? r.value : 0), 0);
      acceptedBy.publishStream.inc(accepted);
      if (streamError instanceof AppError && streamError.code === Code.INVALID_ARGUMENT)
        throw new AppError(
          Code.INVALID_ARGUMENT,
          `${streamError.message} (the ${accepted} events before it were accepted)`,
          {
            fieldViolations: streamError.fieldViolations,
            reason: streamError.reason,
            metadata: { ...streamError.metadata, accepted: String(accepted) },
          },
        );
      if (streamError !== undefined) throw streamError;
      return { accepted: BigInt(accepted) };
    },

    publishStreamAcked(requests, context) {
      return ackedStream(requests, context, {
        admission,
        append: (records) => charge(context, records.length).then(() => producer.append(records)),
        maxMessageEvents: config.maxBatchEvents,
        maxUnansweredEvents: ACKED_STREAM_WINDOW * config.maxBatchEvents,
        headers: traceHeaders(),
        onAcked: (events) => acceptedBy.publishStreamAcked.inc(events),
      });
    },
  });

  deps.logger.info('ingest ready', { topic: config.eventsTopic });
  return {
    name: 'ingest',
    async stop() {
      await producer.flush();
    },
  };
}
