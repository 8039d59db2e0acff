/**
 * The rate limits and quotas of the request path (docs/security.md, "Rate limits"), on the rate
 * limiter port (infra/limits/), wrapped in its failure policy:
 *
 * - `ingest`: events written per minute per credential (an API key, a JWT's subject), counted
 *   per event (a batch of 500 costs 500); a key's `ingestEventsPerMinute` overrides the default;
 * - `read`: reads per minute per credential (GetCounters, GetReport, TopTargets, GetUniques, a WebSocket
 *   subscription); a key's `readsPerMinute` overrides the default;
 * - `ip`: requests per minute per client address, when configured (also with access control off);
 * - `monthly`: a key's events per calendar month (UTC), when the key has a quota.
 *
 * An anonymous caller (access control off) has no credential bucket; its address's, when
 * configured, still applies. Checks run in that order — address, credential, quota — and stop at
 * the first refusal; units an earlier check took are not given back when a later one refuses.
 * A refusal is RESOURCE_EXHAUSTED with RetryInfo (none when waiting cannot help), a QuotaFailure
 * naming the limit, and ErrorInfo metadata carrying the HTTP `RateLimit` and `RateLimit-Policy`
 * values, which the gateway turns into the 429's header fields.
 */
import type { Principal } from '../domain/api-keys.ts';
import { type Cidr, clientAddress, inRanges } from '../domain/client-address.ts';
import { isIpAddress } from '../domain/event-rules.ts';
import {
  type RateLimitHeaderInput,
  rateLimitHeaders,
  retryAfterSeconds,
} from '../domain/rate-limit-headers.ts';
import { AppError, Code, Reason } from '../infra/app-error.ts';
import type { CallContext } from '../infra/grpc/grpc-service.ts';
import { IN_PROCESS_PEER } from '../infra/grpc/in-process-client.ts';
import type {
  Decision,
  QuotaCounter,
  QuotaDecision,
  RateLimiter,
  RateLimitPolicy,
} from '../infra/limits/rate-limiter.ts';

/** The window of every rate limit: limits are configured per minute. */
export const LIMIT_PERIOD_MS = 60_000;

/**
 * Metadata a gateway adds to a call carrying several clients' requests (its coalesced
 * publishes): how many requests the call carries, for the per-address limit; `0` on the reads it
 * makes for the stream's subscriptions, which it charged when each was made (a subscription is
 * one read, however often its counters are read). Believed only from a trusted hop, as
 * `x-forwarded-for` is.
 */
export const REQUESTS_METADATA = 'tally-requests';

export interface RequestLimitsOptions {
  /** The limiter, through its failure policy (`failurePolicy`). */
  limiter: RateLimiter;
  /** The quota counter, through its failure policy (`quotaFailurePolicy`). */
  quotas: QuotaCounter;
  /** Events per minute per credential, unless its key says otherwise. */
  ingestPerMin: number;
  /** Reads per minute per credential, unless its key says otherwise. */
  readPerMin: number;
  /** Requests per minute per client address; undefined: no limit per address. */
  ipPerMin?: number;
  /** Peers whose `X-Forwarded-For` (HTTP) or `x-forwarded-for` metadata (gRPC) is believed. */
  trustedProxies: readonly Cidr[];
}

/** Who a request is, for its limits. */
export interface Caller {
  /** Absent or anonymous: no credential bucket. */
  principal?: Principal;
  /** The client's address; empty or absent: no address bucket. */
  address?: string;
}

export interface RequestLimits {
  /** Whether a limit per client address is configured. */
  readonly perAddress: boolean;
  /**
   * Charges a write of `events` events made in `requests` client requests (1 but for a gateway's
   * coalesced call); rejects with RESOURCE_EXHAUSTED when a limit or the quota refuses.
   */
  ingest(caller: Caller, events: number, requests?: number): Promise<void>;
  /** Charges one read; rejects with RESOURCE_EXHAUSTED when a limit refuses. */
  read(caller: Caller): Promise<void>;
  /** The client's address of a gRPC call: the peer, or what a trusted peer forwarded. */
  callAddress(context: CallContext): string;
  /**
   * How many client requests a gRPC call carries: 1, or what a trusted peer says (0: a gateway's
   * read for subscriptions it already charged).
   */
  callRequests(context: CallContext): number;
  /** The client's address of an HTTP request from `socketAddress` with these `X-Forwarded-For` values. */
  httpAddress(socketAddress: string, forwardedFor: string | string[] | undefined): string;
  close(): Promise<void>;
}

export function createRequestLimits(options: RequestLimitsOptions): RequestLimits {
  const { limiter, quotas } = options;
  const trusted = (address: string) => inRanges(address, options.trustedProxies);
  const policies = new Map<string, RateLimitPolicy>();
  const policy = (name: string, limit: number): RateLimitPolicy => {
    const id = `${name}:${limit}`;
    let p = policies.get(id);
    if (!p) {
      p = { name, limit, periodMs: LIMIT_PERIOD_MS };
      policies.set(id, p);
    }
    return p;
  };
  const ipPolicy = options.ipPerMin === undefined ? undefined : policy('ip', options.ipPerMin);

  /** Runs the checks in order; throws for the first refusal. */
  const run = async (
    checks: readonly { key: string; policy: RateLimitPolicy; cost: number; subject: string; unit: string }[],
  ): Promise<Decision[]> => {
    const decisions: Decision[] = [];
    for (const c of checks) {
      const decision = await limiter.check(c.key, c.policy, c.cost);
      decisions.push(decision);
      if (!decision.allowed) throw rateLimited(decision, decisions, c.cost, c.subject, c.unit);
    }
    return decisions;
  };

  return {
    perAddress: ipPolicy !== undefined,
    async ingest(caller, events, requests = 1) {
      const checks = [];
      if (ipPolicy && caller.address)
        checks.push({
          key: caller.address,
          policy: ipPolicy,
          cost: requests,
          subject: `client_ip:${caller.address}`,
          unit: 'requests',
        });
      const who = credentialBucket(caller.principal);
      if (who)
        checks.push({
          key: who.key,
          policy: policy('ingest', caller.principal!.limits?.ingestEventsPerMinute ?? options.ingestPerMin),
          cost: events,
          subject: who.subject,
          unit: 'events',
        });
      const decisions = await run(checks);
      const quota = caller.principal?.monthlyQuota;
      if (who && quota !== undefined) {
        const decision = await quotas.consume(who.key, { name: 'monthly', limit: quota }, events);
        if (!decision.allowed) throw quotaExceeded(decision, decisions, who.subject);
      }
    },
    async read(caller) {
      const checks = [];
      if (ipPolicy && caller.address)
        checks.push({
          key: caller.address,
          policy: ipPolicy,
          cost: 1,
          subject: `client_ip:${caller.address}`,
          unit: 'requests',
        });
      const who = credentialBucket(caller.principal);
      if (who)
        checks.push({
          key: who.key,
          policy: policy('read', caller.principal!.limits?.readsPerMinute ?? options.readPerMin),
          cost: 1,
          subject: who.subject,
          unit: 'reads',
        });
      await run(checks);
    },
    callAddress: (context) => callAddress(context, trusted),
    callRequests(context) {
      const value = context.metadata.get(REQUESTS_METADATA)[0];
      if (value === undefined) return 1;
      if (context.peer !== IN_PROCESS_PEER && !trusted(peerAddress(context.peer))) return 1;
      const n = Number(value);
      return Number.isSafeInteger(n) && n >= 0 ? n : 1;
    },
    httpAddress(socketAddress, forwardedFor) {
      const peer = socketAddress.replace(/^::ffff:(?=\d+\.)/, '');
      const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
      return clientAddress(peer, header, trusted);
    },
    async close() {
      await limiter.close();
      await quotas.close();
    },
  };
}

/** The bucket of a credential: a key's display id, a token's subject; none for anonymous. */
function credentialBucket(principal: Principal | undefined): { key: string; subject: string } | undefined {
  if (!principal || principal.kind === 'anonymous') return undefined;
  return principal.kind === 'key'
    ? { key: `key:${principal.id}`, subject: `api_key:${principal.id}` }
    : { key: `sub:${principal.id}`, subject: 'token_subject' };
}

/**
 * The client's address of a gRPC call: the peer's, or the `x-forwarded-for` metadata of a gateway
 * — that of this very process (`tally all`), or a peer `trusted` says is a proxy — read as the
 * gateway reads `X-Forwarded-For` (domain/client-address.ts). From any other peer the metadata is
 * ignored: a client cannot pass for another address. '' when the peer has no address (a socket
 * path).
 */
export function callAddress(context: CallContext, trusted: (address: string) => boolean): string {
  const peer = peerAddress(context.peer);
  const forwarded = context.metadata.get('x-forwarded-for').map(String).join(',');
  if (context.peer === IN_PROCESS_PEER) {
    // The gateway of this very process: it worked the address out and forwards one.
    const first = forwarded.split(',')[0]?.trim() ?? '';
    return isIpAddress(first) ? first : peer;
  }
  return clientAddress(peer, forwarded, trusted);
}

/** `ipv4:10.0.0.1:5000`, `10.0.0.1:5000`, `[::1]:5000` → the address; '' when none. */
function peerAddress(peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, '');
  const bracketed = /^\[([^\]]+)\]:\d+$/.exec(bare);
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(bare);
  const ip = (bracketed ? bracketed[1]! : (v4?.[1] ?? '')).replace(/^::ffff:(?=\d+\.)/, '');
  return isIpAddress(ip) ? ip : '';
}

/** The header inputs of the decisions so far. */
function headerInputs(decisions: readonly Decision[]): RateLimitHeaderInput[] {
  return decisions.map((d) => ({ ...d, policy: d.policy }));
}

/** The ErrorInfo metadata carrying the RateLimit fields. */
function headerMetadata(decisions: readonly Decision[]): Record<string, string> {
  const fields = rateLimitHeaders(headerInputs(decisions));
  const metadata: Record<string, string> = {};
  if (fields.RateLimit) metadata.ratelimit = fields.RateLimit;
  if (fields['RateLimit-Policy']) metadata.ratelimit_policy = fields['RateLimit-Policy'];
  return metadata;
}

/** RESOURCE_EXHAUSTED for a refused rate limit check. */
function rateLimited(
  decision: Decision,
  decisions: readonly Decision[],
  cost: number,
  subject: string,
  unit: string,
): AppError {
  const { policy } = decision;
  const limit = `${policy.limit} ${unit} per minute`;
  const metadata = {
    ...headerMetadata(decisions),
    limit: policy.name,
    remaining: String(decision.remaining),
  };
  const quotaViolations = [{ subject, description: `${policy.name}: ${limit}` }];
  if (decision.reason === 'unavailable')
    return new AppError(Code.RESOURCE_EXHAUSTED, 'rate limits cannot be checked now; retry later', {
      reason: Reason.LIMITS_UNAVAILABLE,
      retryAfterMs: decision.retryAfterMs,
      metadata: { limit: policy.name },
    });
  if (decision.reason === 'cost-exceeds-burst')
    return new AppError(
      Code.RESOURCE_EXHAUSTED,
      `this call costs ${cost} ${unit}, more than the ${policy.name} limit of ${limit} allows at once: send fewer per call`,
      { reason: Reason.COST_EXCEEDS_LIMIT, retryable: false, metadata, quotaViolations },
    );
  return new AppError(
    Code.RESOURCE_EXHAUSTED,
    `rate limit exceeded: ${policy.name}, ${limit}; retry after ${retryAfterSeconds(decision.retryAfterMs)} s`,
    { reason: Reason.RATE_LIMITED, retryAfterMs: decision.retryAfterMs, metadata, quotaViolations },
  );
}

/** RESOURCE_EXHAUSTED for a refused monthly quota. */
function quotaExceeded(decision: QuotaDecision, decisions: readonly Decision[], subject: string): AppError {
  if (decision.reason === 'unavailable')
    return new AppError(Code.RESOURCE_EXHAUSTED, 'quotas cannot be checked now; retry later', {
      reason: Reason.LIMITS_UNAVAILABLE,
      retryAfterMs: decision.retryAfterMs,
      metadata: { limit: decision.quota.name },
    });
  return new AppError(
    Code.RESOURCE_EXHAUSTED,
    `monthly event quota exceeded: ${decision.quota.limit} events per month (UTC), ${decision.used} used; it starts again next month`,
    {
      reason: Reason.QUOTA_EXCEEDED,
      retryAfterMs: decision.retryAfterMs,
      metadata: {
        ...headerMetadata(decisions),
        limit: decision.quota.name,
        remaining: String(decision.remaining),
      },
      quotaViolations: [{ subject, description: `monthly: ${decision.quota.limit} events per month` }],
    },
  );
}
