/**
 * `tally alerts create|list|get|update|delete`: alert rule administration on the configured
 * database (main.ts opens it and applies the migrations), the same store and validation as
 * tally.v1.AlertService. Exit status: 0 done, 1 refused (an unknown id, a rule changed meanwhile),
 * 2 a bad command line or an invalid rule (the message names the flag).
 */
import type { AlertCondition, AlertRuleInput } from '../domain/alert-rules.ts';
import { formatColumns, minuteTime } from '../domain/text-table.ts';
import type { AlertRule, RuleStore } from '../infra/alerts/rule-store.ts';
import { AppError, Code } from '../infra/app-error.ts';
import {
  ALERTS_USAGE,
  AlertsArgsError,
  KIND_FLAG,
  KIND_OF_FLAG,
  parseAlertsArgs,
  type RuleFlags,
} from './alerts-args.ts';

export interface AlertsCommandIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
}

/** The rule store on the configured database, and how to close both. */
export type OpenRuleStore = () => Promise<{ store: RuleStore; close(): Promise<void> }>;

/** The flag behind each field the store reports (paths relative to the rule; indexes dropped). */
const FLAG_OF_FIELD: Record<string, string> = {
  name: '--name',
  event_type: '--type',
  condition: '--milestone, --window or --spike',
  recipients: '--notify-users, --notify-groups, --notify-owner or --dashboard',
  'recipients.user_ids': '--notify-users',
  'recipients.groups': '--notify-groups',
  'recipients.target_owner': '--notify-owner',
  'milestone.thresholds': '--milestone',
  'threshold.measure': '--measure',
  'threshold.window_minutes': '--window',
  'threshold.threshold': '--threshold',
  'threshold.rearm_minutes': '--rearm-minutes',
  'spike.half_life_minutes': '--half-life',
  'spike.z_threshold': '--z',
  'spike.z_clear': '--z-clear',
  'spike.min_count': '--min-count',
  'spike.min_ratio': '--min-ratio',
  'spike.warmup_minutes': '--warmup',
  subject: '--target, --prefix or --user',
  'subject.target': '--target',
  'subject.target_prefix': '--prefix',
  'subject.user_id': '--user',
};

function flagOf(field: string): string | undefined {
  const plain = field.replace(/\[\d+\]/g, '');
  return FLAG_OF_FIELD[plain] ?? FLAG_OF_FIELD[plain.replace(/^(milestone|threshold|spike)\./, '')];
}

export async function alertsCommand(
  args: readonly string[],
  openStore: OpenRuleStore,
  io: AlertsCommandIo,
): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    io.out.write(`${ALERTS_USAGE}\n`);
    return 0;
  }
  let action: ReturnType<typeof parseAlertsArgs>;
  try {
    action = parseAlertsArgs(args);
  } catch (error) {
    if (!(error instanceof AlertsArgsError)) throw error;
    io.err.write(`tally: ${error.message}\n${ALERTS_USAGE}\n`);
    return 2;
  }
  const { store, close } = await openStore();
  try {
    switch (action.action) {
      case 'create':
        io.out.write(details(await store.create(inputOf(action.rule))));
        return 0;
      case 'list':
        io.out.write(table(await store.list()));
        return 0;
      case 'get': {
        const rule = await store.get(action.id);
        if (!rule) throw new AppError(Code.NOT_FOUND, `no alert rule with id ${JSON.stringify(action.id)}`);
        io.out.write(details(rule));
        return 0;
      }
      case 'update': {
        const current = await store.get(action.id);
        if (!current)
          throw new AppError(Code.NOT_FOUND, `no alert rule with id ${JSON.stringify(action.id)}`);
        const kind = action.rule.kind ?? current.condition.kind;
        for (const [flag, owner] of Object.entries(KIND_OF_FLAG))
          if (flagGiven(action.rule, flag) && owner !== kind) {
            io.err.write(
              `tally: ${flag}: belongs to a ${owner} rule, and ${action.id} is a ${kind} rule (give ${KIND_FLAG[owner]} to change its kind)\n`,
            );
            return 2;
          }
        // Against the revision read, so that a change made meanwhile is not overwritten.
        const rule = await store.update(action.id, inputOf(action.rule, current), current.revision);
        io.out.write(details(rule));
        return 0;
      }
      case 'delete': {
        const rule = await store.delete(action.id);
        io.out.write(`deleted alert rule ${rule.id} (${rule.name})\n`);
        return 0;
      }
    }
  } catch (error) {
    if (!(error instanceof AppError) || error.code === Code.INTERNAL || error.code === Code.UNAVAILABLE)
      throw error;
    if (error.code === Code.INVALID_ARGUMENT && error.fieldViolations.length > 0) {
      for (const v of error.fieldViolations) {
        const flag = flagOf(v.field);
        io.err.write(`tally: ${flag === undefined ? v.field : `${flag} (${v.field})`}: ${v.description}\n`);
      }
      return 2;
    }
    io.err.write(`tally: alerts ${action.action}: ${error.message}\n`);
    return error.code === Code.INVALID_ARGUMENT ? 2 : 1;
  } finally {
    await close();
  }
}

const FLAG_FIELDS: Record<string, keyof RuleFlags> = {
  '--threshold': 'threshold',
  '--measure': 'measure',
  '--rearm-minutes': 'rearmMinutes',
  '--half-life': 'halfLifeMinutes',
  '--z': 'zThreshold',
  '--z-clear': 'zClear',
  '--min-count': 'minCount',
  '--min-ratio': 'minRatio',
  '--warmup': 'warmupMinutes',
};

function flagGiven(rule: RuleFlags, flag: string): boolean {
  const field = FLAG_FIELDS[flag];
  return field !== undefined && rule[field] !== undefined;
}

/**
 * The rule the flags describe: on create, the flags alone (defaults fill the rest); on update,
 * `current` with the flags over it — the condition's parameters kept while its kind stays.
 */
function inputOf(flags: RuleFlags, current?: AlertRule): AlertRuleInput {
  const kind = flags.kind ?? current?.condition.kind;
  const subject = flags.subject ?? current?.condition.subject;
  const kept: Partial<Record<string, unknown>> =
    current && current.condition.kind === kind ? { ...current.condition } : {};
  const pick = <T>(given: T | undefined, key: string): T | undefined => given ?? (kept[key] as T | undefined);
  let condition: AlertRuleInput['condition'];
  if (kind === 'milestone')
    condition = { kind, subject, thresholds: pick(flags.thresholds, 'thresholds') ?? [] };
  else if (kind === 'threshold')
    condition = {
      kind,
      subject,
      measure: pick(flags.measure, 'measure') ?? '',
      windowMinutes: pick(flags.windowMinutes, 'windowMinutes') ?? 0,
      threshold: pick(flags.threshold, 'threshold') ?? 0,
      ...defined('rearmMinutes', pick(flags.rearmMinutes, 'rearmMinutes')),
    };
  else if (kind === 'spike')
    condition = {
      kind,
      subject,
      ...defined('halfLifeMinutes', pick(flags.halfLifeMinutes, 'halfLifeMinutes')),
      ...defined('zThreshold', pick(flags.zThreshold, 'zThreshold')),
      // A clear level is kept only with the threshold it was made for.
      ...defined('zClear', flags.zClear ?? (flags.zThreshold === undefined ? kept.zClear : undefined)),
      ...defined('minCount', pick(flags.minCount, 'minCount')),
      ...defined('minRatio', pick(flags.minRatio, 'minRatio')),
      // So is a warm-up, with its half-life.
      ...defined(
        'warmupMinutes',
        flags.warmupMinutes ?? (flags.halfLifeMinutes === undefined ? kept.warmupMinutes : undefined),
      ),
    };
  const input: AlertRuleInput = {
    name: flags.name ?? current?.name ?? '',
    eventType: flags.eventType ?? current?.eventType ?? '',
    recipients: {
      userIds: flags.userIds ?? current?.recipients.userIds ?? [],
      groups: flags.groups ?? current?.recipients.groups ?? [],
      targetOwner: flags.targetOwner ?? current?.recipients.targetOwner ?? false,
      dashboard: flags.dashboard ?? current?.recipients.dashboard ?? false,
    },
  };
  if (condition) input.condition = condition;
  const enabled = flags.enabled ?? current?.enabled;
  if (enabled !== undefined) input.enabled = enabled;
  return input;
}

function defined<K extends string>(key: K, value: unknown): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}

/** `2026-01-15 12:00Z`. */
const SUBJECT_LABEL = { target: 'target', target_prefix: 'prefix', user_id: 'user' } as const;

function subjectText(condition: AlertCondition): string {
  return `${SUBJECT_LABEL[condition.subject.kind]} ${condition.subject.value}`;
}

function conditionText(c: AlertCondition): string {
  switch (c.kind) {
    case 'milestone':
      return `count reaches ${c.thresholds.join(', ')}`;
    case 'threshold':
      return `${c.measure} over ${c.windowMinutes} min reaches ${c.threshold} (again once below it, ${c.rearmMinutes} min after)`;
    case 'spike':
      return `z ≥ ${c.zThreshold} (clears below ${c.zClear}), half-life ${c.halfLifeMinutes} min, at least ${c.minCount}/min and ${c.minRatio}× the baseline, after ${c.warmupMinutes} min of warm-up`;
  }
}

/** A rule as `label: value` lines. */
function details(rule: AlertRule): string {
  const r = rule.recipients;
  const recipients = [
    ...r.userIds.map((u) => `user ${u}`),
    ...r.groups.map((g) => `group ${g}`),
    ...(r.targetOwner ? ['target owner'] : []),
    ...(r.dashboard ? ['dashboard'] : []),
  ];
  const lines = [
    ['id', rule.id],
    ['name', rule.name],
    ['enabled', rule.enabled ? 'yes' : 'no'],
    ['type', rule.eventType],
    ['kind', rule.condition.kind],
    ['subject', subjectText(rule.condition)],
    ['condition', conditionText(rule.condition)],
    ['notify', recipients.join(', ')],
    ['created', minuteTime(rule.createdAt)],
    ['updated', minuteTime(rule.updatedAt)],
    ['revision', String(rule.revision)],
  ];
  return lines.map(([label, value]) => `${`${label}:`.padEnd(11)}${value}\n`).join('');
}

/** The listing: one line per rule, aligned columns. */
function table(rules: readonly AlertRule[]): string {
  if (rules.length === 0) return 'no alert rules\n';
  const rows = [
    ['ID', 'NAME', 'KIND', 'TYPE', 'SUBJECT', 'ENABLED', 'UPDATED'],
    ...rules.map((r) => [
      r.id,
      r.name,
      r.condition.kind,
      r.eventType,
      subjectText(r.condition),
      r.enabled ? 'yes' : 'no',
      minuteTime(r.updatedAt),
    ]),
  ];
  return formatColumns(rows);
}
