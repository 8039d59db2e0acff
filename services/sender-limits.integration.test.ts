/**
 * Two senders on the real servers (Kafka, PostgreSQL, Redis Cluster) delivering to one endpoint:
 * a destination's `concurrency` and `rate_limit_per_second` hold for both together — each sender
 * alone would allow as much again — and a destination waiting on its limits holds nobody else's
 * deliveries.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMetricsRegistry } from './infra/metrics.ts';
import { metricValue, senderHarness, startScriptedEndpoint } from './sender-harness.ts';
import { plannedRecords, webhookTo, writeRecords } from './testing/delivery-run.ts';
import { requireRealServers, waitFor } from './testing/real-servers.ts';

await requireRealServers();

const uniqueIds = (requests: { headers: Record<string, unknown> }[]) =>
  new Set(requests.map((r) => String(r.headers['webhook-id']))).size;

test('two senders together keep a destination within its concurrency and its rate; a healthy destination beside them is not held', async (t) => {
  const h = await senderHarness(t);
  const slow = await startScriptedEndpoint(t, () => ({ status: 200, delayMs: 150 }));
  const paced = await startScriptedEndpoint(t, () => ({ status: 200 }));
  const healthy = await startScriptedEndpoint(t, () => ({ status: 200 }));
  const made = {
    slow: await h.destination(webhookTo(`${slow.url}/`, { ordering: 'none', concurrency: 3 })),
    paced: await h.destination(webhookTo(`${paced.url}/`, { ordering: 'none', rateLimitPerSecond: 10 })),
    healthy: await h.destination(webhookTo(`${healthy.url}/`)),
  };
  const registries = [
    createMetricsRegistry({ defaultMetrics: false }),
    createMetricsRegistry({ defaultMetrics: false }),
  ];
  for (const metrics of registries) await h.startSender({}, { metrics });
  const counts = { slow: 100, paced: 100, healthy: 200 };
  for (const [name, { d, topic }] of Object.entries(made))
    await writeRecords(
      h.log.producer(),
      topic,
      plannedRecords(d.id, 20, counts[name as keyof typeof counts] / 20),
    );

  await waitFor(
    () => uniqueIds(healthy.requests) === counts.healthy,
    () => `healthy received ${uniqueIds(healthy.requests)} of ${counts.healthy}`,
    30_000,
  );
  // The paced destination (at least 9 s for its 100) is not done when the healthy one has everything.
  const pacedWhenHealthyDone = uniqueIds(paced.requests);
  await waitFor(
    () => uniqueIds(slow.requests) === counts.slow && uniqueIds(paced.requests) === counts.paced,
    () =>
      `slow ${uniqueIds(slow.requests)} of ${counts.slow}, paced ${uniqueIds(paced.requests)} of ${counts.paced}`,
    60_000,
  );

  // Concurrency: 3 in flight at most, across both senders (each alone would allow 3).
  assert.ok(slow.maxInFlight() <= 3, `${slow.maxInFlight()} requests in flight at once`);
  assert.equal(slow.maxInFlight(), 3, 'the limit is used');

  // Rate: 10 a second with a burst of 10. From the first start, at most 10 + 10·x starts within
  // x seconds (one more for the endpoint's clock reading a request a little late or early).
  const starts = paced.requests.map((r) => r.startedMs).sort((a, b) => a - b);
  const first = starts[0]!;
  starts.forEach((at, i) => {
    const allowed = 10 + Math.floor(((at - first) / 1000) * 10) + 1;
    assert.ok(i + 1 <= allowed, `${i + 1} starts within ${at - first} ms of the first (at most ${allowed})`);
  });
  const spanMs = starts.at(-1)! - first;
  assert.ok(spanMs >= ((counts.paced - 10) / 10) * 1000 - 300, `${counts.paced} starts in ${spanMs} ms`);

  assert.ok(pacedWhenHealthyDone < counts.paced, `paced had ${pacedWhenHealthyDone} when healthy was done`);

  // Both senders delivered, and the time they waited for the limits is counted.
  for (const [i, metrics] of registries.entries()) {
    const delivered =
      (await metricValue(metrics, 'tally_delivery_delivered_total', { destination: made.slow.d.id })) +
      (await metricValue(metrics, 'tally_delivery_delivered_total', { destination: made.paced.d.id }));
    assert.ok(delivered > 0, `sender ${i} delivered nothing to the limited destinations`);
  }
  const waits = await Promise.all(
    registries.map((m) => m.getSingleMetric('tally_delivery_limit_wait_seconds')!.get()),
  );
  const rateWait = waits
    .flatMap((w) => w.values)
    .filter(
      (v) =>
        (v as { metricName?: string }).metricName?.endsWith('_sum') &&
        v.labels.destination === made.paced.d.id &&
        v.labels.limit === 'rate',
    )
    .reduce((sum, v) => sum + v.value, 0);
  assert.ok(rateWait > 0, 'time waiting on the rate is counted');
  t.diagnostic(
    `slow: max ${slow.maxInFlight()} in flight; paced: ${counts.paced} starts over ${spanMs} ms; waited ${rateWait.toFixed(1)} s on the rate`,
  );
});
