/**
 * One webhook delivery attempt: a signed JSON POST through safe-http.ts, answered as an outcome
 * the sender acts on (docs/webhooks.md, "Outcomes"):
 *   delivered  2xx
 *   retry      timeouts, connection and DNS errors, 5xx, 408, 425, 429 (with the Retry-After)
 *   dead       3xx (redirects are not followed), other 4xx, an address refused by the SSRF rules
 *   gone       410: the receiver asks for the destination to be disabled
 * The error text names the status or the network failure and, for a response, the start of its
 * body; it never holds a secret, a signature or the URL's path and query (which often carry tokens).
 */
import type { BreakerSignal } from '../../domain/circuit-breaker.ts';
import { parseRetryAfter } from '../../domain/retry-schedule.ts';
import { createSafeHttp, type NetworkFailure, type SafeHttp, type SafeHttpOptions } from './safe-http.ts';
import { signWebhook } from './webhook-signature.ts';

export interface WebhookClientOptions extends SafeHttpOptions {
  /** Tally's version, sent as `User-Agent: Tally-Webhooks/<version>`. */
  version: string;
  /** The clock, for the signature's timestamp and Retry-After dates (default: the system's). */
  now?: () => Date;
}

export interface WebhookAttempt {
  url: string;
  /** The destination's secrets: the current one first, then up to two being rotated out. */
  secrets: readonly string[];
  /** The message id (`webhook-id`): the same on every attempt of one message. */
  id: string;
  /** The JSON body, exactly as signed and sent. */
  body: string;
  allowPlainHttp?: boolean;
  /**
   * The destination's static headers (names lower-case); `content-type`, `user-agent` and the
   * signature's headers are Tally's and cannot be replaced by them.
   */
  headers?: Readonly<Record<string, string>>;
  /** Ends the attempt early (shutdown, the destination's timeout); answered as `retry`. */
  signal?: AbortSignal;
}

interface Measured {
  /** From the call to the end of the response (or the failure), ms. */
  latencyMs: number;
  /** What went wrong, for the delivery log; never holds secrets. */
  error?: string;
}

export type DeliveryOutcome =
  | ({ kind: 'delivered'; status: number } & Measured)
  | ({
      kind: 'retry';
      /** The response's status; absent when no response came. */
      status?: number;
      failure?: NetworkFailure;
      /** The receiver's Retry-After, ms from now. */
      retryAfterMs?: number;
    } & Measured)
  | ({ kind: 'dead'; status?: number; refused?: boolean } & Measured)
  | ({ kind: 'gone'; status: 410 } & Measured);

export interface WebhookClient {
  deliver(attempt: WebhookAttempt): Promise<DeliveryOutcome>;
  close(): Promise<void>;
}

/** Response bytes quoted in an outcome's error text. */
const QUOTED_BYTES = 200;

const RETRYABLE_STATUS = new Set([408, 425, 429]);

/** The outcome of a response status. */
export function outcomeOfStatus(status: number): DeliveryOutcome['kind'] {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 410) return 'gone';
  if (status >= 500 || RETRYABLE_STATUS.has(status)) return 'retry';
  return 'dead';
}

/**
 * What an outcome tells the destination's circuit breaker: a response the receiver chose
 * (2xx, 3xx, 4xx) shows it is up; 5xx, 429 and network failures count against it; timeouts
 * also count as consecutive timeouts.
 */
export function breakerSignalOf(outcome: DeliveryOutcome): BreakerSignal {
  if (outcome.kind === 'delivered') return 'success';
  if (outcome.kind === 'retry') return outcome.failure === 'timeout' ? 'timeout' : 'failure';
  if (outcome.kind === 'dead') return outcome.refused ? 'failure' : 'success';
  return 'failure';
}

function quote(body: Buffer, truncated: boolean): string {
  if (body.length === 0) return '';
  const text = body.subarray(0, QUOTED_BYTES).toString('utf8').replace(/\s+/g, ' ').trim();
  return `: ${JSON.stringify(text + (truncated || body.length > QUOTED_BYTES ? '…' : ''))}`;
}

export function createWebhookClient(options: WebhookClientOptions): WebhookClient {
  const now = options.now ?? (() => new Date());
  const http: SafeHttp = createSafeHttp(options);
  const userAgent = `Tally-Webhooks/${options.version}`;
  return {
    async deliver(attempt: WebhookAttempt): Promise<DeliveryOutcome> {
      const signed = signWebhook({
        secrets: attempt.secrets,
        id: attempt.id,
        timestamp: now(),
        body: attempt.body,
      });
      const result = await http.send({
        url: attempt.url,
        method: 'POST',
        headers: {
          ...attempt.headers,
          'content-type': 'application/json',
          'user-agent': userAgent,
          ...signed,
        },
        body: attempt.body,
        allowPlainHttp: attempt.allowPlainHttp ?? false,
        ...(attempt.signal ? { signal: attempt.signal } : {}),
      });
      const { latencyMs } = result;
      if (result.kind === 'refused')
        return { kind: 'dead', refused: true, latencyMs, error: `refused: ${result.reason}` };
      if (result.kind === 'failed')
        return {
          kind: 'retry',
          failure: result.failure,
          latencyMs,
          error: `${result.failure}: ${result.message}`,
        };
      const { status } = result;
      const kind = outcomeOfStatus(status);
      if (kind === 'delivered') return { kind, status, latencyMs };
      const error = `HTTP ${status}${quote(result.body, result.truncated)}`;
      if (kind === 'gone') return { kind, status: 410, latencyMs, error };
      if (kind === 'dead')
        return {
          kind,
          status,
          latencyMs,
          error: status >= 300 && status < 400 ? `HTTP ${status}: redirects are not followed` : error,
        };
      const retryAfterHeader = result.headers['retry-after'];
      const retryAfterMs = parseRetryAfter(
        Array.isArray(retryAfterHeader) ? retryAfterHeader[0] : retryAfterHeader,
        now().getTime(),
      );
      return { kind, status, latencyMs, error, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
    },
    close: () => http.close(),
  };
}
