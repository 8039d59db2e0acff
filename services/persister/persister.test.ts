/**
 * The persister's start-up check of the accepted topic, on a log that answers as told.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError, Code } from '../infra/app-error.ts';
import type { EventLog } from '../infra/log/event-log.ts';
import { checkAcceptedTopic } from './persister.ts';

/** A log whose endOffsets fails `failures` times, then answers with `partitions` per topic. */
function logAnswering(partitions: Record<string, number>, failures = 0): EventLog & { calls: number } {
  const log = {
    calls: 0,
    async endOffsets(topic: string) {
      log.calls++;
      if (failures-- > 0)
        throw new AppError(Code.UNAVAILABLE, 'This server is not the leader for that topic-partition');
      return new Map(Array.from({ length: partitions[topic] ?? 0 }, (_, p) => [p, 0n] as const));
    },
  };
  return log as unknown as EventLog & { calls: number };
}

test('a log that cannot answer yet is asked again until it can', async () => {
  const log = logAnswering({ events: 3, accepted: 3 }, 3);
  await checkAcceptedTopic(log, 'events', 'accepted', undefined, 10_000);
  assert.ok(log.calls > 2, `asked ${log.calls} times: more than one attempt`);
});

test('an accepted topic with fewer partitions is refused at once, naming both counts', async () => {
  const log = logAnswering({ events: 12, accepted: 6 });
  await assert.rejects(
    checkAcceptedTopic(log, 'events', 'accepted', undefined, 10_000),
    /accepted topic accepted has 6 partitions and the events topic events has 12/,
  );
  assert.equal(log.calls, 2, 'not asked again');
});

test('a log that never answers fails the start once the patience is spent', async () => {
  const log = logAnswering({ events: 3, accepted: 3 }, Number.POSITIVE_INFINITY);
  await assert.rejects(checkAcceptedTopic(log, 'events', 'accepted', undefined, 300), /not the leader/);
});
