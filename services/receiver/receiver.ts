/**
 * A local webhook receiver (`tally receiver`, docs/webhooks.md): verifies Standard Webhooks
 * signatures, injects failures and latency, and checks what a sender promises — each message
 * once by `webhook-id` (duplicates counted), and per-user order.
 *
 * Order: a body is a JSON object naming its user in `user_id` (or `userId`) and its place in the
 * user's order in `sequence` (or `seq`), a number, or else by its event time in `occurred_at`
 * (`occurredAt`, `timestamp`, `time`: an ISO date or ms since the epoch). A delivery accepted
 * with a place lower than the highest accepted before for its user is an order violation (equal
 * is not: events may share a time). Only accepted deliveries count: one answered with the
 * injected failure status will come again. A body without a user or a place is counted, not
 * ordered.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook } from '../infra/delivery/webhook-signature.ts';

export interface ReceiverOptions {
  port: number;
  host: string;
  /** Accepted secrets; none: signatures are not checked. */
  secrets: readonly string[];
  /** Share of verified deliveries answered with `failStatus`, 0 to 1. */
  failRate: number;
  failStatus: number;
  /** Wait before answering each delivery, ms. */
  latencyMs: number;
  /** Seeds the PRNG choosing the failures. */
  seed: number;
  toleranceSeconds: number;
  /** Called for each delivery (accepted, refused or failed). */
  onDelivery?: (delivery: DeliveryRecord) => void;
  /** The clock (signature timestamps); default the system's. */
  now?: () => Date;
}

export interface DeliveryRecord {
  status: number;
  webhookId?: string;
  user?: string;
  /** The body's place in its user's order (sequence or event time in ms). */
  place?: number;
  duplicate: boolean;
  /** The higher place accepted before, when this one came out of order. */
  outOfOrderAfter?: number;
  /** Why it was refused (401, 400). */
  reason?: string;
}

export interface OrderViolation {
  user: string;
  webhookId: string;
  previous: number;
  got: number;
}

export interface ReceiverStats {
  /** Every POST, whatever its fate. */
  requests: number;
  /** Verified and answered 2xx. */
  received: number;
  /** Distinct webhook-ids among those. */
  unique: number;
  duplicates: number;
  orderViolations: number;
  /** Refused: a bad or missing signature (401). */
  rejected: number;
  /** Refused: not a JSON body (400). */
  invalid: number;
  /** Answered with the injected failure status. */
  failed: number;
  /** Per user: the highest place accepted and the webhook-id that carried it. */
  users: Record<string, { last: number; webhookId: string; received: number }>;
  /** The last 100 violations. */
  recentViolations: OrderViolation[];
}

export interface Receiver {
  readonly url: string;
  readonly port: number;
  stats(): ReceiverStats;
  close(): Promise<void>;
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The body's user and place in the user's order (see the module comment). */
export function orderKey(body: unknown): { user?: string; place?: number } {
  if (typeof body !== 'object' || body === null) return {};
  const b = body as Record<string, unknown>;
  const rawUser = b.user_id ?? b.userId;
  const user = typeof rawUser === 'string' && rawUser !== '' ? rawUser : undefined;
  const seq = b.sequence ?? b.seq;
  let place: number | undefined;
  if (typeof seq === 'number' && Number.isFinite(seq)) place = seq;
  else if (typeof seq === 'string' && /^[0-9]+$/.test(seq)) place = Number(seq);
  else {
    const time = b.occurred_at ?? b.occurredAt ?? b.timestamp ?? b.time;
    if (typeof time === 'number' && Number.isFinite(time)) place = time;
    else if (typeof time === 'string') {
      const ms = Date.parse(time);
      if (!Number.isNaN(ms)) place = ms;
    }
  }
  return { ...(user === undefined ? {} : { user }), ...(place === undefined ? {} : { place }) };
}

const MAX_BODY_BYTES = 1024 * 1024;
const RECENT_VIOLATIONS = 100;

export async function startReceiver(options: ReceiverOptions): Promise<Receiver> {
  const random = prng(options.seed);
  const seen = new Set<string>();
  const stats: ReceiverStats = {
    requests: 0,
    received: 0,
    unique: 0,
    duplicates: 0,
    orderViolations: 0,
    rejected: 0,
    invalid: 0,
    failed: 0,
    users: {},
    recentViolations: [],
  };

  const answer = (res: ServerResponse, status: number, body: unknown) => {
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (options.latencyMs > 0) setTimeout(send, options.latencyMs);
    else send();
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: Buffer) => {
    stats.requests++;
    const record = (delivery: DeliveryRecord) => options.onDelivery?.(delivery);
    let webhookId = req.headers['webhook-id'];
    if (Array.isArray(webhookId)) webhookId = webhookId[0];
    if (options.secrets.length > 0) {
      const verdict = verifyWebhook({
        secrets: options.secrets,
        headers: req.headers,
        body: raw,
        toleranceSeconds: options.toleranceSeconds,
        ...(options.now ? { now: options.now() } : {}),
      });
      if (!verdict.ok) {
        stats.rejected++;
        record({
          status: 401,
          ...(webhookId ? { webhookId } : {}),
          duplicate: false,
          reason: verdict.reason,
        });
        return answer(res, 401, { error: verdict.reason });
      }
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      stats.invalid++;
      record({ status: 400, ...(webhookId ? { webhookId } : {}), duplicate: false, reason: 'not JSON' });
      return answer(res, 400, { error: 'the body is not JSON' });
    }
    const { user, place } = orderKey(body);
    const who = {
      ...(webhookId ? { webhookId } : {}),
      ...(user ? { user } : {}),
      ...(place !== undefined ? { place } : {}),
    };
    if (options.failRate > 0 && random() < options.failRate) {
      stats.failed++;
      record({ status: options.failStatus, ...who, duplicate: false });
      return answer(res, options.failStatus, { error: 'failure injected' });
    }
    stats.received++;
    const id = webhookId ?? '';
    const duplicate = id !== '' && seen.has(id);
    if (duplicate) stats.duplicates++;
    else {
      if (id !== '') seen.add(id);
      stats.unique++;
    }
    let outOfOrderAfter: number | undefined;
    if (!duplicate && user !== undefined && place !== undefined) {
      const last = stats.users[user];
      if (last && place < last.last) {
        outOfOrderAfter = last.last;
        stats.orderViolations++;
        stats.recentViolations.push({ user, webhookId: id, previous: last.last, got: place });
        if (stats.recentViolations.length > RECENT_VIOLATIONS) stats.recentViolations.shift();
        last.received++;
      } else {
        stats.users[user] = { last: place, webhookId: id, received: (last?.received ?? 0) + 1 };
      }
    }
    record({ status: 200, ...who, duplicate, ...(outOfOrderAfter !== undefined ? { outOfOrderAfter } : {}) });
    answer(res, 200, { ok: true });
  };

  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://receiver').pathname;
    if (req.method === 'GET' && path === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size <= MAX_BODY_BYTES) handle(req, res, Buffer.concat(chunks, size));
    });
  });
  server.listen(options.port, options.host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    port,
    stats: () => structuredClone(stats),
    async close() {
      server.closeIdleConnections();
      const closed = once(server, 'close');
      server.close();
      setTimeout(() => server.closeAllConnections(), 1_000).unref();
      await closed;
    },
  };
}
