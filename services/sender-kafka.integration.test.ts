/**
 * Kafka destinations on the real servers: the sender appends each record of the destination's
 * topic to the destination's own topic — on Tally's cluster (the sender's producer), and on
 * "another cluster" named by its brokers (the same local Kafka, reached through a client of its
 * own, as `tally sender` does for a destination with brokers) — keyed by user, with the message id
 * in header `webhook-id`, the body as the router made it, and each user's records in order.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { handleProcessWarnings } from './infra/node-warnings.ts';
import { senderHarness } from './sender-harness.ts';
import { plannedRecords, writeRecords } from './testing/delivery-run.ts';
import { realServers, requireRealServers, waitFor } from './testing/real-servers.ts';

await requireRealServers();
handleProcessWarnings();

interface Appended {
  partition: number;
  key: string | null;
  messageId: string | undefined;
  body: { user_id: string; seq: number; event_id: string };
}

for (const where of ['Tally’s cluster', 'another cluster’s brokers'] as const)
  test(`a Kafka destination on ${where}: every record appended once, keyed by user, in each user’s order`, async (t) => {
    const h = await senderHarness(t);
    const target = `${h.groupPrefix}kafka-destination-${randomUUID().slice(0, 8)}`;
    await h.log.ensureTopics([{ name: target, partitions: 3 }]);
    const { d, topic } = await h.destination({
      name: 'audit',
      endpoint: {
        kind: 'kafka',
        topic: target,
        ...(where === 'another cluster’s brokers' ? { brokers: realServers.kafkaBrokers.split(',') } : {}),
      },
    });
    assert.equal(d.ordering, 'per_user');

    // Read the destination's topic as its consumers would.
    const appended: Appended[] = [];
    const reader = h.log.consumer({
      groupId: `${h.groupPrefix}reader-${randomUUID()}`,
      topics: [target],
      fromBeginning: true,
      maxWaitMs: 100,
    });
    await reader.run(async (batch) => {
      for (const r of batch.records)
        appended.push({
          partition: batch.partition,
          key: r.key,
          messageId: r.headers['webhook-id'],
          body: JSON.parse(new TextDecoder().decode(r.value)),
        });
    });

    await h.startSender();
    const planned = plannedRecords(d.id, 25, 12);
    await writeRecords(h.log.producer(), topic, planned, 50);
    try {
      await waitFor(
        () => appended.length >= planned.length,
        () => `${appended.length} of ${planned.length} appended`,
        60_000,
      );
    } finally {
      // Before the harness closes the log.
      await reader.stop();
      await h.log.deleteTopics([target]).catch(() => {});
    }

    assert.equal(appended.length, planned.length, 'each record once');
    const byId = new Map(planned.map((p) => [p.record.messageId, p]));
    const partitionOf = new Map<string, number>();
    const lastSeq = new Map<string, number>();
    for (const a of appended) {
      const p = byId.get(a.messageId ?? '');
      assert.ok(p, `a record with an unknown webhook-id: ${a.messageId}`);
      assert.equal(a.key, p.user, 'keyed by user');
      assert.deepEqual(a.body, JSON.parse(new TextDecoder().decode(p.record.body)), 'the body as written');
      // A user's records are on one partition, in order.
      assert.equal(partitionOf.get(p.user) ?? a.partition, a.partition, `${p.user} on one partition`);
      partitionOf.set(p.user, a.partition);
      assert.equal(a.body.seq, (lastSeq.get(p.user) ?? 0) + 1, `${p.user}'s records in order`);
      lastSeq.set(p.user, a.body.seq);
    }
    assert.equal(new Set(appended.map((a) => a.messageId)).size, planned.length);
    assert.equal((await h.store.pendingCounts()).get(d.id) ?? 0, 0, 'nothing parked');
  });
