/**
 * A rate limiter that takes units from shared buckets (Redis) in slices, and spends them in the
 * process: a key checked hundreds of times a second costs a script call per slice rather than one
 * per request (docs/performance.md, "Access control").
 *
 * A check the process holds enough units for is admitted at once, taking them from its lease. One
 * it does not takes the shortfall and, when the bucket has them, up to a slice more
 * (`share` of the policy's burst, at least the check's cost) in one script call; only the shared
 * bucket refuses, so a refusal means the whole limit is spent, across every process. A lease is
 * spent within about `holdMs` or what is left of it is given back to the bucket, and everything
 * held is given back on close. One take per (policy, key) is in flight at a time: checks that
 * arrive meanwhile wait for it, then spend from it or take again.
 *
 * What this changes against a script call per check (docs/security.md, "Rate limits"): nothing is
 * ever admitted that the shared bucket did not give, so no key passes its rate; units a process
 * holds are not available to another until spent or given back, so a key whose traffic moves
 * between gateways may be refused up to a slice early for up to `holdMs`; and a give-back lands
 * on the bucket as it is then, so one that arrives after the bucket was full again may forgive up
 * to a slice of what was taken since. With the default share, 1 % of the burst, a key hammered
 * through two gateways is admitted within 1 % of its limit (rate-limits.contract.ts).
 */
import { burstOf } from '../../domain/gcra.ts';
import {
  assertCheckable,
  type Decision,
  type RateLimiter,
  type RateLimitPolicy,
  type SharedBuckets,
} from './rate-limiter.ts';

export interface LeaseOptions {
  /** Share of a policy's burst a take asks for beyond what the check needs (default 0.01). */
  share?: number;
  /** How long units taken may be held unspent before what is left is given back (ms, default 1,000). */
  holdMs?: number;
  /** Now, in ms (tests). */
  now?: () => number;
}

const DEFAULT_SHARE = 0.01;
const DEFAULT_HOLD_MS = 1_000;

/** Units one process holds of one (policy, key)'s bucket. */
interface Lease {
  key: string;
  policy: RateLimitPolicy;
  units: number;
  /** What the shared bucket held beyond this lease at the last take. */
  sharedRemaining: number;
  /** When the shared bucket is full again, as of the last take (ms, local clock). */
  resetAtMs: number;
  takenAtMs: number;
  /** The take in flight, which other checks of the key wait for. */
  pending?: Promise<unknown>;
}

export function leasedLimiter(buckets: SharedBuckets, options: LeaseOptions = {}): RateLimiter {
  const share = options.share ?? DEFAULT_SHARE;
  if (!(share >= 0 && share <= 1)) throw new RangeError(`lease share must be within 0..1, not ${share}`);
  const holdMs = options.holdMs ?? DEFAULT_HOLD_MS;
  const now = options.now ?? Date.now;
  const leases = new Map<string, Lease>();

  const giveBack = (lease: Lease): Promise<void> => {
    const units = lease.units;
    lease.units = 0;
    // A failed give-back only leaves the units taken: the bucket refills them at its rate.
    return units > 0 ? buckets.giveBack(lease.key, lease.policy, units).catch(() => {}) : Promise.resolve();
  };
  const sweep = () => {
    const at = now();
    for (const [id, lease] of leases)
      if (!lease.pending && at - lease.takenAtMs >= holdMs) {
        leases.delete(id);
        void giveBack(lease);
      }
  };
  const sweeper = setInterval(sweep, holdMs);
  sweeper.unref();

  /** An admission from the lease: what the shared bucket and the lease hold together. */
  const spent = (lease: Lease, policy: RateLimitPolicy): Decision => ({
    allowed: true,
    remaining: lease.sharedRemaining + lease.units,
    resetMs: Math.max(0, lease.resetAtMs - now()),
    retryAfterMs: 0,
    policy,
  });

  return {
    description: `${buckets.description}, units taken in slices of ${share * 100} % of a limit`,
    async check(key, policy, cost) {
      assertCheckable(policy, cost);
      const id = `${policy.name}\0${key}`;
      // A read of the state, and a cost no bucket holds, go to the shared bucket as they are.
      if (cost === 0 || cost > burstOf(policy)) {
        const { decision } = await buckets.take(key, policy, cost, cost);
        const held = leases.get(id)?.units ?? 0;
        return { ...decision, remaining: decision.remaining + held };
      }
      for (;;) {
        let lease = leases.get(id);
        if (lease && lease.units >= cost) {
          lease.units -= cost;
          return spent(lease, policy);
        }
        if (lease?.pending) {
          await lease.pending.catch(() => {});
          continue;
        }
        if (!lease) {
          lease = { key, policy, units: 0, sharedRemaining: 0, resetAtMs: 0, takenAtMs: now() };
          leases.set(id, lease);
        }
        const least = cost - lease.units;
        const most = Math.max(least, Math.floor(burstOf(policy) * share));
        const take = buckets.take(key, policy, least, most);
        lease.pending = take;
        let taken: Awaited<typeof take>;
        try {
          taken = await take;
        } finally {
          lease.pending = undefined;
        }
        const { decision } = taken;
        if (!decision.allowed) return { ...decision, remaining: decision.remaining + lease.units };
        lease.policy = policy;
        lease.units += taken.taken - cost;
        lease.sharedRemaining = decision.remaining;
        lease.resetAtMs = now() + decision.resetMs;
        lease.takenAtMs = now();
        return spent(lease, policy);
      }
    },
    async close() {
      clearInterval(sweeper);
      const held = [...leases.values()];
      leases.clear();
      await Promise.all(held.map(giveBack));
      await buckets.close();
    },
  };
}

/** A rate limiter on shared buckets that takes each check's cost from the bucket itself: a script call per check. */
export function checkEach(buckets: SharedBuckets): RateLimiter {
  return {
    description: buckets.description,
    async check(key, policy, cost) {
      return (await buckets.take(key, policy, cost, cost)).decision;
    },
    close: () => buckets.close(),
  };
}
