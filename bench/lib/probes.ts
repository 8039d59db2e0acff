/**
 * Visibility probes: events of a target of their own, published through ingest's gRPC Publish
 * at a steady rate while the load runs; from the moment the call is acknowledged, the harness
 * polls where each sink makes it readable — the target's counts hash in Redis (what
 * GetCounters reads), its row in `event_summary` (what GetReport reads) and its row in `event` —
 * and records how long each took. Polls are batched: one Redis pipeline per tick, one query per
 * table per tick.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { IngestService } from '../../services/gen/tally/v1/ingest_pb.js';
import { QueryService } from '../../services/gen/tally/v1/query_pb.js';
import { createGrpcClient } from '../../services/infra/grpc/grpc-service.ts';

export const SINKS = ['counter', 'aggregator', 'persister'] as const;
export type Sink = (typeof SINKS)[number];

export interface ProbeOptions {
  ingestAddr: string;
  queryAddr: string;
  redis: Redis;
  pg: pg.Pool;
  redisPrefix: string;
  runId: string;
  redisPollMs: number;
  pgPollMs: number;
}

interface Probe {
  n: number;
  target: string;
  countsKey: string;
  ackedAt: number;
  /** ms from acknowledgement to visibility, per sink, once seen. */
  seen: Partial<Record<Sink, number>>;
}

export interface ProbeStats {
  sent: number;
  /** Latencies (ms) per sink of the probes seen there. */
  latencies: Record<Sink, number[]>;
  /** Probes not seen in a sink before the wait ended. */
  unseen: Record<Sink, number>;
  failed: number;
}

/**
 * The key of a target's counts hash: `<prefix>:{<tag>}:n`, the tag being the first 22
 * characters of the base64url SHA-256 of the target (redis-counter-store.ts).
 */
export function countsKey(prefix: string, target: string): string {
  return `${prefix}:{${targetTag(target)}}:n`;
}

/** The hash tag of a target's keys: the first 22 characters of the base64url SHA-256 of the target. */
export function targetTag(target: string): string {
  return createHash('sha256').update(target).digest('base64url').slice(0, 22);
}

const ingestClient = (address: string) =>
  createGrpcClient(IngestService, address, { defaultTimeoutMs: 30_000 });

export class VisibilityProbes {
  readonly #o: ProbeOptions;
  readonly #ingest: ReturnType<typeof ingestClient>;
  #n = 0;
  #pending: Probe[] = [];
  #done: Probe[] = [];
  #sent = 0;
  #failed = 0;
  #publishTimer: NodeJS.Timeout | undefined;
  #redisTimer: NodeJS.Timeout | undefined;
  #pgTimer: NodeJS.Timeout | undefined;
  #redisBusy = false;
  #pgBusy = false;
  /** Bumped by stop(): a probe acknowledged after its round ended is not counted in the next. */
  #round = 0;

  constructor(options: ProbeOptions) {
    this.#o = options;
    this.#ingest = ingestClient(options.ingestAddr);
  }

  /**
   * Publishes one probe and waits until GetCounters shows it, the Redis key this harness polls
   * holds it, and its rows are in `event_summary` and `event`: proves the key scheme before any
   * figure depends on it, and that every sink is consuming.
   */
  async verify(timeoutMs = 60_000): Promise<void> {
    const target = `bench-probe/${this.#o.runId}/verify`;
    const id = `${this.#o.runId}-probe-verify`;
    await this.#ingest.publish({ event: { id, type: 'probe', target, userId: 'probe-verify' } });
    const query = createGrpcClient(QueryService, this.#o.queryAddr, { defaultTimeoutMs: 10_000 });
    const deadline = Date.now() + timeoutMs;
    const until = async (what: string, probe: () => Promise<boolean>) => {
      while (!(await probe())) {
        if (Date.now() > deadline) throw new Error(`probe ${target} never showed in ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await until('GetCounters', async () =>
        (await query.getCounters({ target })).counts.some((c) => c.type === 'probe' && c.count === 1n),
      );
      await until('event_summary', async () => {
        const r = await this.#o.pg.query('SELECT 1 FROM event_summary WHERE target = $1', [target]);
        return r.rows.length > 0;
      });
      await until('event', async () => {
        const r = await this.#o.pg.query('SELECT 1 FROM event WHERE id = $1', [id]);
        return r.rows.length > 0;
      });
    } finally {
      query.close();
    }
    const direct = await this.#o.redis.hget(countsKey(this.#o.redisPrefix, target), 'probe');
    if (direct !== '1')
      throw new Error('the counter store key scheme changed: update countsKey() in bench/lib/probes.ts');
  }

  /** Starts publishing `perSecond` probes and polling for them. */
  start(perSecond: number): void {
    this.#publishTimer = setInterval(() => void this.#publish(), Math.max(1, 1000 / perSecond));
    this.#redisTimer = setInterval(() => void this.#pollRedis(), this.#o.redisPollMs);
    this.#pgTimer = setInterval(() => void this.#pollPg(), this.#o.pgPollMs);
  }

  /** Stops publishing, waits up to `waitMs` for the probes in flight, and returns the figures of this round. */
  async stop(waitMs: number): Promise<ProbeStats> {
    clearInterval(this.#publishTimer);
    // Probes still being published belong to this round: let their calls finish.
    await new Promise((r) => setTimeout(r, 200));
    const deadline = Date.now() + waitMs;
    while (this.#pending.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    clearInterval(this.#redisTimer);
    clearInterval(this.#pgTimer);
    const all = [...this.#done, ...this.#pending];
    const stats: ProbeStats = {
      sent: this.#sent,
      failed: this.#failed,
      latencies: { counter: [], aggregator: [], persister: [] },
      unseen: { counter: 0, aggregator: 0, persister: 0 },
    };
    for (const probe of all)
      for (const sink of SINKS) {
        const ms = probe.seen[sink];
        if (ms === undefined) stats.unseen[sink]++;
        else stats.latencies[sink].push(ms);
      }
    this.#round++;
    this.#pending = [];
    this.#done = [];
    this.#sent = 0;
    this.#failed = 0;
    return stats;
  }

  close(): void {
    this.#ingest.close();
  }

  async #publish(): Promise<void> {
    const round = this.#round;
    const n = this.#n++;
    const target = `bench-probe/${this.#o.runId}/${n}`;
    this.#sent++;
    try {
      await this.#ingest.publish({
        event: { id: `${this.#o.runId}-probe-${n}`, type: 'probe', target, userId: `probe-${n}` },
      });
    } catch {
      if (round === this.#round) this.#failed++;
      return;
    }
    if (round !== this.#round) return;
    this.#pending.push({
      n,
      target,
      countsKey: countsKey(this.#o.redisPrefix, target),
      ackedAt: performance.now(),
      seen: {},
    });
  }

  #settle(): void {
    const still: Probe[] = [];
    for (const p of this.#pending) (SINKS.every((s) => p.seen[s] !== undefined) ? this.#done : still).push(p);
    this.#pending = still;
  }

  async #pollRedis(): Promise<void> {
    const waiting = this.#pending.filter((p) => p.seen.counter === undefined);
    if (this.#redisBusy || waiting.length === 0) return;
    this.#redisBusy = true;
    try {
      const pipeline = this.#o.redis.pipeline();
      for (const p of waiting) pipeline.hget(p.countsKey, 'probe');
      const replies = (await pipeline.exec()) ?? [];
      const now = performance.now();
      replies.forEach(([error, value], i) => {
        if (!error && value !== null) waiting[i]!.seen.counter = now - waiting[i]!.ackedAt;
      });
      this.#settle();
    } catch {
      // a failed poll is retried on the next tick
    } finally {
      this.#redisBusy = false;
    }
  }

  async #pollPg(): Promise<void> {
    const summary = this.#pending.filter((p) => p.seen.aggregator === undefined);
    const raw = this.#pending.filter((p) => p.seen.persister === undefined);
    if (this.#pgBusy || (summary.length === 0 && raw.length === 0)) return;
    this.#pgBusy = true;
    try {
      const [inSummary, inEvent] = await Promise.all([
        summary.length === 0
          ? []
          : this.#o.pg
              .query<{ target: string }>(
                `SELECT DISTINCT target FROM event_summary WHERE target = ANY($1::text[]) AND type = 'probe'`,
                [summary.map((p) => p.target)],
              )
              .then((r) => r.rows),
        raw.length === 0
          ? []
          : this.#o.pg
              .query<{ target: string }>(`SELECT target FROM event WHERE id = ANY($1::text[])`, [
                raw.map((p) => `${this.#o.runId}-probe-${p.n}`),
              ])
              .then((r) => r.rows),
      ]);
      const now = performance.now();
      const a = new Set(inSummary.map((r) => r.target));
      const e = new Set(inEvent.map((r) => r.target));
      for (const p of summary) if (a.has(p.target)) p.seen.aggregator = now - p.ackedAt;
      for (const p of raw) if (e.has(p.target)) p.seen.persister = now - p.ackedAt;
      this.#settle();
    } catch {
      // retried on the next tick
    } finally {
      this.#pgBusy = false;
    }
  }
}
