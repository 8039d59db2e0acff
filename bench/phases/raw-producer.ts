/**
 * Phase `raw-producer`: the roles' Kafka client alone, with ingest's producer settings, writing
 * as many records per send as ingest wrote at its best steps (and the most it may write at once).
 */

import { localServers } from '../lib/deployment.ts';
import { type Bench, cpuWindow, describeCpu, fmt, spawnNode } from '../lib/harness.ts';
import type { RawProducerRun, Series } from '../lib/results.ts';
import { KAFKA_LIBRARY, type KafkaClient } from '../lib/results.ts';

export async function runRawProducer(b: Bench): Promise<void> {
  const { plan, results } = b;
  // The batch sizes ingest wrote at its best steps, and the most it may write at once, with
  // the roles' own Kafka client.
  const client = results.setup.kafkaClient ?? 'kafkajs';
  for (const [batch, mirrors] of writeSizes(b, [
    ['REST batch', results.restBatch],
    ['gRPC stream', results.grpcStream],
    ['REST single', results.restSingle],
  ]))
    results.rawProducer.push(await rawProducerRun(b, client, batch, mirrors, plan.rawProducerSeconds));
}

/**
 * The batch sizes of ingest's writes at the best steps of `series`, and (unless left out) the
 * most it may write at once, each with what it mirrors, smallest first.
 */
export function writeSizes(
  { results }: Bench,
  series: [string, Series | undefined][],
  largest = true,
): [number, string][] {
  const sizes = new Map<number, string>();
  for (const [what, s] of series) {
    const mean = s?.best?.writes?.meanEvents;
    if (mean && mean >= 1) sizes.set(Math.round(mean), `${what}: ingest's mean write at its best step`);
  }
  if (largest || sizes.size === 0)
    sizes.set(results.setup.maxProduceBatchEvents, 'TALLY_PRODUCE_MAX_BATCH_EVENTS: the largest write');
  return [...sizes].sort((a, b) => a[0] - b[0]);
}

/** The raw producer baseline: `client`'s library alone, `batch` records per send. */
export async function rawProducerRun(
  b: Bench,
  client: KafkaClient,
  batch: number,
  mirrors: string,
  seconds: number,
): Promise<RawProducerRun> {
  const { ns, progress } = b;
  const { exited, next } = await spawnNode('raw-producer', 'bench/baselines/raw-producer.ts', [
    '--client',
    client,
    '--brokers',
    localServers.kafkaBrokers,
    '--topic',
    ns.rawTopic,
    '--partitions',
    String(ns.partitions),
    '--batch',
    String(batch),
    '--seconds',
    String(seconds),
  ]);
  // The first line says the measured sends start.
  const cpu = cpuWindow(b, 100, seconds * 1000 - 300);
  const r = JSON.parse(await next()) as {
    eventsPerSecond: number;
    sendP50Ms: number;
    sendP99Ms: number;
  };
  await exited;
  const run: RawProducerRun = {
    client,
    batch,
    mirrors,
    eventsPerSecond: r.eventsPerSecond,
    sendP50Ms: r.sendP50Ms,
    sendP99Ms: r.sendP99Ms,
    cpu: await cpu(),
  };
  progress(
    `raw producer (${KAFKA_LIBRARY[client]}), ${fmt(batch)} records per send (${mirrors}): ${fmt(r.eventsPerSecond)} events/s, send p50 ${fmt(r.sendP50Ms, 1)} ms, p99 ${fmt(r.sendP99Ms, 1)} ms; cpu: ${describeCpu(run.cpu, ['raw-producer', 'kafka'])}`,
  );
  return run;
}
