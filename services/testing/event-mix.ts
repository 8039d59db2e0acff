/**
 * Test support: a deterministic mix of events over 3 targets × 2 types × 2 past
 * hours, sent over REST single, REST batch, gRPC unary and gRPC stream, and the
 * totals they must produce.
 */
import assert from 'node:assert/strict';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { HOUR_MS, hourStart } from '../domain/report.ts';
import { type EventInit, http, ingestClient, mapLimit } from './tally-client.ts';
import type { TallyProcess } from './tally-process.ts';

export const TYPES = ['CLICK', 'VIEW'] as const;

export interface Sent {
  event: EventInit & { id: string; type: string; target: string };
  occurredAtMs: number;
}

/** Deterministic events over 3 targets × 2 types × 2 past hours, with user ids and some values. */
export function makeEvents(nsId: string, count: number): Sent[] {
  const now = Date.now();
  const hours = [hourStart(now) - 2 * HOUR_MS, hourStart(now) - HOUR_MS];
  const targets = [1, 2, 3].map((n) => `https://shop.example/${nsId}/product/${n}?ref=a&b={c}`);
  return Array.from({ length: count }, (_, i) => {
    const occurredAtMs = hours[Math.floor(i / 6) % 2]! + ((i * 7919) % HOUR_MS);
    return {
      occurredAtMs,
      event: {
        id: `${nsId}-${i}`,
        type: TYPES[Math.floor(i / 3) % 2]!,
        target: targets[i % 3]!,
        userId: `user-${i % 97}`,
        ...(i % 10 === 0 ? { value: 1.25 } : {}),
        attributes: { seq: String(i) },
      },
    };
  });
}

export function restJson(s: Sent): Record<string, unknown> {
  const e = s.event;
  return {
    id: e.id,
    type: e.type,
    target: e.target,
    userId: e.userId,
    ...(e.value !== undefined ? { value: e.value } : {}),
    occurredAt: new Date(s.occurredAtMs).toISOString(),
    attributes: e.attributes,
  };
}

export function grpcEvent(s: Sent): EventInit {
  return { ...s.event, occurredAt: timestampFromMs(s.occurredAtMs) };
}

/** Sends events over the four channels, in quarters by index. */
export async function sendMix(tally: TallyProcess, events: Sent[]): Promise<void> {
  const ingest = ingestClient(tally.grpcPort!);
  try {
    const quarter = (k: number) => events.filter((_, i) => i % 4 === k);
    const restBatches = chunk(quarter(1), 500);
    const streamed = quarter(3);
    await Promise.all([
      mapLimit(quarter(0), 16, async (s) => {
        const r = await http(tally.httpPort!, 'POST', '/v1/events', restJson(s));
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.body, { id: s.event.id });
      }),
      mapLimit(restBatches, 2, async (batch) => {
        const r = await http(tally.httpPort!, 'POST', '/v1/events:batch', { events: batch.map(restJson) });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.body, { ids: batch.map((s) => s.event.id) });
      }),
      mapLimit(quarter(2), 32, async (s) => {
        const r = await ingest.publish({ event: grpcEvent(s) });
        assert.equal(r.id, s.event.id);
      }),
      (async () => {
        const r = await ingest.publishStream(streamed.map((s) => ({ event: grpcEvent(s) })));
        assert.equal(r.accepted, BigInt(streamed.length));
      })(),
    ]);
  } finally {
    ingest.close();
  }
}

function chunk<T>(items: T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) =>
    items.slice(i * size, (i + 1) * size),
  );
}

export type Totals = Map<string, { count: number; sum: number }>;
export const key = (target: string, type: string, hourMs: number) => `${target}|${type}|${hourMs}`;

export function expectedTotals(events: Sent[]): Totals {
  const totals: Totals = new Map();
  for (const s of events) {
    const k = key(s.event.target, s.event.type, hourStart(s.occurredAtMs));
    const t = totals.get(k) ?? { count: 0, sum: 0 };
    t.count += 1;
    t.sum += s.event.value ?? 0;
    totals.set(k, t);
  }
  return totals;
}
