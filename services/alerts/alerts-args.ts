/**
 * `tally alerts …` command line → what to do. Every bad value or unknown flag is an
 * AlertsArgsError whose message starts with the flag at fault. The rule itself is checked by the
 * domain (domain/alert-rules.ts) when it is stored; here only what the command line can get wrong.
 */
import { type AlertRuleKind, type AlertSubject, isAlertRuleId } from '../domain/alert-rules.ts';

/** Fields a command line sets; absent: not given (create: the default; update: kept). */
export interface RuleFlags {
  name?: string;
  eventType?: string;
  enabled?: boolean;
  kind?: AlertRuleKind;
  subject?: AlertSubject;
  /** --milestone */
  thresholds?: number[];
  /** --window */
  windowMinutes?: number;
  threshold?: number;
  measure?: string;
  rearmMinutes?: number;
  halfLifeMinutes?: number;
  zThreshold?: number;
  zClear?: number;
  minCount?: number;
  minRatio?: number;
  warmupMinutes?: number;
  userIds?: string[];
  groups?: string[];
  targetOwner?: boolean;
  dashboard?: boolean;
}

export type AlertsAction =
  | { action: 'create'; rule: RuleFlags }
  | { action: 'list' }
  | { action: 'get'; id: string }
  | { action: 'update'; id: string; rule: RuleFlags }
  | { action: 'delete'; id: string };

export const ALERTS_USAGE = `usage:
  tally alerts create --name <name> --type <event type> <kind> <subject> <recipients> [--disabled]
  tally alerts list
  tally alerts get <id>
  tally alerts update <id> [any flag of create] [--enable | --disable]
  tally alerts delete <id>
kinds (one: milestone, threshold, spike):
  --milestone 100,1000,10000       the count reaches each threshold (ascending, at most 32)
  --window <minutes> --threshold <x> [--measure count|sum] [--rearm-minutes <window>]
                                   a threshold rule: the count or sum over the last 1-1440 minutes reaches x;
                                   again only once below x and the re-arm minutes have passed
  --spike [--half-life 60] [--z 4] [--z-clear 2] [--min-count 5] [--min-ratio 2] [--warmup 60]
                                   the count per minute stands out from its own baseline
subject (one): --target <target> | --prefix <target prefix> | --user <user id> (window only)
recipients (at least one): --notify-users <id,id> --notify-groups <name,name> --notify-owner
  --dashboard   (update: --no-notify-owner, --no-dashboard; an empty list clears one)
update changes only what its flags give, and keeps the rest; a kind flag replaces the condition.
Rules are stored and administered; docs/alerts.md describes them.`;

/** A bad command line; `message` names the flag. */
export class AlertsArgsError extends Error {
  override readonly name = 'AlertsArgsError';
}

/** Flags that take a value. */
const VALUE_FLAGS = new Set([
  '--name',
  '--type',
  '--milestone',
  '--window',
  '--threshold',
  '--measure',
  '--rearm-minutes',
  '--half-life',
  '--z',
  '--z-clear',
  '--min-count',
  '--min-ratio',
  '--warmup',
  '--target',
  '--prefix',
  '--user',
  '--notify-users',
  '--notify-groups',
]);
/** Flags that take none. */
const SWITCHES_CREATE = new Set(['--spike', '--notify-owner', '--dashboard', '--disabled']);
const SWITCHES_UPDATE = new Set([
  '--spike',
  '--notify-owner',
  '--dashboard',
  '--no-notify-owner',
  '--no-dashboard',
  '--enable',
  '--disable',
]);

/** The kind each kind-specific flag belongs to. */
export const KIND_OF_FLAG: Readonly<Record<string, AlertRuleKind>> = Object.freeze({
  '--threshold': 'threshold',
  '--measure': 'threshold',
  '--rearm-minutes': 'threshold',
  '--half-life': 'spike',
  '--z': 'spike',
  '--z-clear': 'spike',
  '--min-count': 'spike',
  '--min-ratio': 'spike',
  '--warmup': 'spike',
});

/** The flag that chooses each kind, and back. */
export const KIND_FLAG: Readonly<Record<AlertRuleKind, string>> = Object.freeze({
  milestone: '--milestone',
  threshold: '--window',
  spike: '--spike',
});
const KIND_OF_KIND_FLAG = Object.freeze({
  '--milestone': 'milestone',
  '--window': 'threshold',
  '--spike': 'spike',
} as const);

const ACTIONS = ['create', 'list', 'get', 'update', 'delete'] as const;

export function parseAlertsArgs(args: readonly string[]): AlertsAction {
  const [action, ...rest] = args;
  if (action === undefined) throw new AlertsArgsError(`alerts: give an action: ${ACTIONS.join(', ')}`);
  if (!(ACTIONS as readonly string[]).includes(action))
    throw new AlertsArgsError(`alerts: unknown action ${JSON.stringify(action)} (${ACTIONS.join(', ')})`);
  const switches = action === 'create' ? SWITCHES_CREATE : action === 'update' ? SWITCHES_UPDATE : new Set();
  const values = action === 'create' || action === 'update' ? VALUE_FLAGS : new Set();
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const at = arg.indexOf('=');
    const [flag, inline] = at > 0 ? [arg.slice(0, at), arg.slice(at + 1)] : [arg, undefined];
    if (flags.has(flag)) throw new AlertsArgsError(`${flag}: given twice`);
    if (switches.has(flag)) {
      if (inline !== undefined) throw new AlertsArgsError(`${flag}: takes no value`);
      flags.set(flag, true);
      continue;
    }
    if (!values.has(flag)) throw new AlertsArgsError(`${flag}: not a flag of alerts ${action}`);
    const value = inline ?? rest[++i];
    if (value === undefined || (inline === undefined && value.startsWith('--')))
      throw new AlertsArgsError(`${flag}: needs a value`);
    flags.set(flag, value);
  }

  if (action === 'list') {
    if (positional.length > 0)
      throw new AlertsArgsError(`alerts list: takes no arguments (${positional.join(' ')})`);
    return { action };
  }
  if (action === 'create') {
    if (positional.length > 0)
      throw new AlertsArgsError(`alerts create: unexpected argument ${JSON.stringify(positional[0])}`);
    const rule = ruleFlags(flags);
    if (rule.name === undefined) throw new AlertsArgsError('--name: required (what people call the rule)');
    if (rule.eventType === undefined) throw new AlertsArgsError('--type: required (the event type watched)');
    if (rule.kind === undefined)
      throw new AlertsArgsError('--milestone, --window or --spike: give the kind of rule');
    if (rule.subject === undefined)
      throw new AlertsArgsError('--target, --prefix or --user: give what the rule watches');
    return { action, rule };
  }
  if (positional.length !== 1)
    throw new AlertsArgsError(`alerts ${action}: give the id of one rule (as alerts list shows it)`);
  const id = positional[0]!;
  if (!isAlertRuleId(id))
    throw new AlertsArgsError(
      `alerts ${action}: ${JSON.stringify(id)} is not a rule id (ar_ and 10 letters and digits, as alerts list shows)`,
    );
  if (action === 'update') {
    const rule = ruleFlags(flags);
    if (Object.keys(rule).length === 0)
      throw new AlertsArgsError('alerts update: give at least one flag to change');
    return { action, id, rule };
  }
  return { action: action as 'get' | 'delete', id };
}

function ruleFlags(flags: Map<string, string | true>): RuleFlags {
  const text = (flag: string) => {
    const value = flags.get(flag);
    return typeof value === 'string' ? value : undefined;
  };
  const rule: RuleFlags = {};
  const name = text('--name');
  if (name !== undefined) {
    if (name.trim() === '') throw new AlertsArgsError('--name: must not be empty');
    rule.name = name;
  }
  const type = text('--type');
  if (type !== undefined) rule.eventType = type;

  const enable = flags.has('--enable');
  const disable = flags.has('--disable') || flags.has('--disabled');
  if (enable && disable) throw new AlertsArgsError('--enable: give --enable or --disable, not both');
  if (enable || disable) rule.enabled = enable;

  const kinds = (['--milestone', '--window', '--spike'] as const).filter((f) => flags.has(f));
  if (kinds.length > 1)
    throw new AlertsArgsError(`${kinds[1]}: give one kind (${kinds.join(' or ')}), not several`);
  if (kinds[0]) rule.kind = KIND_OF_KIND_FLAG[kinds[0]];
  for (const [flag, kind] of Object.entries(KIND_OF_FLAG))
    if (flags.has(flag) && rule.kind !== undefined && rule.kind !== kind)
      throw new AlertsArgsError(
        `${flag}: belongs to a ${kind} rule (${KIND_FLAG[kind]}), not a ${rule.kind} rule`,
      );

  const milestone = text('--milestone');
  if (milestone !== undefined)
    rule.thresholds = list(milestone).map((t) => wholeNumber('--milestone', t, Number.MAX_SAFE_INTEGER));
  const windowMinutes = text('--window');
  if (windowMinutes !== undefined) rule.windowMinutes = wholeNumber('--window', windowMinutes, 1440);
  const numberFlags = [
    ['--threshold', 'threshold'],
    ['--z', 'zThreshold'],
    ['--z-clear', 'zClear'],
    ['--min-ratio', 'minRatio'],
  ] as const;
  for (const [flag, field] of numberFlags) {
    const value = text(flag);
    if (value !== undefined) rule[field] = decimal(flag, value);
  }
  const halfLife = text('--half-life');
  if (halfLife !== undefined) rule.halfLifeMinutes = wholeNumber('--half-life', halfLife, 10_080);
  const minCount = text('--min-count');
  if (minCount !== undefined) rule.minCount = wholeNumber('--min-count', minCount, 1_000_000_000);
  const rearm = text('--rearm-minutes');
  if (rearm !== undefined) rule.rearmMinutes = wholeNumber('--rearm-minutes', rearm, 10_080, 0);
  const warmup = text('--warmup');
  if (warmup !== undefined) rule.warmupMinutes = wholeNumber('--warmup', warmup, 10_080, 0);
  const measure = text('--measure');
  if (measure !== undefined) {
    if (measure !== 'count' && measure !== 'sum')
      throw new AlertsArgsError(`--measure: ${JSON.stringify(measure)} is not count or sum`);
    rule.measure = measure;
  }

  const subjects = (
    [
      ['--target', 'target'],
      ['--prefix', 'target_prefix'],
      ['--user', 'user_id'],
    ] as const
  ).filter(([flag]) => flags.has(flag));
  if (subjects.length > 1)
    throw new AlertsArgsError(
      `${subjects[1]![0]}: give one subject (--target, --prefix or --user), not several`,
    );
  if (subjects[0]) {
    const [flag, kind] = subjects[0];
    const value = text(flag)!;
    if (value === '') throw new AlertsArgsError(`${flag}: must not be empty`);
    rule.subject = { kind, value };
  }

  const users = text('--notify-users');
  if (users !== undefined) rule.userIds = list(users);
  const groups = text('--notify-groups');
  if (groups !== undefined) rule.groups = list(groups);
  if (flags.has('--notify-owner') && flags.has('--no-notify-owner'))
    throw new AlertsArgsError('--notify-owner: give --notify-owner or --no-notify-owner, not both');
  if (flags.has('--notify-owner')) rule.targetOwner = true;
  if (flags.has('--no-notify-owner')) rule.targetOwner = false;
  if (flags.has('--dashboard') && flags.has('--no-dashboard'))
    throw new AlertsArgsError('--dashboard: give --dashboard or --no-dashboard, not both');
  if (flags.has('--dashboard')) rule.dashboard = true;
  if (flags.has('--no-dashboard')) rule.dashboard = false;
  return rule;
}

function list(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function wholeNumber(flag: string, text: string, max: number, min = 1): number {
  const value = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!(Number.isSafeInteger(value) && value >= min && value <= max))
    throw new AlertsArgsError(`${flag}: ${JSON.stringify(text)} is not a whole number from ${min} to ${max}`);
  return value;
}

function decimal(flag: string, text: string): number {
  const value = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(value)) throw new AlertsArgsError(`${flag}: ${JSON.stringify(text)} is not a number`);
  return value;
}
