/** Phase `alerts` in the report: its section and summary rows. */
import { cpuEvidence } from '../lib/evidence.ts';
import { ms, num, type Push, pct } from '../lib/format.ts';
import type { Results } from '../lib/results.ts';
import type { SummaryRow } from '../lib/summary.ts';

/** Notification latency, spike detection and false alarms under the end-to-end load. */
export function alertRows(r: Results, rows: SummaryRow[]): void {
  const a = r.alerts;
  const under = a ? ` with the simulators at ${num(a.achievedRate)} events/s` : '';
  rows.push({
    label: 'Notification on the WebSocket, p99, at 5,000 events/s',
    measured: a ? `${ms(a.notificationMs.p99)} (p50 ${ms(a.notificationMs.p50)})${under}` : '—',
    target: '≤ 1 s',
    ok: a ? a.notificationMs.p99 <= 1000 && a.achievedRate >= 5000 * 0.95 : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: a ? cpuEvidence(a.cpu, 'During the phase') : undefined,
  });
  rows.push({
    label: 'Spikes (×10) detected within 60 s',
    measured: a ? `${a.spikesDetected} of ${a.spikes} (median ${num(a.detectionSeconds.p50, 1)} s)` : '—',
    target: '≥ 95 %',
    ok: a ? a.spikes > 0 && a.spikesDetected >= 0.95 * a.spikes : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
  });
  rows.push({
    label: 'Spike alerts on steady series, 10 minutes',
    measured: a ? `${a.falseSpikeAlerts} on ${a.steadySeries} steady series and the simulators' posts` : '—',
    target: '0',
    ok: a ? a.falseSpikeAlerts === 0 : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
  });
}

/** Phase `alerts`. */
export function renderAlerts(r: Results, push: Push): void {
  push('## Alerts', '');
  const a = r.alerts;
  if (!a) {
    push('Not measured.', '');
    return;
  }
  push(
    `\`bench/phases/alerts.ts\`: every role running, the alerter from the end of its backlog, the simulators sending ` +
      `${num(a.backgroundRate)} events/s over gRPC for ${num(a.seconds)} s (${num(a.achievedRate)} acknowledged a second). ` +
      'Meanwhile the harness takes a fresh target to a milestone rule in one acknowledged REST request every 2 s, and a ' +
      "WebSocket subscribed to the dashboard's notifications times each milestone's arrival from that acknowledgement; " +
      'and it drives spike series (one event type, a spike rule as the social demo has it: ten-minute half-life, one ' +
      'minute of warm-up, z ≥ 6, at least 20 in the minute and three times the usual), each spiky series in turn taking ' +
      `${num(a.spikeFactor)} times its rate for ${num(a.spikeSeconds)} s, the steady ones never. ` +
      "The like-spike rule of the social demo watches the simulators' posts, which get no spike either.",
    '',
  );
  push(
    `- Notifications: ${num(a.notificationMs.n)} of ${num(a.probes)} probes' milestones arrived; p50 ${ms(a.notificationMs.p50)}, ` +
      `p99 ${ms(a.notificationMs.p99)}, max ${ms(a.notificationMs.max)} after the acknowledgement.`,
    `- Spikes: ${a.spikesDetected} of ${a.spikes} (${pct(a.spikes > 0 ? (100 * a.spikesDetected) / a.spikes : 0)}) alerted within 60 s of their start; ` +
      `from the start to the alert p50 ${num(a.detectionSeconds.p50, 1)} s, max ${num(a.detectionSeconds.max, 1)} s.`,
    `- False alarms: ${a.falseSpikeAlerts} spike alerts on series given no spike${(a.falseAlarms ?? []).length > 0 ? ':' : '.'}${(a.falseAlarms ?? []).map((f) => `\n  - ${f}`).join('')}`,
    `- ${cpuEvidence(a.cpu, 'During the phase')}${a.harnessFailures > 0 ? ` ${num(a.harnessFailures)} harness requests were refused.` : ''}`,
    '',
  );
}
