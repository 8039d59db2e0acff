/**
 * Phase `alerts`: the alert rules live, under the end-to-end load. Every role runs (the alerter
 * too, from the end of its backlog) while the simulators send `plan.alerts.backgroundRate`
 * events/s over gRPC; the harness meanwhile
 * - sends probes: every `probeEverySeconds`, a fresh target `probe/<k>` gets the events that take
 *   it to the probe rule's milestone in one acknowledged request; a WebSocket subscribed to the
 *   dashboard's notifications times the milestone's arrival against that acknowledgement;
 * - drives spike series: `spikyTargets` + `steadyTargets` targets at `perTargetPerMinute` events
 *   a minute each; after `warmupSeconds`, each spiky target in turn takes `spikeFactor` times its
 *   rate for `spikeSeconds`; a spike is detected when its spike notification arrives, and any
 *   spike notification on a steady target — or on the social scenario's posts, which a demo-like
 *   like-spike rule watches — is a false alarm.
 */
import WebSocket from 'ws';
import { createSqlRuleStore } from '../../services/infra/alerts/sql-rule-store.ts';
import { createPgDatabase } from '../../services/infra/sql/pg-database.ts';
import { DEMO_RULES } from '../../services/simulator/demo-rules.ts';
import { SINK_ROLES } from '../lib/deployment.ts';
import { type Bench, cpuWindow, fmt, sleep } from '../lib/harness.ts';
import type { AlertsResult, Quantiles } from '../lib/results.ts';
import { runSimulator, SCENARIO_SHARES } from './e2e.ts';

const PROBE_TYPE = 'bench_probe';
const SPIKE_TYPE = 'bench_spike';
/** Events that take a probe target to its milestone, sent in one request. */
const PROBE_MILESTONE = 5;
/** The spike rule on the harness's spike series: as the social demo's (services/simulator/demo-rules.ts). */
const SPIKE_RULE = {
  halfLifeMinutes: 10,
  warmupMinutes: 1,
  zThreshold: 6,
  zClear: 3,
  minCount: 20,
  minRatio: 3,
};

interface Arrival {
  kind: string;
  target: string;
  atMs: number;
  /** What the notification said (its message), to name a false alarm in the report. */
  message: string;
}

export async function runAlerts(b: Bench): Promise<void> {
  const { plan, deployment, progress, rawDir } = b;
  const p = plan.alerts;
  await createRules(b);
  for (const role of SINK_ROLES) if (!deployment.roles.has(role)) await deployment.skipToEnd(role);
  for (const role of SINK_ROLES) if (!deployment.roles.has(role)) await deployment.start(role);
  for (const role of ['ingest', 'query', 'gateway'] as const)
    if (!deployment.roles.has(role)) await deployment.start(role);
  const origin = `http://127.0.0.1:${deployment.httpPort}`;

  const arrivals: Arrival[] = [];
  const socket = await watchNotifications(`ws://127.0.0.1:${deployment.httpPort}/v1/stream`, arrivals);
  try {
    const started = Date.now();
    const seconds = p.warmupSeconds + p.seconds;
    progress(
      `alerts: ${fmt(p.backgroundRate)} events/s of simulators for ${fmt(seconds)} s; probes every ${p.probeEverySeconds} s; ` +
        `${p.spikyTargets} spiky and ${p.steadyTargets} steady series at ${p.perTargetPerMinute}/min, spikes ×${p.spikeFactor} for ${p.spikeSeconds} s after ${p.warmupSeconds} s`,
    );
    const sims = SCENARIO_SHARES.map(({ scenario, share }) =>
      runSimulator(
        scenario,
        p.backgroundRate * share,
        seconds,
        deployment.ingestPort,
        `${rawDir}/alerts-${scenario}.out`,
      ),
    );
    const cpu = cpuWindow(b, 1000, seconds * 1000 - 2000);
    // Spike starts, staggered over the measured part so that each has its own minutes.
    const spikeGap = (p.seconds * 1000 - p.spikeSeconds * 1000 - 60_000) / Math.max(1, p.spikyTargets);
    const spikes = Array.from({ length: p.spikyTargets }, (_, k) => ({
      target: `spk/spiky-${k}`,
      startMs: started + p.warmupSeconds * 1000 + k * Math.max(spikeGap, 1000),
    }));
    const probes: { target: string; ackedMs: number }[] = [];
    const failures: string[] = [];
    const send = async (events: object[]) => {
      const response = await fetch(`${origin}/v1/events:batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ events }),
      });
      if (!response.ok) failures.push(`${response.status} ${(await response.text()).slice(0, 200)}`);
      return response.ok;
    };
    let n = 0;
    const event = (type: string, target: string) => ({
      id: `alerts-${deployment.ns.id}-${++n}`,
      type,
      target,
      userId: `u${n % 97}`,
    });
    // Each second: every series' share of its per-minute rate (×factor while its spike lasts).
    const seriesLoop = (async () => {
      const carry = new Map<string, number>();
      for (let tick = 0; Date.now() - started < seconds * 1000; tick++) {
        const now = Date.now();
        const batch: object[] = [];
        const targets = [
          ...spikes.map((s) => ({
            target: s.target,
            factor: now >= s.startMs && now < s.startMs + p.spikeSeconds * 1000 ? p.spikeFactor : 1,
          })),
          ...Array.from({ length: p.steadyTargets }, (_, k) => ({ target: `spk/steady-${k}`, factor: 1 })),
        ];
        for (const { target, factor } of targets) {
          const due = (carry.get(target) ?? 0) + (p.perTargetPerMinute * factor) / 60;
          const whole = Math.floor(due);
          carry.set(target, due - whole);
          for (let i = 0; i < whole; i++) batch.push(event(SPIKE_TYPE, target));
        }
        for (let i = 0; i < batch.length; i += 500) await send(batch.slice(i, i + 500)).catch(() => false);
        await sleep(Math.max(0, started + (tick + 1) * 1000 - Date.now()));
      }
    })();
    const probeLoop = (async () => {
      for (let k = 0; Date.now() - started < seconds * 1000 - 5_000; k++) {
        const target = `probe/${k}`;
        const ok = await send(Array.from({ length: PROBE_MILESTONE }, () => event(PROBE_TYPE, target))).catch(
          () => false,
        );
        if (ok) probes.push({ target, ackedMs: Date.now() });
        await sleep(Math.max(0, started + (k + 1) * p.probeEverySeconds * 1000 - Date.now()));
      }
    })();
    const [sim] = await Promise.all([Promise.all(sims), seriesLoop, probeLoop]);
    const phaseCpu = await cpu();
    await sleep(plan.smoke ? 5_000 : 30_000); // the last spikes and probes may still be on their way
    const acknowledged = sim.reduce((t, s) => t + s.acknowledged, 0);
    const result = summarizeAlerts({
      arrivals,
      probes,
      spikes,
      steady: p.steadyTargets,
      spikeSeconds: p.spikeSeconds,
      detectWithinMs: 60_000,
    });
    b.results.alerts = {
      ...result,
      backgroundRate: p.backgroundRate,
      achievedRate: acknowledged / seconds,
      seconds,
      harnessFailures: failures.length,
      spikeFactor: p.spikeFactor,
      spikeSeconds: p.spikeSeconds,
      cpu: phaseCpu,
    };
    const r = b.results.alerts;
    progress(
      `alerts: notification p50 ${fmt(r.notificationMs.p50)} ms, p99 ${fmt(r.notificationMs.p99)} ms (${r.notificationMs.n} of ${r.probes} probes); ` +
        `spikes detected ${r.spikesDetected}/${r.spikes} within 60 s (median ${fmt(r.detectionSeconds.p50, 1)} s); false spike alerts ${r.falseSpikeAlerts}; ` +
        `simulators ${fmt(r.achievedRate)} of ${fmt(p.backgroundRate)} events/s${failures.length > 0 ? `; ${failures.length} harness requests refused (${failures[0]})` : ''}`,
    );
  } finally {
    socket.close();
    await deployment.stop('alerter');
  }
}

/** The rules of the phase: the probe milestone, the spike rule on the harness's series, the social demo's like spikes. */
async function createRules({ deployment }: Bench): Promise<void> {
  const sql = createPgDatabase({
    url: deployment.servers.pgUrl,
    readUrls: [],
    schema: deployment.ns.pgSchema,
    poolSize: 1,
  });
  try {
    const store = createSqlRuleStore({ sql });
    const recipients = { userIds: [], groups: [], targetOwner: false, dashboard: true };
    await store.create({
      name: 'bench probe milestone',
      eventType: PROBE_TYPE,
      recipients,
      condition: {
        kind: 'milestone',
        subject: { kind: 'target_prefix', value: 'probe/' },
        thresholds: [PROBE_MILESTONE],
      },
    });
    await store.create({
      name: 'bench spikes',
      eventType: SPIKE_TYPE,
      recipients,
      condition: { kind: 'spike', subject: { kind: 'target_prefix', value: 'spk/' }, ...SPIKE_RULE },
    });
    const likes = DEMO_RULES.social!.find((r) => r.spike)!;
    const { subject, ...parameters } = likes.spike!;
    await store.create({
      name: likes.name,
      eventType: likes.eventType,
      recipients,
      condition: {
        kind: 'spike',
        subject: { kind: 'target_prefix', value: subject.targetPrefix },
        ...parameters,
      },
    });
  } finally {
    await sql.close();
  }
}

/** A WebSocket on the gateway's stream, subscribed to the dashboard's notifications; arrivals appended. */
async function watchNotifications(url: string, arrivals: Arrival[]): Promise<WebSocket> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.on('message', (data) => {
    const atMs = Date.now();
    const message = JSON.parse(String(data)) as {
      channel?: string;
      notification?: { kind?: string; target?: string; message?: string };
    };
    if (message.channel === 'notification' && message.notification)
      arrivals.push({
        kind: message.notification.kind ?? '',
        target: message.notification.target ?? '',
        atMs,
        message: message.notification.message ?? '',
      });
  });
  socket.send(JSON.stringify({ op: 'subscribe', channel: 'notifications', recipient: 'dashboard' }));
  return socket;
}

/** What the arrivals say of the probes and the spikes (pure, for the test). */
export function summarizeAlerts(input: {
  arrivals: readonly Arrival[];
  probes: readonly { target: string; ackedMs: number }[];
  spikes: readonly { target: string; startMs: number }[];
  steady: number;
  spikeSeconds: number;
  detectWithinMs: number;
}): Omit<
  AlertsResult,
  'backgroundRate' | 'achievedRate' | 'seconds' | 'harnessFailures' | 'cpu' | 'spikeFactor' | 'spikeSeconds'
> {
  const first = new Map<string, number>();
  for (const a of input.arrivals) {
    const key = `${a.kind} ${a.target}`;
    if (!first.has(key)) first.set(key, a.atMs);
  }
  const latencies: number[] = [];
  for (const probe of input.probes) {
    const at = first.get(`milestone ${probe.target}`);
    if (at !== undefined) latencies.push(Math.max(0, at - probe.ackedMs));
  }
  const detections: number[] = [];
  let detected = 0;
  const spiky = new Set(input.spikes.map((s) => s.target));
  for (const spike of input.spikes) {
    const at = first.get(`spike ${spike.target}`);
    if (at === undefined || at < spike.startMs) continue;
    detections.push((at - spike.startMs) / 1000);
    if (at - spike.startMs <= input.detectWithinMs) detected++;
  }
  // A false alarm: a spike alert on a series given no spike, or on a spiky one before its spike.
  const falseAlarms: string[] = [];
  for (const a of input.arrivals) {
    if (a.kind !== 'spike') continue;
    const spike = input.spikes.find((s) => s.target === a.target);
    if (!spiky.has(a.target) || (spike && a.atMs < spike.startMs))
      falseAlarms.push(`${a.target}: ${a.message}`);
  }
  return {
    probes: input.probes.length,
    notificationMs: quantiles(latencies),
    spikes: input.spikes.length,
    spikesDetected: detected,
    detectionSeconds: quantiles(detections),
    falseSpikeAlerts: falseAlarms.length,
    falseAlarms: falseAlarms.slice(0, 10),
    steadySeries: input.steady,
  };
}

function quantiles(values: number[]): Quantiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}
