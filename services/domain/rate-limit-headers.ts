/**
 * The HTTP header fields that tell a client about its rate limits: `Retry-After` (RFC 9110,
 * section 10.2.3) on a refusal, and `RateLimit-Policy` / `RateLimit` as structured-field lists
 * (RFC 9651) in the form of draft-ietf-httpapi-ratelimit-headers-11 (May 2026):
 *
 *   RateLimit-Policy: "ingest";q=1000;w=60      quota q units per window w seconds
 *   RateLimit: "ingest";r=250;t=15              r units available, effective window t seconds
 *
 * One item per policy that judged the request (a key's, a subject's, an address's), in the
 * order given. `t` is the time until the bucket is full again on an admitted request, and the
 * wait before a retry on a refused one, so that `Retry-After` never names a moment before the
 * end of the effective window (section 6 of the draft). A check that can never be admitted (its
 * cost exceeds the burst) gets no `Retry-After` and no `t`: waiting will not help.
 */

/** What the header fields need of one policy's decision. */
export interface RateLimitHeaderInput {
  allowed: boolean;
  /** Units available now. */
  remaining: number;
  /** Until the bucket is full again (ms). */
  resetMs: number;
  /** When refused: until a retry would be admitted (ms); `Infinity` when it never would. */
  retryAfterMs: number;
  policy: { name: string; limit: number; periodMs: number };
  /**
   * `unavailable`: the limiter could not judge (its backend failed); such a decision gives no
   * RateLimit items, and only its `Retry-After` when refused.
   */
  reason?: string;
}

/** Header name → value (absent names are not to be sent). */
export interface RateLimitHeaderFields {
  'Retry-After'?: string;
  'RateLimit-Policy'?: string;
  RateLimit?: string;
}

/** `Retry-After` in whole seconds for a wait of `ms`, rounded up (at least 1 for any wait). */
export function retryAfterSeconds(ms: number): number {
  return Math.max(0, Math.ceil(ms / 1000));
}

/** The header fields for the decisions of every policy that judged one request. */
export function rateLimitHeaders(decisions: readonly RateLimitHeaderInput[]): RateLimitHeaderFields {
  const policies: string[] = [];
  const limits: string[] = [];
  let retryAfterMs: number | undefined;
  for (const d of decisions) {
    if (!d.allowed && Number.isFinite(d.retryAfterMs))
      retryAfterMs = Math.max(retryAfterMs ?? 0, d.retryAfterMs);
    if (d.reason === 'unavailable') continue;
    const name = sfString(d.policy.name);
    // The window is whole seconds in the draft: a period that is not is given without one.
    const window = d.policy.periodMs % 1000 === 0 ? `;w=${d.policy.periodMs / 1000}` : '';
    policies.push(`${name};q=${d.policy.limit}${window}`);
    const untilMs = d.allowed ? d.resetMs : d.retryAfterMs;
    const effective = Number.isFinite(untilMs) ? `;t=${retryAfterSeconds(untilMs)}` : '';
    limits.push(`${name};r=${Math.max(0, Math.floor(d.remaining))}${effective}`);
  }
  const fields: RateLimitHeaderFields = {};
  if (retryAfterMs !== undefined) fields['Retry-After'] = String(retryAfterSeconds(retryAfterMs));
  if (policies.length > 0) {
    fields['RateLimit-Policy'] = policies.join(', ');
    fields.RateLimit = limits.join(', ');
  }
  return fields;
}

/**
 * A structured-field String (RFC 9651, section 3.3.3): printable ASCII in quotes, with `"` and
 * `\` escaped. Policy names come from configuration; one outside that range is a mistake there.
 */
function sfString(value: string): string {
  if (!/^[\x20-\x7e]*$/.test(value))
    throw new Error(`rate limit policy name must be printable ASCII: ${JSON.stringify(value)}`);
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
