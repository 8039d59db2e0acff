/**
 * Phase `kafka-clients`: ingest and the gateway restarted with each Kafka client in turn
 * (TALLY_KAFKA_CLIENT), on the same figures: gRPC stream and REST batch maxima, a sink catching
 * up, the end-to-end search when the plan has one, and each library's raw producer.
 */
import { CONSUMER_ROLES } from '../lib/deployment.ts';
import { type Bench, expectLogged, restartIngestPath } from '../lib/harness.ts';
import { below, ingestLoads, k6Series } from '../lib/k6-series.ts';
import {
  KAFKA_CLIENTS,
  KAFKA_LIBRARY,
  type KafkaClient,
  type KafkaClientRun,
  type KafkaClientsResult,
} from '../lib/results.ts';
import type { Plan, Stepping } from '../plan.ts';
import { e2eSearch } from './e2e.ts';
import { rawProducerRun, writeSizes } from './raw-producer.ts';
import { catchUpAlone } from './sinks.ts';

/** Where each client's searches start. */
interface ClientSteppings {
  grpc: Stepping;
  batch: Stepping;
  e2e: Plan['e2e'] | undefined;
}

export async function runKafkaClients(b: Bench): Promise<void> {
  const { plan, results, deployment, ns } = b;
  const kc = plan.kafkaClients;
  // Left running by the end-to-end phase: the sinks below catch up alone.
  await Promise.all(CONSUMER_ROLES.map((role) => deployment.stop(role)));
  const comparison: KafkaClientsResult = {
    stepSeconds: kc.stepSeconds,
    e2eStepSeconds: kc.e2e?.stepSeconds,
    runs: [],
  };
  results.kafkaClients = comparison;
  // Both clients start a step below the maxima this run found (else the plan's), in finer steps.
  const grpcStepping = below(kc.grpcStream, results.grpcStream?.best);
  const batchStepping = below(kc.restBatch, results.restBatch?.best);
  const e2eStepping = kc.e2e && { ...kc.e2e, start: results.e2e?.best?.rate ?? kc.e2e.start };
  const steppings: ClientSteppings = { grpc: grpcStepping, batch: batchStepping, e2e: e2eStepping };
  try {
    for (const client of KAFKA_CLIENTS) await clientRun(b, client, steppings, comparison);
  } finally {
    deployment.groupPrefix = ns.groupPrefix;
  }
  // The libraries alone, one after the other at each size: the first client's ingest writes
  // (the raw producer phase has the largest write, the library's ceiling).
  const first = comparison.runs[0]!;
  const by = KAFKA_LIBRARY[first.client];
  for (const [batch, mirrors] of writeSizes(
    b,
    [
      [`REST batch with ${by}`, first.restBatch],
      [`gRPC stream with ${by}`, first.grpcStream],
    ],
    false,
  ))
    for (const run of comparison.runs)
      run.rawProducer.push(await rawProducerRun(b, run.client, batch, mirrors, kc.rawProducerSeconds));
}

/**
 * The figures of one client, added to `comparison` before they are measured (a failure keeps
 * what was): ingest and the gateway restarted with it, consumer groups of its own.
 */
async function clientRun(
  b: Bench,
  client: KafkaClient,
  steppings: ClientSteppings,
  comparison: KafkaClientsResult,
): Promise<void> {
  const { plan, results, deployment, ns, progress } = b;
  const kc = plan.kafkaClients;
  const { grpcStreamLoad, restBatchLoad } = ingestLoads(b);
  const versionOf = (client: KafkaClient) =>
    client === 'platformatic' ? results.versions.platformaticKafka : results.versions.kafkajs;
  const library = KAFKA_LIBRARY[client];
  const env = { TALLY_KAFKA_CLIENT: client };
  const run: KafkaClientRun = {
    client,
    library: `${library} ${versionOf(client) ?? ''}`.trim(),
    catchUp: [],
    rawProducer: [],
  };
  comparison.runs.push(run);
  // This client's consumer groups start at the end of the topics they read: its persister catches
  // up on what its own ingest steps write (ids no row holds yet, all accepted), then its counter
  // and aggregator on what that persister forwarded.
  deployment.groupPrefix = `${ns.groupPrefix}${client}-`;
  for (const role of CONSUMER_ROLES) await deployment.skipToEnd(role);
  progress(`${library}: restarting ingest and the gateway with TALLY_KAFKA_CLIENT=${client}`);
  await restartIngestPath(b, env);
  for (const role of ['ingest', 'gateway'] as const)
    expectLogged(b, role, ['"port":"log"', `kafka (${library},`], `the ${library} adapter`);
  run.grpcStream = await k6Series(b, {
    label: `${client}-grpc-stream`,
    stepping: steppings.grpc,
    seconds: kc.stepSeconds,
    ...grpcStreamLoad,
  });
  run.restBatch = await k6Series(b, {
    label: `${client}-rest-batch`,
    stepping: steppings.batch,
    seconds: kc.stepSeconds,
    ...restBatchLoad,
  });
  // In CONSUMER_ROLES' order, the persister first: the others' backlog is what it forwards.
  for (const role of CONSUMER_ROLES.filter((r) => kc.catchUpRoles.includes(r))) {
    const r = await catchUpAlone(b, role, kc.catchUpSeconds, env, `${role} (${library})`);
    if (r) run.catchUp.push(r);
  }
  if (steppings.e2e) {
    for (const role of CONSUMER_ROLES) await deployment.skipToEnd(role);
    await Promise.all(CONSUMER_ROLES.map((role) => deployment.start(role, env)));
    try {
      run.e2e = await e2eSearch(b, {
        label: `${client}-e2e`,
        runId: `b${ns.id}${client}`,
        stepping: steppings.e2e,
      });
    } finally {
      await Promise.all(CONSUMER_ROLES.map((role) => deployment.stop(role)));
    }
  }
}
