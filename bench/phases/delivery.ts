/**
 * Phase `delivery`: the router and a sender (`tally router`, `tally sender`, a process each) with
 * the rest of the suite running (ingest, query, the gateway, the persister, the counter and the
 * aggregator), delivering webhooks to local receivers (bench/lib/webhook-sink.ts, a process of its
 * own) that answer in `receiverLatencyMs`. The destinations are made over `POST /v1/destinations`
 * (plain http to 127.0.0.1, which the sender's TALLY_DELIVERY_ALLOW_CIDRS allows), disabled after
 * their part, and deleted once the router and the sender are stopped.
 * - Throughput: the simulators stepped (clickstream, social, transactions), every event to one
 *   destination of `concurrency`; a step passes when the receiver got ≥ 95 % of the acknowledged
 *   rate during the step and every acknowledged event within the drain wait after it.
 * - Latency: the harness's own events at `latencyRate`/s to a destination of their type; from each
 *   event's acknowledgement (recorded by id) to its first arrival at the receiver.
 * - Isolation: the harness's events at `isolationRate`/s to three destinations of their type, all
 *   healthy; then again with one dead (connection refused) and one slow (`slowLatencyMs` per
 *   request) beside the healthy one; the healthy one's deliveries/s and latency in each.
 */
import { IngestService } from '../../services/gen/tally/v1/ingest_pb.js';
import { createGrpcClient } from '../../services/infra/grpc/grpc-service.ts';
import { freePort } from '../../services/testing/tally-process.ts';
import { CONSUMER_ROLES } from '../lib/deployment.ts';
import { type Bench, cpuWindow, describeCpu, fmt, sleep, spawnNode } from '../lib/harness.ts';
import type { CpuUse } from '../lib/proc.ts';
import type { DeliveryResult, DeliveryStep, IsolationRun, Quantiles } from '../lib/results.ts';
import { searchMax } from '../lib/steps.ts';
import { DELIVERY_GROUPS } from './delivery.report.ts';
import { firstBatches, runSimulator, SCENARIO_SHARES } from './e2e.ts';
import { quantiles } from './windows.ts';

/** The delivery roles' settings: plain http to the local receivers; destinations taken up within 0.5 s. */
const DELIVERY_ENV = { TALLY_DELIVERY_ALLOW_CIDRS: '127.0.0.1/32', TALLY_DESTINATIONS_REFRESH_MS: '500' };

interface SinkStats {
  requests: number;
  answered: number;
  recorded: number;
  arrivals?: [string, number][];
}

/** The receivers' process, over its control port. */
class Sinks {
  readonly #control: string;
  constructor(port: number) {
    this.#control = `http://127.0.0.1:${port}`;
  }
  async open(latencyMs: number, record: boolean): Promise<{ id: string; url: string }> {
    const r = await fetch(`${this.#control}/sinks?latencyMs=${latencyMs}&record=${record ? 1 : 0}`, {
      method: 'POST',
    });
    const { id, port } = (await r.json()) as { id: string; port: number };
    return { id, url: `http://127.0.0.1:${port}/hook` };
  }
  async stats(id: string, arrivals = false): Promise<SinkStats> {
    const r = await fetch(`${this.#control}/sinks/${id}${arrivals ? '?arrivals=1' : ''}`);
    return (await r.json()) as SinkStats;
  }
  async close(id: string): Promise<void> {
    await fetch(`${this.#control}/sinks/${id}`, { method: 'DELETE' }).catch(() => {});
  }
}

export async function runDelivery(b: Bench): Promise<void> {
  const { plan, deployment, results, progress } = b;
  const p = plan.delivery;
  for (const role of CONSUMER_ROLES)
    if (!deployment.roles.has(role)) {
      await deployment.skipToEnd(role);
      await deployment.start(role);
    }
  await deployment.skipToEnd('router');
  await Promise.all([deployment.start('router', DELIVERY_ENV), deployment.start('sender', DELIVERY_ENV)]);
  const { child, first } = await spawnNode('receiver', 'bench/lib/webhook-sink.ts', []);
  const sinks = new Sinks((JSON.parse(first) as { port: number }).port);
  const result: DeliveryResult = {
    receiverLatencyMs: p.receiverLatencyMs,
    slowLatencyMs: p.slowLatencyMs,
    concurrency: p.concurrency,
    throughput: { steps: [], stepSeconds: p.throughput.stepSeconds },
  };
  results.delivery = result;
  try {
    result.throughput = await throughput(b, sinks);
    result.latency = await latency(b, sinks);
    progress(
      `delivery latency at ${fmt(p.latencyRate)} events/s: acknowledged → first attempt p50 ${fmt(result.latency.ms.p50)} ms, ` +
        `p99 ${fmt(result.latency.ms.p99)} ms (${result.latency.ms.n} of ${result.latency.acknowledged}); cpu: ${describeCpu(result.latency.cpu, DELIVERY_GROUPS)}`,
    );
    const allHealthy = await isolation(b, sinks, 'healthy', false);
    const withFaults = await isolation(b, sinks, 'faults', true);
    result.isolation = { rate: p.isolationRate, seconds: p.isolationSeconds, allHealthy, withFaults };
  } finally {
    child.kill('SIGTERM');
    await Promise.all([deployment.stop('router'), deployment.stop('sender')]);
    await deleteDestinations(b);
  }
}

/** The destinations each run made, with the body each was made with (to disable it with a PUT). */
const made = new WeakMap<Bench, Map<string, Record<string, unknown>>>();

/** Makes a webhook destination to `url` over REST; answers its id. */
async function createDestination(
  b: Bench,
  name: string,
  url: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const body = { name, webhook: { url, allowPlainHttp: true }, ...extra };
  // UNAVAILABLE: the destination's topic could not be made and nothing was kept; the API says to retry.
  let text = '';
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(`http://127.0.0.1:${b.deployment.httpPort}/v1/destinations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    text = await response.text();
    if (response.ok) break;
    if (response.status !== 503 || attempt >= 10)
      throw new Error(`POST /v1/destinations answered ${response.status}: ${text.slice(0, 500)}`);
    await sleep(1000);
  }
  const id = (JSON.parse(text) as { destination: { id: string } }).destination.id;
  const bodies = made.get(b) ?? new Map<string, Record<string, unknown>>();
  made.set(b, bodies.set(id, body));
  return id;
}

/**
 * Disables a destination after its part (`PUT`, `enabled: false`): the router stops routing to it
 * and the sender stops reading its topic. The destinations are deleted once the router and the
 * sender are stopped (`deleteDestinations`), so that no part is measured while a topic is being
 * deleted under them.
 */
async function disableDestination(b: Bench, id: string): Promise<void> {
  const body = made.get(b)?.get(id);
  const response = await fetch(`http://127.0.0.1:${b.deployment.httpPort}/v1/destinations/${id}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, enabled: false }),
  });
  if (!response.ok)
    b.progress(
      `could not disable destination ${id}: ${response.status} ${(await response.text()).slice(0, 200)}`,
    );
}

/** Deletes every destination the run made (their topics with them). */
async function deleteDestinations(b: Bench): Promise<void> {
  for (const id of made.get(b)?.keys() ?? []) {
    const response = await fetch(`http://127.0.0.1:${b.deployment.httpPort}/v1/destinations/${id}`, {
      method: 'DELETE',
    });
    if (!response.ok)
      b.progress(
        `could not delete destination ${id}: ${response.status} ${(await response.text()).slice(0, 200)}`,
      );
  }
  made.delete(b);
}

/**
 * The harness's events: `rate` a second for `seconds`, of `type`, through ingest's PublishBatch
 * every 20 ms; each event's acknowledgement time (epoch ms) by id.
 */
class Events {
  readonly #ingest;
  readonly #prefix: string;
  #n = 0;
  constructor(b: Bench, label: string) {
    this.#ingest = createGrpcClient(IngestService, `127.0.0.1:${b.deployment.ingestPort}`, {
      defaultTimeoutMs: 30_000,
    });
    this.#prefix = `dl-${b.ns.id}-${label}`;
  }

  #event(type: string) {
    const n = this.#n++;
    return { id: `${this.#prefix}-${n}`, type, target: `dl/t${n % 50}`, userId: `dl-u${n % 500}` };
  }

  /** One event of `type` (a warm-up). */
  async one(type: string): Promise<void> {
    await this.#ingest.publish({ event: this.#event(type) });
  }

  async run(
    type: string,
    rate: number,
    seconds: number,
  ): Promise<{ acked: Map<string, number>; fromMs: number; toMs: number; failed: number }> {
    const acked = new Map<string, number>();
    const calls: Promise<void>[] = [];
    let failed = 0;
    let sent = 0;
    const fromMs = Date.now();
    while (Date.now() - fromMs < seconds * 1000) {
      const due = Math.floor((rate * (Date.now() - fromMs)) / 1000) - sent;
      if (due > 0) {
        const events = Array.from({ length: due }, () => this.#event(type));
        sent += due;
        calls.push(
          this.#ingest.publishBatch({ events }).then(
            () => {
              const at = Date.now();
              for (const e of events) acked.set(e.id, at);
            },
            () => {
              failed += events.length;
            },
          ),
        );
      }
      await sleep(20);
    }
    const toMs = Date.now();
    await Promise.all(calls);
    return { acked, fromMs, toMs, failed };
  }

  close(): void {
    this.#ingest.close();
  }
}

/** Waits until `done()` or `timeoutMs`; answers the seconds it took, undefined on the timeout. */
async function until(done: () => Promise<boolean>, timeoutMs: number): Promise<number | undefined> {
  const started = Date.now();
  while (!(await done())) {
    if (Date.now() - started > timeoutMs) return undefined;
    await sleep(250);
  }
  return (Date.now() - started) / 1000;
}

/** Sends warm-up events of `type` until each of `sinkIds` got one (the router and the sender took the destinations up). */
async function warmUp(
  b: Bench,
  sinks: Sinks,
  events: Events,
  type: string,
  sinkIds: string[],
): Promise<void> {
  const started = Date.now();
  for (;;) {
    await events.one(type);
    const got = await Promise.all(sinkIds.map(async (id) => (await sinks.stats(id)).requests > 0));
    if (got.every(Boolean)) return;
    if (Date.now() - started > 60_000) {
      const tail = (role: 'router' | 'sender') =>
        `${role}:\n${(b.deployment.roles.get(role)?.proc.lines ?? []).slice(-15).join('\n')}`;
      throw new Error(
        `no warm-up event of ${type} reached the receivers in 60 s: is the router or the sender stuck?\n${tail('router')}\n${tail('sender')}`,
      );
    }
    await sleep(500);
  }
}

/** First arrival − acknowledgement of each acknowledged event the receiver got; how many it never got. */
export function arrivalLatency(
  acked: Map<string, number>,
  arrivals: [string, number][],
): Quantiles & { unseen: number } {
  const at = new Map(arrivals);
  const ms: number[] = [];
  let unseen = 0;
  for (const [id, ackMs] of acked) {
    const arrived = at.get(id);
    if (arrived === undefined) unseen++;
    else ms.push(Math.max(0, arrived - ackMs));
  }
  return { ...quantiles(ms), unseen };
}

/** The simulators stepped, every event to one healthy destination. */
async function throughput(b: Bench, sinks: Sinks): Promise<DeliveryResult['throughput']> {
  const { plan, progress, outOfTime } = b;
  const p = plan.delivery;
  const sink = await sinks.open(p.receiverLatencyMs, false);
  const id = await createDestination(b, 'bench throughput', sink.url, { concurrency: p.concurrency });
  const events = new Events(b, 'warm');
  try {
    await warmUp(b, sinks, events, 'bench_delivery_warmup', [sink.id]);
    await sleep(1000);
    const base = (await sinks.stats(sink.id)).answered;
    let expected = 0;
    let n = 0;
    const search = await searchMax<DeliveryStep>({
      ...p.throughput,
      minRate: plan.smoke ? 5 : 200,
      maxRate: 100_000,
      refine: !plan.smoke,
      // The run's time budget may be spent by now: the first step runs all the same.
      outOfTime: () => n > 0 && outOfTime(),
      run: async (rate) => {
        const step = await throughputStep(
          b,
          sinks,
          sink.id,
          rate,
          `delivery-${++n}-${rate}`,
          async (acked) => {
            expected += acked;
            return until(
              async () => (await sinks.stats(sink.id)).answered - base >= expected,
              p.throughput.drainTimeoutSeconds * 1000,
            );
          },
        );
        progress(
          `delivery ${fmt(rate)} events/s: ${fmt(step.achievedEvents)} acknowledged, ${fmt(step.deliveredPerSecond)} delivered/s, ` +
            `drained in ${step.drainSeconds === undefined ? '—' : `${fmt(step.drainSeconds, 1)} s`} → ${step.passed ? 'pass' : `FAIL (${step.why})`}`,
        );
        progress(`  cpu: ${describeCpu(step.cpu, [...DELIVERY_GROUPS, 'simulator'])}`);
        return { rate, step, passed: step.passed, why: step.why };
      },
    });
    return {
      steps: search.steps.map((s) => s.step),
      best: search.best?.step,
      stepSeconds: p.throughput.stepSeconds,
    };
  } finally {
    events.close();
    await disableDestination(b, id);
    await sinks.close(sink.id);
  }
}

async function throughputStep(
  b: Bench,
  sinks: Sinks,
  sinkId: string,
  rate: number,
  name: string,
  drain: (acknowledged: number) => Promise<number | undefined>,
): Promise<DeliveryStep> {
  const { plan, deployment, rawDir, sampler } = b;
  const seconds = plan.delivery.throughput.stepSeconds;
  const spawnedMs = Date.now();
  const sims = SCENARIO_SHARES.map(({ scenario, share }) =>
    runSimulator(scenario, rate * share, seconds, deployment.ingestPort, `${rawDir}/${name}-${scenario}.out`),
  );
  const startMs = await firstBatches(b);
  // The window: from a second after the first batches to half a second before the simulators stop.
  const fromMs = startMs + 1000;
  const toMs = Math.max(fromMs + 1000, spawnedMs + seconds * 1000 - 500);
  await sleep(fromMs - Date.now());
  const cpuFrom = sampler.sample();
  const c0 = (await sinks.stats(sinkId)).requests;
  await sleep(toMs - Date.now());
  const c1 = (await sinks.stats(sinkId)).requests;
  const cpuTo = sampler.sample();
  const measuredMs = Date.now() - fromMs;
  const sim = await Promise.all(sims);
  const acknowledged = sim.reduce((t, s) => t + s.acknowledged, 0);
  const drainSeconds = await drain(acknowledged);
  const achievedEvents = acknowledged / seconds;
  const deliveredPerSecond = ((c1 - c0) * 1000) / measuredMs;
  const reasons: string[] = [];
  if (deliveredPerSecond < 0.95 * achievedEvents)
    reasons.push(`${fmt(deliveredPerSecond)} of ${fmt(achievedEvents)} events/s delivered`);
  if (drainSeconds === undefined)
    reasons.push(
      `not every event delivered ${plan.delivery.throughput.drainTimeoutSeconds} s after the load`,
    );
  const cpu: CpuUse = sampler.use(cpuFrom, cpuTo);
  return {
    rate,
    achievedEvents,
    deliveredPerSecond,
    drainSeconds,
    passed: reasons.length === 0,
    why: reasons.join('; '),
    cpu,
  };
}

/** The harness's events at the latency rate to a destination of their type. */
async function latency(b: Bench, sinks: Sinks): Promise<NonNullable<DeliveryResult['latency']>> {
  const { plan } = b;
  const p = plan.delivery;
  const type = 'bench_delivery';
  const sink = await sinks.open(p.receiverLatencyMs, true);
  const id = await createDestination(b, 'bench latency', sink.url, { filter: { eventTypes: [type] } });
  const events = new Events(b, 'latency');
  try {
    await warmUp(b, sinks, events, type, [sink.id]);
    await sleep(1000);
    const warm = (await sinks.stats(sink.id)).recorded;
    const cpu = cpuWindow(b, 500, p.latencySeconds * 1000 - 1000);
    const run = await events.run(type, p.latencyRate, p.latencySeconds);
    const use = await cpu();
    await until(
      async () => (await sinks.stats(sink.id)).recorded - warm >= run.acked.size,
      p.drainTimeoutSeconds * 1000,
    );
    const { arrivals = [] } = await sinks.stats(sink.id, true);
    return {
      rate: p.latencyRate,
      seconds: p.latencySeconds,
      acknowledged: run.acked.size,
      ms: arrivalLatency(run.acked, arrivals),
      cpu: use,
    };
  } finally {
    events.close();
    await disableDestination(b, id);
    await sinks.close(sink.id);
  }
}

/**
 * Three destinations of one event type, the harness's events at the isolation rate: all healthy,
 * or one dead (nothing listens on its port) and one slow beside the healthy one.
 */
async function isolation(b: Bench, sinks: Sinks, label: string, faults: boolean): Promise<IsolationRun> {
  const { plan, progress } = b;
  const p = plan.delivery;
  const type = `bench_isolation_${label}`;
  const healthy = await sinks.open(p.receiverLatencyMs, true);
  const second = faults ? undefined : await sinks.open(p.receiverLatencyMs, false);
  const slowOrThird = await sinks.open(faults ? p.slowLatencyMs : p.receiverLatencyMs, false);
  const deadUrl = `http://127.0.0.1:${await freePort()}/hook`;
  const filter = { filter: { eventTypes: [type] } };
  const ids = [
    await createDestination(b, `bench ${label} healthy`, healthy.url, filter),
    await createDestination(
      b,
      `bench ${label} ${faults ? 'dead' : 'healthy 2'}`,
      second?.url ?? deadUrl,
      filter,
    ),
    await createDestination(b, `bench ${label} ${faults ? 'slow' : 'healthy 3'}`, slowOrThird.url, {
      ...filter,
      ...(faults ? { webhook: { url: slowOrThird.url, allowPlainHttp: true, timeoutMs: 10_000 } } : {}),
    }),
  ];
  const events = new Events(b, label);
  try {
    await warmUp(b, sinks, events, type, faults ? [healthy.id] : [healthy.id, second!.id, slowOrThird.id]);
    await sleep(1000);
    const warm = (await sinks.stats(healthy.id)).recorded;
    const cpu = cpuWindow(b, 500, p.isolationSeconds * 1000 - 1000);
    const run = await events.run(type, p.isolationRate, p.isolationSeconds);
    const use = await cpu();
    await until(
      async () => (await sinks.stats(healthy.id)).recorded - warm >= run.acked.size,
      p.drainTimeoutSeconds * 1000,
    );
    const { arrivals = [] } = await sinks.stats(healthy.id, true);
    const inWindow = arrivals.filter(
      ([id, at]) => run.acked.has(id) && at >= run.fromMs && at <= run.toMs,
    ).length;
    const slowRequests = faults ? (await sinks.stats(slowOrThird.id)).requests : 0;
    const result: IsolationRun = {
      others: faults
        ? `one dead (connection refused), one slow (${fmt(p.slowLatencyMs)} ms a request)`
        : 'two healthy',
      acknowledged: run.acked.size,
      deliveredPerSecond: (inWindow * 1000) / (run.toMs - run.fromMs),
      ms: arrivalLatency(run.acked, arrivals),
      slowRequests,
      cpu: use,
    };
    progress(
      `delivery isolation, ${result.others} beside the healthy destination: ${fmt(result.deliveredPerSecond)} delivered/s, ` +
        `p50 ${fmt(result.ms.p50)} ms, p99 ${fmt(result.ms.p99)} ms (${result.ms.n} of ${result.acknowledged}, ${result.ms.unseen} unseen)` +
        `${faults ? `; the slow receiver got ${fmt(slowRequests)} requests` : ''}`,
    );
    return result;
  } finally {
    events.close();
    for (const id of ids) await disableDestination(b, id);
    for (const s of [healthy, second, slowOrThird]) if (s) await sinks.close(s.id);
  }
}
