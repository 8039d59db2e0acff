/**
 * Phase `auth` in the report: what access control (and the rate limits, when configured) costs
 * each ingest load against the target, its section and summary row.
 */
import { boundNote, maximum } from '../lib/evidence.ts';
import { cpuPerEvent, micros, ms, num, type Push, pct, ratio, stepList, table } from '../lib/format.ts';
import type { AuthPaired, AuthResult, LoadStep, Results, Series } from '../lib/results.ts';
import { type SummaryRow, TARGETS } from '../lib/summary.ts';
import { commonStep } from './overhead.report.ts';

export const AUTH_LOADS = ['REST single', 'REST batch', 'gRPC stream'] as const;
type AuthLoad = (typeof AUTH_LOADS)[number];

/** The processes of each load's path: where a credential is carried and checked. */
export const AUTH_PATH_OF: Record<AuthLoad, readonly string[]> = {
  'REST single': ['gateway', 'ingest'],
  'REST batch': ['gateway', 'ingest'],
  'gRPC stream': ['ingest'],
};

const KEY_OF = {
  'REST single': 'restSingle',
  'REST batch': 'restBatch',
  'gRPC stream': 'grpcStream',
} as const;

/** The unit of a load's iterations. */
const UNIT_OF: Record<AuthLoad, string> = {
  'REST single': 'requests',
  'REST batch': 'batches',
  'gRPC stream': 'streams',
};

/** What access control costs one load, as shares of the throughput with it off. */
export interface AuthCost {
  load: AuthLoad;
  /**
   * 1 − (CPU per event of the path off ÷ on), at the same offered rate: the geometric mean of the
   * paired rounds' ratios when they ran, else the searches' step at the highest rate both passed.
   */
  cpu: number | undefined;
  /** The paired rounds' ratios (off ÷ on), when they ran. */
  rounds?: number[];
  /** 1 − (maximum on ÷ maximum off), when both searches found their maximum. */
  max: number | undefined;
  /** The one held against the target: by CPU when measured, else by the maxima. */
  cost: number | undefined;
}

export function authCosts(a: AuthResult): AuthCost[] {
  return AUTH_LOADS.map((load) => {
    const key = KEY_OF[load];
    const pair = commonStep(a.off[key], a.on?.[key]);
    const rounds = pairedRatios(
      a.paired?.find((p) => p.load === key),
      AUTH_PATH_OF[load],
    );
    const q =
      rounds.length > 0
        ? geometricMean(rounds)
        : ratio(cpuPerEvent(pair?.[0], AUTH_PATH_OF[load]), cpuPerEvent(pair?.[1], AUTH_PATH_OF[load]));
    const off = maximum(a.off[key]);
    const on = maximum(a.on?.[key]);
    const qMax = off.bound || on.bound ? undefined : ratio(on.value, off.value);
    const cpu = q === undefined ? undefined : 1 - q;
    const max = qMax === undefined ? undefined : 1 - qMax;
    return { load, cpu, max, cost: cpu ?? max, ...(rounds.length > 0 ? { rounds } : {}) };
  });
}

/** The share of its offered events a paired step must carry for its CPU per event to count. */
export const PAIRED_MIN_CARRIED = 0.95;

/**
 * Each paired round's CPU per event of `path` off ÷ on. A round counts when both its steps carried
 * at least {@link PAIRED_MIN_CARRIED} of the events offered, passed or not: a step at the edge of
 * saturation may drop a little over the 1 % a search allows, and its CPU per event still compares.
 */
export function pairedRatios(p: AuthPaired | undefined, path: readonly string[]): number[] {
  if (!p) return [];
  const carried = (s: LoadStep) =>
    s.offeredEvents > 0 && s.achievedEvents >= PAIRED_MIN_CARRIED * s.offeredEvents;
  const out: number[] = [];
  p.off.forEach((off, i) => {
    const on = p.on[i];
    if (!on || !carried(off) || !carried(on)) return;
    const q = ratio(cpuPerEvent(off, path), cpuPerEvent(on, path));
    if (q !== undefined) out.push(q);
  });
  return out;
}

/**
 * The geometric mean: the rounds alternate which stage goes first, so a cost that falls on
 * whichever runs second (the machine warming, a topic growing) is in half the ratios one way and
 * in half the other, and cancels in their mean — not in their median.
 */
function geometricMean(values: readonly number[]): number {
  return Math.exp(values.reduce((sum, v) => sum + Math.log(v), 0) / values.length);
}

/** The paired rounds of a load, as the report's evidence says them. */
function roundsText(c: AuthCost, paired: AuthPaired | undefined, path: readonly string[]): string {
  if (!c.rounds || !paired) return '';
  const steps = paired.off
    .map((s, i) => `${micros(cpuPerEvent(s, path))} off, ${micros(cpuPerEvent(paired.on[i], path))} on`)
    .join('; ');
  const ratios = c.rounds.map((q) => pct(q * 100, 1)).join(', ');
  return ` Paired rounds at ${num(paired.rate)} ${UNIT_OF[c.load]}/s, off and on in turn: ${steps} (off ÷ on: ${ratios}; the cost is 1 − their geometric mean).`;
}

/** Met when every load's cost is within the target; undefined when one was not measured. */
export function authMet(costs: AuthCost[]): boolean | undefined {
  if (costs.length === 0 || costs.some((c) => c.cost === undefined)) return undefined;
  return costs.every((c) => c.cost! <= TARGETS.authCost);
}

/** What the stage with access control on ran with, for the report's text. */
function rateLimitText(a: AuthResult): string {
  const names = Object.entries(a.rateLimitEnv);
  return names.length === 0
    ? "No `TALLY_RATE_LIMIT*` variable was set in the harness's environment, so this measures access control alone; the phase passes any such variable to the stage with access control on, so the same run measures the rate limits once they are configured."
    : `The stage with access control on also ran with the harness's ${names.map(([k, v]) => `\`${k}=${v}\``).join(', ')}: the figures include the rate limits' checks.`;
}

/** Where the cost of access control comes from, per load. */
function authEvidence(a: AuthResult, costs: AuthCost[]): string {
  return costs
    .map((c) => {
      const key = KEY_OF[c.load];
      const pair = commonStep(a.off[key], a.on?.[key]);
      const path = AUTH_PATH_OF[c.load];
      const cpu = pair
        ? ` At ${num(pair[0].rate)} ${UNIT_OF[c.load]}/s, ${path.join(' and ')} used ${micros(cpuPerEvent(pair[0], path))} of CPU per event with access control off, ${micros(cpuPerEvent(pair[1], path))} with it on.`
        : '';
      const rounds = roundsText(
        c,
        a.paired?.find((p) => p.load === key),
        path,
      );
      return `${c.load}: ${pct((c.cost ?? Number.NaN) * 100, 1)}.${rounds}${cpu} The maxima: ${num(a.off[key]?.best?.achievedEvents)} events/s off, ${num(a.on?.[key]?.best?.achievedEvents)} on${c.max === undefined ? ' (a search found no maximum)' : `, ${pct(c.max * 100, 1)} lower`}.`;
    })
    .join(' ');
}

/** What access control costs: the summary row. */
export function authRows(r: Results, rows: SummaryRow[]): void {
  const costs = r.auth ? authCosts(r.auth) : [];
  const measured = costs.filter((c) => c.cost !== undefined);
  rows.push({
    label: 'Access control on, cost in throughput',
    measured:
      measured.length > 0 ? measured.map((c) => `${c.load} ${pct(c.cost! * 100, 1)}`).join(', ') : '—',
    target: `≤ ${pct(TARGETS.authCost * 100)}`,
    ok: authMet(costs),
    baseline: r.auth
      ? `access control off: ${costs.map((c) => `${c.load} ${num(r.auth!.off[KEY_OF[c.load]]?.best?.achievedEvents)} events/s`).join(', ')}`
      : '—',
    ratio: '—',
    ratioTarget: '—',
    ratioOk: undefined,
    limit: r.auth && authEvidence(r.auth, costs),
  });
}

/** Phase `auth`: how access control was measured, its cost against the target, each load. */
export function renderAuth(r: Results, push: Push): void {
  push('## Cost of access control', '');
  const a = r.auth;
  if (!a) {
    push('Not measured.', '');
    return;
  }
  const costs = authCosts(a);
  const ok = authMet(costs);
  push(
    `Target: access control and rate limiting on cost at most ${pct(TARGETS.authCost * 100)} of throughput. Ingest, query and the ` +
      'gateway restarted with `TALLY_AUTH=off`, then with `TALLY_AUTH=on` and a bootstrap admin key (`TALLY_BOOTSTRAP_ADMIN_KEY`), ' +
      `with which the harness made the load's key (${a.key.kind}, scopes ${a.key.scopes.join(',')}${a.key.id ? `, id ${a.key.id}` : ''}) ` +
      'through KeysService (`POST /v1/keys`); the k6 scripts sent it with every call (`API_KEY`: `Authorization: Bearer` over REST, ' +
      '`authorization` metadata on the gRPC stream), so ingest checked it on every call (its record cached for 2 s, PostgreSQL behind). ' +
      `The same REST single, REST batch and gRPC stream searches each way, ${num(a.stepSeconds)} s per step, starting a step below ` +
      "the maxima of the phases above. The cost is read from the CPU per event of the path's processes at the same offered rate (a " +
      'CPU-bound path serves in inverse proportion to it), the maxima corroborating when both searches found theirs. ' +
      (a.paired && a.paired.length > 0
        ? `Then ${a.paired[0]!.off.length} paired rounds${a.pairedStepSeconds ? ` of ${num(a.pairedStepSeconds)} s steps` : ''}: each load a step below the highest rate both searches passed, access control off and on in turn (on first every other round), the processes restarted for each; the cost is 1 − the geometric mean of the rounds' off ÷ on (the order alternates, so a cost that falls on whichever stage runs second cancels in the mean), so that a drift of the machine between the two searches does not read as a cost. `
        : '') +
      rateLimitText(a),
    '',
  );
  push(
    `**Access control on costs ≤ ${pct(TARGETS.authCost * 100)} of throughput: ${ok === undefined ? 'not measured' : ok ? 'met' : 'not met'}** ` +
      `(${costs.map((c) => `${c.load} ${pct((c.cost ?? Number.NaN) * 100, 1)}${c.cpu === undefined && c.max !== undefined ? ' by the maxima' : ''}`).join('; ')}).`,
    '',
  );
  const rows: string[][] = [];
  for (const c of costs) {
    const key = KEY_OF[c.load];
    const path = AUTH_PATH_OF[c.load];
    const off = a.off[key];
    const on = a.on?.[key];
    const pair = commonStep(off, on);
    const perEvent = pair?.map((step) => cpuPerEvent(step, path)) ?? [];
    const stage = (series: Series | undefined, state: string, us: number | undefined) => [
      c.load,
      state,
      series?.best
        ? `${num(series.best.achievedEvents)}${boundNote(series.steps, series.best) ? ' (lower bound)' : ''}`
        : '—',
      ms(series?.best?.latency.p99),
      micros(us),
      series ? stepList(series.steps) : '—',
    ];
    rows.push(stage(off, 'off', perEvent[0]));
    rows.push(stage(on, 'on', perEvent[1]));
    rows.push([
      c.load,
      'on ÷ off, and the cost',
      c.max === undefined
        ? '— (a search found no maximum)'
        : `${pct((1 - c.max) * 100, 1)}: ${pct(c.max * 100, 1)} less`,
      '',
      c.cpu === undefined
        ? '—'
        : c.rounds
          ? `mean of ${c.rounds.length} paired rounds: ${pct((1 / (1 - c.cpu)) * 100, 1)}, ${pct(c.cpu * 100, 1)} of the throughput`
          : `${pct((ratio(perEvent[1], perEvent[0]) ?? Number.NaN) * 100, 1)} at ${num(pair![0].rate)} ${UNIT_OF[c.load]}/s: ${pct(c.cpu * 100, 1)} of the throughput`,
      '',
    ]);
  }
  push(
    table(
      [
        'load',
        'access control',
        'max events/s',
        'p99 at the max',
        "CPU per event of the path's processes",
        'steps (offered/s)',
      ],
      rows,
    ),
    '',
  );
  push(
    "The path's processes: ingest, and the gateway for REST (which forwards the credential and coalesces single events only with " +
      'those of the same credential); their CPU per event is at the highest rate both stages passed, fixed costs included. Query ' +
      'runs too (it serves KeysService) but is off the path of writes.',
    '',
  );
}
