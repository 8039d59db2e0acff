/**
 * Phase `kafka-clients` in the report: the figures measured with both clients, the verdict
 * between them, its section and summary row.
 */
import { boundNote, maximum } from '../lib/evidence.ts';
import { micros, ms, num, type Push, pct, quant, ratio, stepList, table } from '../lib/format.ts';
import {
  type E2eSeries,
  KAFKA_LIBRARY,
  type KafkaClient,
  type KafkaClientRun,
  type KafkaClientsResult,
  type Results,
} from '../lib/results.ts';
import type { SummaryRow } from '../lib/summary.ts';

/**
 * Two figures closer than this (as a ratio) count as even: the searches' steps are 15 % apart,
 * and the machine is shared.
 */
export const EVEN_WITHIN = 0.1;

/** One figure of both clients (a rate: higher is better). */
export interface ClientFigure {
  figure: string;
  /** Ingest, sinks and end to end; the libraries alone are not. */
  service: boolean;
  /** Records per send, for the libraries alone. */
  batch?: number;
  kafkajs: number | undefined;
  platformatic: number | undefined;
  /** Each client's figure is only a lower bound (a search none of whose steps failed). */
  kafkajsBound?: boolean;
  platformaticBound?: boolean;
}

const runOf = (k: KafkaClientsResult, client: KafkaClient): KafkaClientRun | undefined =>
  k.runs.find((r) => r.client === client);

/** Every figure measured with both clients, in the report's order. */
export function clientFigures(k: KafkaClientsResult): ClientFigure[] {
  const a = runOf(k, 'kafkajs');
  const b = runOf(k, 'platformatic');
  const out: ClientFigure[] = [];
  for (const raw of a?.rawProducer ?? [])
    out.push({
      figure: `raw producer, ${num(raw.batch)} records per send`,
      service: false,
      batch: raw.batch,
      kafkajs: raw.eventsPerSecond,
      platformatic: b?.rawProducer.find((x) => x.batch === raw.batch)?.eventsPerSecond,
    });
  const searches = [
    ['gRPC stream ingest', (r: KafkaClientRun | undefined) => r?.grpcStream],
    ['REST batch ingest', (r: KafkaClientRun | undefined) => r?.restBatch],
  ] as const;
  for (const [figure, of] of searches) {
    const x = maximum(of(a));
    const y = maximum(of(b));
    out.push({
      figure,
      service: true,
      kafkajs: x.value,
      platformatic: y.value,
      kafkajsBound: x.bound,
      platformaticBound: y.bound,
    });
  }
  for (const c of a?.catchUp ?? [])
    out.push({
      figure: `${c.role} alone`,
      service: true,
      kafkajs: c.eventsPerSecond,
      platformatic: b?.catchUp.find((x) => x.role === c.role)?.eventsPerSecond,
    });
  if (a?.e2e || b?.e2e) {
    const x = maximum(a?.e2e);
    const y = maximum(b?.e2e);
    out.push({
      figure: 'end to end',
      service: true,
      kafkajs: x.value,
      platformatic: y.value,
      kafkajsBound: x.bound,
      platformaticBound: y.bound,
    });
  }
  return out;
}

/**
 * Which client a figure favours, `even` within EVEN_WITHIN, `undecided` when a lower bound
 * leaves it open (a client whose search never failed may be faster than it shows).
 */
export function faster(f: ClientFigure): KafkaClient | 'even' | 'undecided' | undefined {
  const q = ratio(f.platformatic, f.kafkajs);
  if (q === undefined || !Number.isFinite(q)) return undefined;
  const verdict = q >= 1 + EVEN_WITHIN ? 'platformatic' : q <= 1 / (1 + EVEN_WITHIN) ? 'kafkajs' : 'even';
  // A bound holds only for the client it is below: the other can only be ahead by more.
  if (f.kafkajsBound && f.platformaticBound) return 'undecided';
  if (f.platformaticBound && verdict !== 'platformatic') return 'undecided';
  if (f.kafkajsBound && verdict !== 'kafkajs') return 'undecided';
  return verdict;
}

/** `115 %`, `≥ 115 %` (platformatic's figure a lower bound), `≤ 90 %` (kafkajs's). */
export function clientRatio(f: ClientFigure): string {
  const q = ratio(f.platformatic, f.kafkajs);
  if (q === undefined) return '—';
  if (f.kafkajsBound && f.platformaticBound) return `${pct(q * 100)} (both lower bounds)`;
  return `${f.platformaticBound ? '≥ ' : f.kafkajsBound ? '≤ ' : ''}${pct(q * 100)}`;
}

/** The verdict line: which client is faster on which figure, and what the service's figures favour. */
export function clientVerdict(figures: ClientFigure[]): string {
  const judged = figures.filter((f) => faster(f) !== undefined);
  if (judged.length === 0) return 'No figure was measured with both clients.';
  const list = (who: ReturnType<typeof faster>) =>
    judged
      .filter((f) => faster(f) === who)
      .map((f) => `${f.figure} at ${clientRatio(f)}`)
      .join(', ');
  const parts = [
    list('platformatic') && `${KAFKA_LIBRARY.platformatic} faster on ${list('platformatic')}`,
    list('kafkajs') && `kafkajs faster on ${list('kafkajs')}`,
    list('even') && `even (within ${pct(EVEN_WITHIN * 100)}) on ${list('even')}`,
    list('undecided') && `undecided (a search found no maximum) on ${list('undecided')}`,
  ].filter(Boolean);
  // The service's own figures decide; a library alone is not what the roles do.
  const service = judged.filter((f) => f.service && faster(f) !== 'undecided');
  const wins = (who: KafkaClient) => service.filter((f) => faster(f) === who).length;
  const p = wins('platformatic');
  const k = wins('kafkajs');
  const on = `On the service's own figures (ingest, sinks, end to end: ${service.length} decided)`;
  const conclusion =
    service.length === 0
      ? 'No figure of the service itself decides between them.'
      : p > 0 && k === 0
        ? `${on} the run favours ${KAFKA_LIBRARY.platformatic}: faster on ${p}, slower on none.`
        : k > 0 && p === 0
          ? `${on} the run favours kafkajs: faster on ${k}, slower on none.`
          : p === 0 && k === 0
            ? `${on} neither client is faster by more than ${pct(EVEN_WITHIN * 100)}.`
            : `${on} the run is mixed: ${KAFKA_LIBRARY.platformatic} faster on ${p}, kafkajs on ${k}.`;
  return `${parts.join('; ')}. ${conclusion}`;
}

/** The Kafka clients compared. */
export function kafkaClientRows(r: Results, rows: SummaryRow[]): void {
  const figures = r.kafkaClients ? clientFigures(r.kafkaClients) : [];
  const service = figures.filter((f) => f.service);
  const raws = figures.filter((f) => !f.service);
  rows.push({
    label: 'Kafka client, @platformatic/kafka ÷ kafkajs',
    measured: service.length > 0 ? service.map((f) => `${f.figure} ${clientRatio(f)}`).join(', ') : '—',
    target: '—',
    ok: undefined,
    baseline:
      raws.length > 0
        ? `the libraries alone, records per send: ${raws.map((f) => `${num(f.batch)} ${clientRatio(f)}`).join(', ')}`
        : '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
  });
}

/** A row of ratios: `platformatic ÷ kafkajs`, each cell the quotient of the two runs' cells. */
function ratioCell(a: number | undefined, b: number | undefined): string {
  const q = ratio(b, a);
  return q === undefined ? '—' : pct(q * 100);
}

/** Phase `kafka-clients`: how the clients were compared, the verdict, then each figure with both. */
export function renderKafkaClients(r: Results, push: Push): void {
  push('## Kafka client: kafkajs against @platformatic/kafka', '');
  const k = r.kafkaClients;
  if (!k || k.runs.length === 0) {
    push('Not measured.', '');
    return;
  }
  const a = runOf(k, 'kafkajs');
  const b = runOf(k, 'platformatic');
  const name = (run: KafkaClientRun) => run.library;
  push(
    `The roles restarted with each client in turn (\`TALLY_KAFKA_CLIENT=kafkajs\`, then \`platformatic\`: ${k.runs.map(name).join(', ')}), ` +
      `on the same figures with the same steps: ingest's maxima (gRPC streams straight to ingest, REST batches through the gateway, ${num(k.stepSeconds)} s per step, ` +
      "starting a step below the maxima of the phases above, in finer steps); each consumer role alone on the backlog that client's own ingest steps wrote " +
      "(in consumer groups of the client's own, set to the end of the topics they read before its ingest steps: the persister first, on events no sink had seen, " +
      'then the counter and the aggregator on what that persister forwarded to the accepted topic)' +
      `${k.e2eStepSeconds ? `; end to end with the simulators (${num(k.e2eStepSeconds)} s per step)` : ''}; ` +
      "and each library's producer alone (`bench/baselines/raw-producer.ts --client`) at the sizes of ingest's writes with the first client. The clients ran one after the other, so a shared machine's other work weighs on each differently; " +
      `a ratio within ${pct(EVEN_WITHIN * 100)} of 100 % counts as even.`,
    '',
  );
  const figures = clientFigures(k);
  push(`**Verdict.** ${clientVerdict(figures)}`, '');

  renderClientRawProducers(a, b, push);
  renderClientIngest(figures, a, b, push);
  renderClientSinks(a, b, push);
  renderClientE2e(figures, a, b, push);
}

/** Each library alone at the write sizes of the first client's ingest. */
function renderClientRawProducers(
  a: KafkaClientRun | undefined,
  b: KafkaClientRun | undefined,
  push: Push,
): void {
  push('### Raw producer', '');
  const sizes = a?.rawProducer ?? [];
  push(
    sizes.length === 0
      ? 'Not measured.'
      : table(
          [
            'records per send',
            'mirrors',
            'kafkajs events/s',
            '@platformatic/kafka events/s',
            'platformatic ÷ kafkajs',
            'send p99 kafkajs / platformatic',
            'producer CPU per event kafkajs / platformatic',
          ],
          sizes.map((x) => {
            const y = b?.rawProducer.find((z) => z.batch === x.batch);
            const perEvent = (run: typeof x | undefined) =>
              run && run.eventsPerSecond > 0 && run.cpu.seconds > 0
                ? micros(((run.cpu.byGroup['raw-producer'] ?? 0) / 100 / run.eventsPerSecond) * 1e6)
                : '—';
            return [
              num(x.batch),
              x.mirrors,
              num(x.eventsPerSecond),
              num(y?.eventsPerSecond),
              ratioCell(x.eventsPerSecond, y?.eventsPerSecond),
              `${ms(x.sendP99Ms)} / ${ms(y?.sendP99Ms)}`,
              `${perEvent(x)} / ${perEvent(y)}`,
            ];
          }),
        ),
    '',
  );
}

/** The gRPC stream and REST batch searches with each client. */
function renderClientIngest(
  figures: ClientFigure[],
  a: KafkaClientRun | undefined,
  b: KafkaClientRun | undefined,
  push: Push,
): void {
  for (const [title, figureName, key, unit, groups] of [
    ['Ingest: gRPC streams', 'gRPC stream ingest', 'grpcStream', 'streams', ['ingest', 'kafka']],
    ['Ingest: REST batches', 'REST batch ingest', 'restBatch', 'batches', ['gateway', 'ingest', 'kafka']],
  ] as const) {
    push(`### ${title}`, '');
    const sa = a?.[key];
    const sb = b?.[key];
    if (!sa && !sb) {
      push('Not measured.', '');
      continue;
    }
    const row = (run: KafkaClientRun | undefined) => {
      const series = run?.[key];
      const best = series?.best;
      return [
        run ? KAFKA_LIBRARY[run.client] : '—',
        best ? `${num(best.achievedEvents)}${boundNote(series!.steps, best) ? ' (lower bound)' : ''}` : '—',
        ms(best?.latency.p99),
        best?.writes ? num(best.writes.meanEvents, 1) : '—',
        ...groups.map((g) =>
          best && best.achievedEvents > 0 && best.cpu.seconds > 0
            ? micros(((best.cpu.byGroup[g] ?? 0) / 100 / best.achievedEvents) * 1e6)
            : '—',
        ),
        series ? stepList(series.steps) : '—',
      ];
    };
    const figure = figures.find((f) => f.figure === figureName);
    push(
      table(
        [
          'client',
          'max events/s',
          'p99 at the max',
          'events per Kafka write',
          ...groups.map((g) => `${g} CPU per event`),
          `steps (offered ${unit}/s)`,
        ],
        [
          row(a),
          row(b),
          ['platformatic ÷ kafkajs', figure ? clientRatio(figure) : '—', '', '', ...groups.map(() => ''), ''],
        ],
      ),
      '',
    );
  }
}

/** The sinks catching up with each client. */
function renderClientSinks(a: KafkaClientRun | undefined, b: KafkaClientRun | undefined, push: Push): void {
  push('### Sinks', '');
  const roles = a?.catchUp ?? [];
  push(
    roles.length === 0
      ? 'Not measured.'
      : table(
          [
            'role',
            'kafkajs events/s',
            '@platformatic/kafka events/s',
            'platformatic ÷ kafkajs',
            'its CPU per event kafkajs / platformatic',
            'events handled kafkajs / platformatic',
          ],
          roles.map((x) => {
            const y = b?.catchUp.find((z) => z.role === x.role);
            const perEvent = (c: typeof x | undefined) =>
              c && c.eventsPerSecond > 0
                ? micros(((c.cpu.byGroup[c.role] ?? 0) / 100 / c.eventsPerSecond) * 1e6)
                : '—';
            return [
              x.role,
              num(x.eventsPerSecond),
              num(y?.eventsPerSecond),
              ratioCell(x.eventsPerSecond, y?.eventsPerSecond),
              `${perEvent(x)} / ${perEvent(y)}`,
              `${num(x.events)} / ${num(y?.events)}`,
            ];
          }),
        ),
    '',
  );
}

/** The end-to-end search with each client, when the plan has one. */
function renderClientE2e(
  figures: ClientFigure[],
  a: KafkaClientRun | undefined,
  b: KafkaClientRun | undefined,
  push: Push,
): void {
  push('### End to end', '');
  if (!a?.e2e && !b?.e2e) push('Not measured (left out of this plan).', '');
  else {
    const row = (run: KafkaClientRun | undefined) => {
      const e2e: E2eSeries | undefined = run?.e2e;
      const best = e2e?.best;
      return [
        run ? KAFKA_LIBRARY[run.client] : '—',
        best ? `${num(best.achievedEvents)}${boundNote(e2e!.steps, best) ? ' (lower bound)' : ''}` : '—',
        quant(best?.probes.counter),
        quant(best?.probes.aggregator),
        quant(best?.probes.persister),
        e2e ? stepList(e2e.steps) : '—',
      ];
    };
    push(
      table(
        [
          'client',
          'max events/s',
          '→ Redis p50 / p99',
          '→ summary p50 / p99',
          '→ event row p50 / p99',
          'steps (offered events/s)',
        ],
        [
          row(a),
          row(b),
          [
            'platformatic ÷ kafkajs',
            ((f) => (f ? clientRatio(f) : '—'))(figures.find((f) => f.figure === 'end to end')),
            '',
            '',
            '',
            '',
          ],
        ],
      ),
      '',
    );
  }
}
