/**
 * The benchmark harness's reckoning, on figures made up for the purpose: a CPU profile's samples
 * attributed to metrics code within a window, the verdict between the two Kafka clients (lower
 * bounds included), the cost of tracing and metrics against its target, the sinks' bookkeeping
 * extrapolated to a day, and the apply script as redis-benchmark runs it. No server needed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyScript, benchApplyScript } from '../bench/baselines/redis-bench.ts';
import { attribute, type CpuProfile, METRICS_CODE, readProfileOf } from '../bench/lib/cpu-profile.ts';
import { bytes, smallPct } from '../bench/lib/format.ts';
import type { CpuUse } from '../bench/lib/proc.ts';
import type {
  BookkeepingResult,
  BookkeepingSnapshot,
  KafkaClientsResult,
  LoadStep,
  OverheadResult,
  Series,
} from '../bench/lib/results.ts';
import { authCosts, pairedRatios } from '../bench/phases/auth.report.ts';
import { bookkeepingFigures } from '../bench/phases/bookkeeping.report.ts';
import {
  type ClientFigure,
  clientFigures,
  clientRatio,
  clientVerdict,
  faster,
} from '../bench/phases/kafka-clients.report.ts';
import { commonStep, observabilityCosts, observabilityMet } from '../bench/phases/overhead.report.ts';

const PROM = 'file:///repo/node_modules/prom-client/lib/histogram.js';
const METRICS = 'file:///repo/services/infra/metrics.ts';
const APP = 'file:///repo/services/ingest/ingest.ts';

/** root → (idle) 2, (program) 3, app 4 → prom-client 5, metrics.ts 6 → prom-client 7. */
function profile(samples: number[], startTime = 1_000): CpuProfile {
  const frame = (functionName: string, url = '') => ({ functionName, url });
  return {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3, 4] },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('(program)') },
      { id: 4, callFrame: frame('publish', APP), children: [5, 6] },
      { id: 5, callFrame: frame('observe', PROM) },
      { id: 6, callFrame: frame('timed', METRICS), children: [7] },
      { id: 7, callFrame: frame('inc', PROM) },
    ],
    startTime,
    endTime: startTime + samples.length * 1000,
    samples,
    timeDeltas: samples.map(() => 1000),
  };
}

test('a profile attributes busy samples to prom-client and metrics.ts by self time, inside the window', () => {
  // Samples at 2,000 … 11,000 µs.
  const p = profile([2, 2, 3, 4, 5, 5, 6, 7, 4, 2]);
  const all = attribute(p, METRICS_CODE);
  assert.equal(all.samples, 10);
  assert.equal(all.busy, 7, '(idle) is not busy; (program) is');
  assert.deepEqual(all.self, { promClient: 3, metricsModule: 1 });
  // 5, 5, 6, 7: a metrics frame on the stack; 4 (the caller) and (program) have none.
  assert.equal(all.inclusive, 4);
  // 5,000 … 8,000 µs: the samples 4, 5, 5, 6.
  const window = attribute(p, METRICS_CODE, 5_000, 8_000);
  assert.equal(window.samples, 4);
  assert.equal(window.busy, 4);
  assert.deepEqual(window.self, { promClient: 2, metricsModule: 1 });
});

test("a role's profile is found by its pid", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-profiles-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'CPU.20260101.101010.4242.0.001.cpuprofile'), JSON.stringify(profile([4])));
  writeFileSync(join(dir, 'CPU.20260101.101010.42.0.002.cpuprofile'), JSON.stringify(profile([5, 5])));
  assert.equal(readProfileOf(dir, 42)?.samples.length, 2);
  assert.equal(readProfileOf(dir, 4242)?.samples.length, 1);
  assert.equal(readProfileOf(dir, 7), undefined);
  assert.equal(readProfileOf(join(dir, 'missing'), 42), undefined);
});

const figure = (kafkajs: number, platformatic: number, bounds: Partial<ClientFigure> = {}): ClientFigure => ({
  figure: 'gRPC stream ingest',
  service: true,
  kafkajs,
  platformatic,
  ...bounds,
});

test('a figure favours a client beyond 10 %, and a lower bound only counts in its favour', () => {
  assert.equal(faster(figure(100, 120)), 'platformatic');
  assert.equal(faster(figure(100, 105)), 'even');
  assert.equal(faster(figure(100, 80)), 'kafkajs');
  // platformatic's search never failed: it may be faster still, never slower.
  assert.equal(faster(figure(100, 120, { platformaticBound: true })), 'platformatic');
  assert.equal(faster(figure(100, 100, { platformaticBound: true })), 'undecided');
  assert.equal(faster(figure(100, 80, { kafkajsBound: true })), 'kafkajs');
  assert.equal(faster(figure(100, 100, { kafkajsBound: true, platformaticBound: true })), 'undecided');
  assert.equal(clientRatio(figure(100, 120, { platformaticBound: true })), '≥ 120 %');
  assert.equal(clientRatio(figure(100, 80, { kafkajsBound: true })), '≤ 80 %');
});

test("the verdict names each client's figures and concludes from the service's own", () => {
  const verdict = clientVerdict([
    { figure: 'raw producer, 500 records per send', service: false, kafkajs: 100, platformatic: 300 },
    { ...figure(100, 130), figure: 'gRPC stream ingest' },
    { ...figure(100, 104), figure: 'counter alone' },
    { ...figure(100, 100, { kafkajsBound: true, platformaticBound: true }), figure: 'end to end' },
  ]);
  assert.match(
    verdict,
    /@platformatic\/kafka faster on raw producer, 500 records per send at 300 %, gRPC stream ingest at 130 %/,
  );
  assert.match(verdict, /even \(within 10 %\) on counter alone at 104 %/);
  assert.match(verdict, /undecided .* on end to end/);
  assert.match(verdict, /2 decided\) the run favours @platformatic\/kafka: faster on 1, slower on none/);
  const mixed = clientVerdict([
    { ...figure(100, 130), figure: 'gRPC stream ingest' },
    { ...figure(100, 70), figure: 'REST batch ingest' },
  ]);
  assert.match(mixed, /mixed: @platformatic\/kafka faster on 1, kafkajs on 1/);
  assert.equal(clientVerdict([]), 'No figure was measured with both clients.');
});

const cpu = (byGroup: Record<string, number>): CpuUse => ({
  byGroup,
  machineBusyPct: 50,
  cores: 2,
  otherPct: 0,
  waitByGroup: {},
  seconds: 10,
});

function step(rate: number, passed: boolean, events: number, byGroup: Record<string, number> = {}): LoadStep {
  return {
    rate,
    offeredEvents: events,
    achievedEvents: events,
    latency: { avg: 1, p50: 1, p90: 1, p95: 1, p99: 1, max: 1 },
    planned: rate * 10,
    dropped: 0,
    failedRate: 0,
    passed,
    why: passed ? '' : 'dropped',
    cpu: cpu(byGroup),
  };
}

function series(steps: LoadStep[], iteration = 'request'): Series {
  const best = steps.filter((s) => s.passed).sort((a, b) => b.rate - a.rate)[0];
  return { iteration, eventsPerIteration: 1, blowUpMs: 100, steps, best, columns: [] };
}

test('the Kafka client figures pair each client run by figure, with their bounds', () => {
  const k: KafkaClientsResult = {
    stepSeconds: 10,
    runs: [
      {
        client: 'kafkajs',
        library: 'kafkajs 2.2.4',
        grpcStream: series([step(26, true, 13_000), step(30, false, 14_000)]),
        catchUp: [],
        rawProducer: [],
      },
      {
        client: 'platformatic',
        library: '@platformatic/kafka 2.12.1',
        grpcStream: series([step(26, true, 13_000), step(30, true, 15_000)]),
        catchUp: [],
        rawProducer: [],
      },
    ],
  };
  const [grpc] = clientFigures(k).filter((f) => f.figure === 'gRPC stream ingest');
  assert.deepEqual(
    {
      kafkajs: grpc?.kafkajs,
      platformatic: grpc?.platformatic,
      bounds: [grpc?.kafkajsBound, grpc?.platformaticBound],
    },
    { kafkajs: 13_000, platformatic: 15_000, bounds: [false, true] },
  );
  assert.equal(faster(grpc!), 'platformatic');
});

test('tracing costs what it adds to the CPU per event at the same rate; metrics their share of the profile', () => {
  const o: OverheadResult = {
    stepSeconds: 10,
    off: {
      tracing: false,
      // ingest at 40 % of a core for 10,000 events/s: 40 µs an event.
      grpcStream: series([step(20, true, 10_000, { ingest: 40 }), step(23, false, 11_000)], 'stream of 500'),
      restSingle: series([step(1000, true, 1000, { gateway: 50, ingest: 30 }), step(1150, false, 1100)]),
      exported: { requests: 0, bytes: 0 },
      droppedSpans: 0,
    },
    on: {
      tracing: true,
      // 42 µs an event: 1 − 40 / 42 ≈ 4.8 %.
      grpcStream: series([step(20, true, 10_000, { ingest: 42 }), step(23, false, 11_000)], 'stream of 500'),
      // 100 µs an event against 80: 20 %.
      restSingle: series([step(1000, true, 1000, { gateway: 60, ingest: 40 }), step(870, true, 870)]),
      exported: { requests: 10, bytes: 1000 },
      droppedSpans: 0,
    },
    tracingEnv: {},
    profileShare: 0.7,
    profiles: [
      {
        load: 'gRPC stream',
        step: step(14, true, 7000),
        processes: [
          {
            role: 'ingest',
            samples: 1000,
            busy: 500,
            promClient: 8,
            metricsModule: 2,
            inclusive: 20,
            share: 0.02,
          },
        ],
      },
      {
        load: 'REST single',
        step: step(700, true, 700),
        processes: [
          {
            role: 'gateway',
            samples: 1000,
            busy: 600,
            promClient: 25,
            metricsModule: 5,
            inclusive: 50,
            share: 0.05,
          },
          {
            role: 'ingest',
            samples: 1000,
            busy: 400,
            promClient: 10,
            metricsModule: 0,
            inclusive: 20,
            share: 0.025,
          },
        ],
      },
    ],
    profileDir: '/tmp',
  };
  const [grpc, rest] = observabilityCosts(o);
  assert.ok(Math.abs(grpc!.tracingCpu! - (1 - 40 / 42)) < 1e-9);
  // Both searches found their maximum (a step failed above each): the same, no cost.
  assert.equal(grpc!.tracingMax, 0);
  assert.equal(grpc!.metrics, 10 / 500);
  assert.ok(Math.abs(grpc!.combined! - (1 - (40 / 42) * 0.98)) < 1e-9);
  assert.ok(Math.abs(rest!.tracingCpu! - 0.2) < 1e-9);
  // With tracing on, no step of the REST search failed: its maximum is only a lower bound.
  assert.equal(rest!.tracingMax, undefined);
  // The path's samples together: (25 + 5 + 10) / (600 + 400).
  assert.equal(rest!.metrics, 0.04);
  assert.equal(observabilityMet([grpc!]), true);
  assert.equal(observabilityMet([grpc!, rest!]), false);
  assert.equal(observabilityMet([{ ...grpc!, combined: undefined }]), undefined);
});

test('CPU per event compares at the highest rate both series passed', () => {
  const a = series([step(10, true, 10), step(20, true, 20), step(30, false, 25)]);
  const b = series([step(10, true, 10), step(20, true, 20), step(30, true, 30)]);
  assert.deepEqual(
    commonStep(a, b)?.map((s) => s.rate),
    [20, 20],
  );
  const c = series([step(15, false, 10)]);
  assert.equal(commonStep(a, c), undefined);
});

/** A bookkeeping snapshot with `marks` bytes of marks over `fields` fields and `others` bytes of other keys. */
function held(
  events: number,
  usedMemory: number,
  others: number,
  marks: number,
  fields: number,
): BookkeepingSnapshot {
  return {
    events,
    redis: {
      usedMemory,
      keys: { counts: 10, sums: 5, marks: 10, leaderboards: 2, uniques: 0, aggregates: 0 },
      bytes: { counts: others, sums: 0, marks, leaderboards: 0, uniques: 0, aggregates: 0 },
      markFields: fields,
      counted: events,
    },
    pg: [],
    offsetRows: 12,
  };
}

test('a day of bookkeeping: what was held, with the marks at full occupancy, against a marker per event', () => {
  const bk: BookkeepingResult = {
    partitions: 12,
    targets: 10,
    start: held(0, 1_000_000, 0, 0, 0),
    // 60 of the 120 (target, partition) pairs marked, then 90.
    snapshots: [held(100_000, 1_003_000, 1_000, 1_200, 60), held(400_000, 1_003_600, 1_100, 1_620, 90)],
    markers: { events: 100_000, usedMemory: 16_000_000, bytes: 14_000_000, ttlMs: 86_400_000 },
    seenRows: { events: 100_000, bytes: 20_000_000 },
  };
  const f = bookkeepingFigures(bk)!;
  assert.equal(f.dayEvents, 1_728_000_000);
  assert.deepEqual(
    f.points.map((p) => [p.events, p.usedGrowth, p.keysBytes, p.marksBytes, p.pairsShare]),
    [
      [100_000, 3_000, 2_200, 1_200, 0.5],
      [400_000, 3_600, 2_720, 1_620, 0.75],
    ],
  );
  // 18 bytes per mark (the hash's own overhead spread over its fields) × 120 pairs.
  assert.equal(f.marksFull, 2_160);
  // used_memory grew by 3,600, more than the keys' 2,720: the larger, and the marks still missing.
  assert.equal(f.nowDay, 3_600 + (2_160 - 1_620));
  assert.equal(f.perTarget, 414);
  assert.equal(f.markerPerEvent, 160);
  assert.equal(f.beforeDay, 1_100 + 160 * 1_728_000_000);
  assert.equal(f.seenDay, 200 * 1_728_000_000);
  // The bound is never below what was measured.
  const full = bookkeepingFigures({ ...bk, snapshots: [held(100_000, 1_003_000, 1_000, 5_000, 120)] })!;
  assert.equal(full.marksFull, 5_000);
  assert.equal(bookkeepingFigures({ ...bk, snapshots: [] }), undefined);
  assert.equal(bytes(276_480_001_100), '276 GB');
  assert.equal(bytes(1e9), '1 GB');
  assert.equal(bytes(4_140), '4.1 kB');
  assert.equal(smallPct(4_140 / 276_480_001_100), '0.0000015 %');
});

test("redis-benchmark runs the counter store's apply script with offsets relative to the mark", () => {
  const script = benchApplyScript(applyScript(join(import.meta.dirname, '..')));
  // Everything but how an offset is read is the store's own.
  assert.match(script, /local offset = mark \+ tonumber\(ARGV\[a\]\)/);
  assert.equal(
    script.replace('mark + tonumber(ARGV[a])', 'tonumber(ARGV[a])'),
    applyScript(join(import.meta.dirname, '..')),
  );
  assert.throws(() => benchApplyScript('return 1'), /update bench\/baselines\/redis-bench.ts/);
});

test('access control costs 1 − the geometric mean of the paired rounds, not the searches minutes apart', () => {
  // The searches drifted: the stage with access control on ran on a busier machine (40 % more CPU
  // per event); the paired rounds, run side by side, put the cost at about 2 %.
  const at = (rate: number, events: number, gateway: number, ingest: number) =>
    step(rate, true, events, { gateway, ingest });
  const searchOff = series([at(240, 24_000, 40, 70)]);
  const searchOn = series([at(240, 24_000, 56, 98)]);
  const paired = {
    load: 'restBatch' as const,
    rate: 240,
    off: [at(240, 24_000, 40, 70), at(240, 24_000, 44, 70), at(240, 24_000, 40, 66)],
    on: [at(240, 24_000, 41, 72), at(240, 24_000, 40, 70), at(240, 24_000, 42, 68)],
  };
  const auth = {
    stepSeconds: 10,
    off: { on: false, restBatch: searchOff },
    on: { on: true, restBatch: searchOn },
    rateLimitEnv: {},
    key: { kind: 'secret', scopes: ['ingest'], id: 'k' },
  };
  const bySearch = authCosts(auth).find((c) => c.load === 'REST batch')!;
  assert.ok(Math.abs(bySearch.cost! - (1 - 110 / 154)) < 1e-9, `${bySearch.cost}`);
  const byRounds = authCosts({ ...auth, paired: [paired] }).find((c) => c.load === 'REST batch')!;
  assert.deepEqual(
    byRounds.rounds!.map((q) => q.toFixed(4)),
    [110 / 113, 114 / 110, 106 / 110].map((q) => q.toFixed(4)),
  );
  const mean = Math.cbrt((110 / 113) * (114 / 110) * (106 / 110));
  assert.ok(Math.abs(byRounds.cost! - (1 - mean)) < 1e-9, `the geometric mean: ${byRounds.cost}`);
  // A round whose step failed on a few drops counts; one whose step carried under 95 % does not.
  paired.on[0] = { ...paired.on[0]!, passed: false, achievedEvents: 23_000 };
  assert.equal(pairedRatios(paired, ['gateway', 'ingest']).length, 3);
  paired.on[1] = { ...paired.on[1]!, passed: false, achievedEvents: 22_000 };
  assert.equal(pairedRatios(paired, ['gateway', 'ingest']).length, 2);
});
