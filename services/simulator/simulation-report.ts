/**
 * The simulator's human output: the live progress line and the end-of-run summary.
 */
import type { SimulateOptions } from './simulate-args.ts';
import type { SimulationSummary } from './simulator.ts';

export interface ProgressSnapshot {
  elapsedMs: number;
  sent: number;
  acknowledged: number;
  failed: number;
  /** Events sent again after a transient failure (each attempt counted). */
  retried: number;
  /** Failed events per code, in order of first appearance. */
  errorsByCode: [string, number][];
  /** Events sent per second since the previous line. */
  ratePerSecond: number;
  /** Latency percentiles of the requests answered since the previous line (0 when none). */
  p50Ms: number;
  p99Ms: number;
  inFlight: number;
  missed: number;
}

const count = (n: number): string => Math.round(n).toLocaleString('en-US');

/** `4.21 ms`, `11.3 ms`, `250 ms`, `1.52 s`. */
export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

function formatRate(perSecond: number): string {
  return perSecond >= 100 ? count(perSecond) : perSecond.toFixed(1);
}

/**
 * One line: `[  12.0s] sent 2,400 · acked 2,350 · errors 503×50 · 200/s · p50 3.12 ms · p99 12.4 ms · in flight 2`.
 */
export function formatProgress(s: ProgressSnapshot): string {
  const errors = s.failed === 0 ? '0' : s.errorsByCode.map(([code, n]) => `${code}×${count(n)}`).join(' ');
  const parts = [
    `[${(s.elapsedMs / 1000).toFixed(1).padStart(6)}s] sent ${count(s.sent)}`,
    `acked ${count(s.acknowledged)}`,
    `errors ${errors}`,
    ...(s.retried > 0 ? [`retried ${count(s.retried)}`] : []),
    `${formatRate(s.ratePerSecond)}/s`,
    `p50 ${formatMs(s.p50Ms)}`,
    `p99 ${formatMs(s.p99Ms)}`,
    `in flight ${s.inFlight}`,
  ];
  if (s.missed > 0) parts.push(`missed ${count(s.missed)}`);
  return parts.join(' · ');
}

const STOPPED: Record<SimulationSummary['stoppedBy'], string> = {
  duration: 'duration reached',
  total: 'total reached',
  signal: 'stopped by signal',
};

/** The multi-line end-of-run summary. */
export function formatSummary(s: SimulationSummary, options: SimulateOptions): string {
  const lines: string[] = [];
  const row = (label: string, text: string) => lines.push(`  ${label.padEnd(10)}  ${text}`);
  lines.push(
    `tally simulate: ${s.scenario} → ${s.target} (${s.transport}, batch ${options.batchSize}, concurrency ${options.concurrency})`,
  );
  row(
    'run',
    `${STOPPED[s.stoppedBy]} after ${(s.elapsedMs / 1000).toFixed(1)} s · seed ${s.seed} · run id ${s.runId}`,
  );
  row(
    'events',
    `${count(s.sent)} sent: ${count(s.acknowledged)} acknowledged, ${count(s.failed)} failed` +
      ` · ${count(s.missed)} missed of ${count(s.scheduled)} scheduled`,
  );
  row('rate', `${formatRate(s.achievedRatePerSecond)}/s achieved of ${formatRate(s.targetRatePerSecond)}/s`);
  row(
    'latency',
    s.requests.sent === 0
      ? 'no requests'
      : `p50 ${formatMs(s.latency.p50Ms)} · p90 ${formatMs(s.latency.p90Ms)} · p99 ${formatMs(s.latency.p99Ms)}` +
          ` · max ${formatMs(s.latency.maxMs)} (${count(s.requests.sent)} requests)`,
  );
  if (s.requests.sent > 0)
    row(
      'send lag',
      `p50 ${formatMs(s.sendLag.p50Ms)} · p99 ${formatMs(s.sendLag.p99Ms)} · max ${formatMs(s.sendLag.maxMs)}` +
        ' behind the schedule',
    );
  const types = Object.entries(s.byType).sort((a, b) => b[1].sent - a[1].sent);
  const typeWidth = Math.max(0, ...types.map(([type]) => type.length));
  types.forEach(([type, t], i) => {
    row(
      i === 0 ? 'by type' : '',
      `${type.padEnd(typeWidth)}  ${count(t.sent).padStart(11)} sent  ${count(t.acknowledged).padStart(11)} acknowledged`,
    );
  });
  row('targets', `${count(Object.keys(s.acknowledgedByTarget).length)} with acknowledged events`);
  Object.entries(s.errors).forEach(([code, e], i) => {
    row(
      i === 0 ? 'errors' : '',
      `${code}: ${count(e.events)} events in ${count(e.requests)} requests — ${e.messages.map((m) => JSON.stringify(m)).join(', ')}`,
    );
  });
  if (s.retries.requests > 0)
    row(
      'retries',
      `${count(s.retries.events)} events in ${count(s.retries.requests)} attempts sent again after ` +
        Object.entries(s.retries.byCode)
          .map(([code, n]) => `${code}×${count(n)}`)
          .join(' '),
    );
  if (s.ledgerPath !== undefined) row('ledger', `acknowledged events written to ${s.ledgerPath}`);
  if (s.missed > 0 && s.stoppedBy !== 'signal')
    row(
      'shortfall',
      `${count(s.missed)} due events were not sent: all ${options.concurrency} requests were in flight` +
        ' (raise --concurrency or --batch, or lower --rate)',
    );
  row('repeat', s.repeatCommand);
  return `${lines.join('\n')}\n`;
}
