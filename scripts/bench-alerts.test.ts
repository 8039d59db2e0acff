/** The alerts phase's reading of what arrived (bench/phases/alerts.ts `summarizeAlerts`). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarizeAlerts } from '../bench/phases/alerts.ts';

test('probe latency from the acknowledgement to the first arrival; spikes detected within the bound; false alarms counted', () => {
  const r = summarizeAlerts({
    arrivals: [
      { kind: 'milestone', target: 'probe/0', atMs: 1_250, message: 'm probe/0' },
      { kind: 'milestone', target: 'probe/0', atMs: 1_900, message: 'm probe/0' }, // a repeat: the first counts
      { kind: 'milestone', target: 'probe/1', atMs: 3_400, message: 'm probe/1' },
      { kind: 'spike', target: 'spk/spiky-0', atMs: 70_000, message: 'm spk/spiky-0' }, // 20 s after its start
      { kind: 'spike', target: 'spk/spiky-1', atMs: 160_000, message: 'm spk/spiky-1' }, // 90 s after: late
      { kind: 'spike', target: 'spk/spiky-2', atMs: 10_000, message: 'm spk/spiky-2' }, // before its spike: a false alarm
      { kind: 'spike', target: 'spk/steady-0', atMs: 80_000, message: 'm spk/steady-0' }, // a steady series: a false alarm
      { kind: 'spike', target: 'post/3', atMs: 90_000, message: 'm post/3' }, // a simulated post: a false alarm
    ],
    probes: [
      { target: 'probe/0', ackedMs: 1_000 },
      { target: 'probe/1', ackedMs: 3_000 },
      { target: 'probe/2', ackedMs: 5_000 }, // never arrived
    ],
    spikes: [
      { target: 'spk/spiky-0', startMs: 50_000 },
      { target: 'spk/spiky-1', startMs: 70_000 },
      { target: 'spk/spiky-2', startMs: 100_000 },
    ],
    steady: 1,
    spikeSeconds: 30,
    detectWithinMs: 60_000,
  });
  assert.equal(r.probes, 3);
  assert.deepEqual(r.notificationMs, { n: 2, p50: 250, p99: 400, max: 400 });
  assert.equal(r.spikes, 3);
  assert.equal(r.spikesDetected, 1);
  assert.deepEqual(r.detectionSeconds, { n: 2, p50: 20, p99: 90, max: 90 });
  assert.equal(r.falseSpikeAlerts, 3);
  assert.deepEqual(r.falseAlarms, [
    'spk/spiky-2: m spk/spiky-2',
    'spk/steady-0: m spk/steady-0',
    'post/3: m post/3',
  ]);
});
