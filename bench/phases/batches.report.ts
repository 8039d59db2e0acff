/** Phases `rest-batch` and `grpc-stream` in the report: their section and summary rows. */
import { boundNote, costEvidence, stepEvidence } from '../lib/evidence.ts';
import { loadTable, ms, num, type Push, pct, ratio } from '../lib/format.ts';
import { KAFKA_LIBRARY, type Results, type Series } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';

function rawFor(results: Results, series: Series | undefined) {
  const mean = series?.best?.writes?.meanEvents;
  if (mean === undefined)
    return results.rawProducer.find((r) => r.batch === results.setup.maxProduceBatchEvents);
  return results.rawProducer.find((r) => r.batch === Math.round(mean));
}

/** REST batches and gRPC streams against the raw producer. */
export function ingestRows(r: Results, rows: SummaryRow[]): void {
  for (const [label, series] of [
    ['REST batch ingest', r.restBatch],
    ['gRPC stream ingest', r.grpcStream],
  ] as const) {
    const best = series?.best;
    const raw = rawFor(r, series);
    const q = ratio(best?.achievedEvents, raw?.eventsPerSecond);
    rows.push({
      label,
      measured: best ? `${num(best.achievedEvents)} events/s${boundNote(series!.steps, best)}` : '—',
      target: `≥ ${num(TARGETS.batchEventsPerSecond)} events/s`,
      ok: best ? best.achievedEvents >= TARGETS.batchEventsPerSecond : undefined,
      baseline: raw
        ? `${KAFKA_LIBRARY[raw.client ?? 'kafkajs']} alone, ${num(raw.batch)} records per send: ${num(raw.eventsPerSecond)} events/s`
        : '—',
      ratio: q === undefined ? '—' : pct(q * 100),
      ratioTarget: `≥ ${pct(TARGETS.ingestVsRawProducer * 100)}`,
      ratioOk: q === undefined ? undefined : q >= TARGETS.ingestVsRawProducer,
      limit:
        series &&
        [
          stepEvidence(series.steps, best, (s) => `${num(s.offeredEvents)} events/s offered`),
          costEvidence(best?.cpu, best?.achievedEvents, series.columns),
          raw
            ? costEvidence(raw.cpu, raw.eventsPerSecond, ['raw-producer', 'kafka']).replace(
                'CPU per event',
                'The raw producer: CPU per event',
              )
            : '',
        ]
          .filter(Boolean)
          .join(' '),
    });
  }
}

/** Phases `rest-batch` and `grpc-stream`, and the load tests' own scripts at their maxima. */
export function renderBatches(r: Results, push: Push): void {
  push('## REST batches and gRPC streams', '');
  const prebuilt =
    "except that each VU builds its events once and each iteration only stamps its own ids into them: generating every event in k6's JavaScript costs the load generator about as much CPU as ingesting it costs Tally or more (see the comparison below), which on one machine would cap the figure";
  for (const [title, series, how, same, script] of [
    [
      'REST batches',
      r.restBatch,
      `\`bench/rest-batch-prebuilt.js\` (\`POST /v1/events:batch\`) against the gateway: the load tests' REST batch script (the same mix, settings, checks and summary) ${prebuilt}`,
      r.restBatchLoadtestScript,
      'loadtest/rest-batch.js',
    ],
    [
      'gRPC client streams',
      r.grpcStream,
      `\`bench/grpc-stream-prebuilt.js\` (\`IngestService/PublishStream\`) straight to ingest: the load tests' stream script ${prebuilt}`,
      r.grpcStreamLoadtestScript,
      'loadtest/grpc-stream.js',
    ],
  ] as const) {
    push(`### ${title}`, '');
    if (!series) {
      push('Not measured.', '');
      continue;
    }
    const unit = series.iteration.startsWith('batch') ? 'batches' : 'streams';
    push(
      `${how}. One ${series.iteration} per iteration, ${r.setup.stepSeconds} s per step; a step blows up past a p99 of ${num(series.blowUpMs)} ms (5 × the load tests' bound of 20 ms + 1 ms per event).`,
      '',
      loadTable(series, unit),
      '',
    );
    if (same)
      push(
        `The load tests' own \`${script}\` at the same ${num(same.rate)} ${unit}/s: ${num(same.achievedEvents)} events/s acknowledged, ` +
          `p99 ${ms(same.latency.p99)}, ${num(same.dropped)} of ${num(same.planned)} dropped (${same.passed ? 'pass' : `fail: ${same.why}`}); ` +
          `k6 used ${pct(same.cpu.byGroup.k6)} of a core, against ${pct(series.best?.cpu.byGroup.k6)} with events built once.`,
        '',
      );
  }
}
