/**
 * The short chaos run: ≥ 20,000 events while every fault happens at least once (SIGKILLs of
 * consumer processes, a consumer added and one removed, Kafka, Redis and PostgreSQL each
 * restarted), then zero missing and zero duplicated in every sink, sums equal, no probe user ever
 * seen out of order, the alerter's notifications of the probes' milestones each once (in
 * PostgreSQL, and per recipient on the topic), and every probe event delivered to a webhook
 * receiver (router and sender processes killed, added and removed with the others), again only
 * under its own webhook-id, each user's in order; once with each Kafka client library. `make chaos`
 * is the long run (100,000 events, 5 kills).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startReceiver } from './receiver/receiver.ts';
import { CHAOS_DEFAULTS, faultPlan, formatChaosReport, runChaos } from './testing/chaos.ts';

test('fault plan: every fault at least once, the kills spread among them', () => {
  assert.deepEqual(faultPlan(1), [
    'kill',
    'add',
    'restart-redis',
    'restart-kafka',
    'remove',
    'restart-postgres',
  ]);
  const plan = faultPlan(5);
  assert.equal(plan.filter((f) => f === 'kill').length, 5);
  for (const kind of ['add', 'remove', 'restart-kafka', 'restart-redis', 'restart-postgres'] as const)
    assert.equal(plan.filter((f) => f === kind).length, 1, kind);
  assert.ok(plan.indexOf('add') < plan.indexOf('remove'), 'a consumer is added before one is removed');
});

for (const kafkaClient of ['kafkajs', 'platformatic'] as const)
  test(`short chaos run on ${kafkaClient}: every sink holds each acknowledged event exactly once, in per-user order, each milestone crossed is one notification, and each probe event reaches the webhook`, async () => {
    const options = {
      ...CHAOS_DEFAULTS,
      // The orders scenario on one client, so the projector's entities are checked too; the
      // card transactions (every event with a value) on the other.
      scenario: kafkaClient === 'kafkajs' ? ('orders' as const) : ('transactions' as const),
      kafkaClient,
      events: 20_000,
      rate: 700,
      kills: 2,
      seed: Number(process.env.CHAOS_SEED ?? 20261122),
      startReceiver,
    };
    const lines: string[] = [];
    const result = await runChaos({
      ...options,
      log: (line) => {
        lines.push(line);
        if (process.env.TALLY_TEST_VERBOSE) process.stderr.write(`${line}\n`);
      },
    });
    const report = formatChaosReport(result, options);
    const context = `${report}\nlast progress lines:\n${lines.slice(-15).join('\n')}`;
    assert.deepEqual(result.problems, [], context);
    assert.equal(result.faults.length, faultPlan(2).length, context);
    assert.ok(result.processes.killed >= 2 && result.processes.removed >= 1, context);
    for (const row of result.rows) {
      if (row.unit === 'events') assert.ok(row.sent >= 20_000, context);
      else if (row.unit === 'deliveries')
        assert.ok(row.sent > 1_000, `${row.sink}: the probes' events were routed\n${context}`);
      else assert.ok(row.sent > 0, `${row.sink}: the probes crossed milestones\n${context}`);
      assert.equal(row.missing, 0, `${row.sink}\n${context}`);
      assert.equal(row.duplicated, 0, `${row.sink}\n${context}`);
      assert.equal(row.counted, row.sent, `${row.sink}\n${context}`);
    }
    for (const row of result.order) {
      assert.equal(row.outOfOrder, 0, `${row.sink}\n${context}`);
      assert.ok(row.samples > row.users * 10, `${row.sink} was sampled while the run went on\n${context}`);
    }
    assert.ok(result.ok, context);
  });
