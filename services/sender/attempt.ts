/**
 * One attempt of a delivery to its destination, and what it came to:
 * - a webhook: a signed POST (webhook-client.ts) with the destination's active secrets, static
 *   headers and timeout; `webhook-id` is the record's message id, the same on every attempt;
 * - a Kafka destination: the body appended to its topic keyed by user, on Tally's cluster (the
 *   log port's producer) or another's (a producer of its own per broker list), with the message
 *   id in header `webhook-id`.
 */
import type { BreakerSignal } from '../domain/circuit-breaker.ts';
import { activeSecrets } from '../domain/destinations.ts';
import type { Destination } from '../infra/delivery/destination-store.ts';
import {
  breakerSignalOf,
  type DeliveryOutcome,
  type WebhookClient,
} from '../infra/delivery/webhook-client.ts';
import type { LogProducer } from '../infra/log/event-log.ts';

/** What an attempt came to (a Kafka append has no status). */
export interface AttemptResult {
  kind: DeliveryOutcome['kind'];
  status?: number | undefined;
  latencyMs: number;
  error?: string | undefined;
  /** The receiver's Retry-After, ms from the attempt's end. */
  retryAfterMs?: number | undefined;
  /** What the destination's circuit breaker learns from it. */
  signal: BreakerSignal;
}

/** What is sent: the record's message id, key and body. */
export interface Sendable {
  messageId: string;
  userKey: string;
  body: Uint8Array;
}

export interface AttempterDeps {
  webhooks: WebhookClient;
  /** Tally's own cluster, for Kafka destinations without brokers of their own. */
  producer: LogProducer | undefined;
  /** A producer on another cluster's brokers (kept open by the caller). */
  remoteProducer(brokers: readonly string[]): LogProducer;
  now: () => number;
}

export type Attempter = (
  destination: Destination,
  delivery: Sendable,
  signal?: AbortSignal,
) => Promise<AttemptResult>;

export function createAttempter(deps: AttempterDeps): Attempter {
  const decoder = new TextDecoder();
  return async (destination, delivery, signal) => {
    const endpoint = destination.endpoint;
    if (endpoint.kind === 'kafka') {
      const started = performance.now();
      const producer = endpoint.brokers.length > 0 ? deps.remoteProducer(endpoint.brokers) : deps.producer;
      if (!producer)
        return {
          kind: 'retry',
          latencyMs: 0,
          error: 'no event log in this process for a Kafka destination',
          signal: 'failure',
        };
      try {
        await producer.send(endpoint.topic, [
          { key: delivery.userKey, value: delivery.body, headers: { 'webhook-id': delivery.messageId } },
        ]);
        return { kind: 'delivered', latencyMs: performance.now() - started, signal: 'success' };
      } catch (error) {
        return {
          kind: 'retry',
          latencyMs: performance.now() - started,
          error: `kafka: ${error instanceof Error ? error.message : String(error)}`.slice(0, 500),
          signal: 'failure',
        };
      }
    }
    const timeout = AbortSignal.timeout(endpoint.timeoutMs);
    const outcome = await deps.webhooks.deliver({
      url: endpoint.url,
      allowPlainHttp: endpoint.allowPlainHttp,
      headers: endpoint.headers,
      secrets: activeSecrets(destination.signingSecrets, deps.now()).map((s) => s.secret),
      id: delivery.messageId,
      body: decoder.decode(delivery.body),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    // The destination's own timeout ends the attempt through the signal: a timeout, not a stop.
    const timedOut = outcome.kind === 'retry' && timeout.aborted && !signal?.aborted;
    const result: DeliveryOutcome = timedOut
      ? { ...outcome, failure: 'timeout', error: `timeout: no answer within ${endpoint.timeoutMs} ms` }
      : outcome;
    return {
      kind: result.kind,
      status: 'status' in result ? result.status : undefined,
      latencyMs: result.latencyMs,
      error: result.error,
      retryAfterMs: result.kind === 'retry' ? result.retryAfterMs : undefined,
      signal: breakerSignalOf(result),
    };
  };
}
