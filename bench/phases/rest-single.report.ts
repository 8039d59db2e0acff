/** Phases `bare-http` and `rest-single` in the report: their section and summary rows. */
import { boundNote, costEvidence, cpuEvidence, stepEvidence } from '../lib/evidence.ts';
import { loadTable, ms, num, type Push, pct, ratio } from '../lib/format.ts';
import type { Results } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';

/** REST single events against the bare HTTP server, and their p99 at 70 % of the maximum. */
export function restSingleRows(r: Results, rows: SummaryRow[]): void {
  const single = r.restSingle?.best;
  const bare = r.bareHttp?.best;
  const singleRatio = ratio(single?.achievedEvents, bare?.achievedEvents);
  rows.push({
    label: 'REST single, sustained',
    measured: single
      ? `${num(single.achievedEvents)} events/s${boundNote(r.restSingle!.steps, single)}`
      : '—',
    target: `≥ ${num(TARGETS.restSingleEventsPerSecond)} events/s`,
    ok: single ? single.achievedEvents >= TARGETS.restSingleEventsPerSecond : undefined,
    baseline: bare ? `bare Node HTTP: ${num(bare.achievedEvents)} requests/s` : '—',
    ratio: singleRatio === undefined ? '—' : pct(singleRatio * 100),
    ratioTarget: `≥ ${pct(TARGETS.gatewayVsBareHttp * 100)}`,
    ratioOk: singleRatio === undefined ? undefined : singleRatio >= TARGETS.gatewayVsBareHttp,
    limit:
      r.restSingle &&
      [
        stepEvidence(r.restSingle.steps, single, (s) => `${num(s.rate)} requests/s offered`),
        costEvidence(single?.cpu, single?.achievedEvents, ['gateway', 'ingest', 'kafka', 'k6'], 'request'),
        bare
          ? `The bare HTTP server at its best step: ${costEvidence(bare.cpu, bare.achievedEvents, ['bare-http', 'k6'], 'request')}`
          : '',
      ]
        .filter(Boolean)
        .join(' '),
  });
  const at70 = r.at70;
  rows.push({
    label: 'REST single, p99 at 70 % of max',
    measured: at70 ? `${ms(at70.latency.p99)} at ${num(at70.rate)} requests/s` : '—',
    target: `≤ ${TARGETS.restSingleP99MsAt70} ms`,
    ok: at70 ? at70.latency.p99 <= TARGETS.restSingleP99MsAt70 : undefined,
    baseline: '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: at70
      ? `${cpuEvidence(at70.cpu, `At ${num(at70.rate)} requests/s (70 % of the maximum)`)}${at70.writes ? ` Ingest's Kafka writes took ${ms(at70.writes.p99Ms)} at p99 (${num(at70.writes.meanEvents, 1)} events per write): the acknowledgement waits for one.` : ''}`
      : undefined,
  });
}

/** Phases `rest-single` and `bare-http`: the latency table of each step, and 70 % of the maximum. */
export function renderRestSingle(r: Results, push: Push): void {
  push('## REST single events: latency against offered load', '');
  if (r.restSingle) {
    push(
      `\`loadtest/rest-single.js\` against the gateway (\`POST /v1/events\`, one event per request, acknowledged once Kafka holds it), ` +
        `${r.setup.stepSeconds} s per step. A step passes when at most 1 % of its iterations were dropped (every VU busy), at most ` +
        `0.1 % failed, and p99 stayed under ${num(r.restSingle.blowUpMs)} ms; the maximum is the best passing step.`,
      '',
      loadTable(r.restSingle, 'requests'),
      '',
    );
  } else push('Not measured.', '');
  if (r.at70)
    push(
      `At 70 % of the maximum (${num(r.at70.rate)} requests/s for ${num(r.at70.planned / Math.max(1, r.at70.rate))} s): ` +
        `${num(r.at70.achievedEvents)} events/s acknowledged, p50 ${ms(r.at70.latency.p50)}, p90 ${ms(r.at70.latency.p90)}, ` +
        `p99 ${ms(r.at70.latency.p99)}, max ${ms(r.at70.latency.max)}, ${num(r.at70.dropped)} dropped, ${pct(r.at70.failedRate * 100, 2)} failed` +
        `${r.at70.writes ? `; ${num(r.at70.writes.meanEvents, 1)} events per Kafka write, ${num(r.at70.writes.perSecond)} writes/s, write p99 ${ms(r.at70.writes.p99Ms)}` : ''}. ` +
        `CPU: ${Object.entries(r.at70.cpu.byGroup)
          .filter(([, x]) => x >= 3)
          .sort((a, b) => b[1] - a[1])
          .map(([g, x]) => `${g} ${pct(x)}`)
          .join(', ')}; machine ${pct(r.at70.cpu.machineBusyPct)} busy.`,
      '',
    );
  push(
    '### Baseline: a bare Node.js HTTP server',
    '',
    '`bench/baselines/bare-http.ts` answers `POST /v1/events` as the gateway does on the wire (parses the JSON, answers `{"id"}`), ' +
      'with nothing behind it, under the same k6 script and the same steps.',
    '',
    r.bareHttp ? loadTable(r.bareHttp, 'requests') : 'Not measured.',
    '',
  );
}
