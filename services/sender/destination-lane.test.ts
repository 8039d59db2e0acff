/**
 * When a lane takes its destination for slow (destination-lane.ts): an attempt in flight at the
 * batch's deadline parks every later record only when it had run for half the batch's time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeliveryStore, ParkedDelivery } from '../infra/delivery/delivery-store.ts';
import type { Destination } from '../infra/delivery/destination-store.ts';
import { createEmbeddedBreakerStore } from '../infra/delivery/embedded-breaker-store.ts';
import { createLogger } from '../infra/logger.ts';
import { createMetricsRegistry, deliveryMetrics } from '../infra/metrics.ts';
import type { AttemptResult } from './attempt.ts';
import { DestinationLane, type LaneRecord } from './destination-lane.ts';

const destination: Destination = {
  id: 'ds_lane000001',
  name: 'lane',
  enabled: true,
  disabledReason: '',
  endpoint: { kind: 'kafka', topic: 'out', brokers: [] },
  filter: { eventTypes: [], targetPrefixes: [], attributes: {} },
  transform: { fields: [] },
  ordering: 'per_user',
  retryDelaysSeconds: [0, 1],
  rateLimitPerSecond: undefined,
  concurrency: 1,
  signingSecrets: [],
  createdAt: new Date(0),
  updatedAt: new Date(0),
  revision: 1,
};

const record = (i: number, userId: string): LaneRecord => ({
  messageId: `msg_${i}`,
  eventId: `ev_${i}`,
  eventType: 'order.created',
  userId,
  occurredAtMs: Date.now(),
  sourcePartition: 0,
  sourceOffset: BigInt(i),
  body: new TextEncoder().encode('{}'),
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A lane over a store that keeps what a batch parks, and an attempter taking `latencyMs(i)` for the i-th attempt. */
function laneWith(latencyMs: (attempt: number) => number) {
  const parked: ParkedDelivery[] = [];
  const store = {
    description: 'test',
    blockedUsers: async () => new Set<string>(),
    settle: async (_d: string, _p: number, rows: readonly ParkedDelivery[]) => {
      parked.push(...rows);
    },
    finish: async () => {},
    claim: async () => [],
    hasPending: async () => parked.length > 0,
  } as unknown as DeliveryStore;
  const stopping = new AbortController();
  let attempts = 0;
  const lane = new DestinationLane(
    destination,
    {
      store,
      breakers: createEmbeddedBreakerStore(),
      attempt: async (): Promise<AttemptResult> => {
        const ms = latencyMs(attempts++);
        await sleep(ms);
        return { kind: 'delivered', latencyMs: ms, signal: 'success' };
      },
      disable: async () => {},
      logger: createLogger('error'),
      metrics: deliveryMetrics(createMetricsRegistry()),
      owner: 'test',
      now: Date.now,
      random: Math.random,
      stopping: stopping.signal,
    },
    { leaseMarginMs: 1_000, kafkaTimeoutMs: 5_000 },
  );
  return { lane, parked, attempts: () => attempts, stop: () => stopping.abort() };
}

test('an attempt that started late in the batch is parked alone: the lane does not park what comes next', async () => {
  // One user's chain: each attempt 200 ms, the batch 500 ms: the third starts at ~400 ms and is
  // in flight at the deadline after ~100 ms, a fifth of the batch's time.
  const { lane, parked } = laneWith(() => 200);
  const records = [1, 2, 3, 4].map((i) => record(i, 'u1'));
  await lane.handle(records, 0, new Map([[0, 4n]]), Date.now() + 500);
  // The chain's tail, from the attempt in flight (leased) on; on a slow machine it may begin earlier.
  const first = parked[0];
  assert.ok(first?.lease, 'the attempt in flight at the deadline is parked under its lease');
  assert.deepEqual(
    parked.map((p) => p.messageId),
    records.slice(records.findIndex((r) => r.messageId === first.messageId)).map((r) => r.messageId),
  );
  assert.ok(parked.slice(1).every((p) => !p.lease));
  assert.equal(lane.parking, false, 'a busy batch is not a slow destination');
  await lane.settled();
});

test('an attempt in flight for most of the batch makes the lane park every new record', async () => {
  const { lane, parked, attempts, stop } = laneWith(() => 1_000);
  await lane.handle([record(1, 'u1'), record(2, 'u1')], 0, new Map([[0, 2n]]), Date.now() + 200);
  assert.equal(lane.parking, true, 'a destination slower than the batch is parked');
  assert.deepEqual(
    parked.map((p) => p.messageId),
    ['msg_1', 'msg_2'],
  );
  // The next batch is parked at once, unattempted.
  await lane.handle([record(3, 'u2')], 0, new Map([[0, 3n]]), Date.now() + 200);
  assert.equal(attempts(), 1);
  assert.deepEqual(parked.at(-1)?.messageId, 'msg_3');
  assert.equal(parked.at(-1)?.lease, undefined);
  stop();
  await lane.settled();
});
