/**
 * `tally destinations create|list|get|update|delete|rotate-secret`: destination administration on
 * the configured database and event log (main.ts opens them and applies the migrations), the same
 * store, topic lifecycle and validation as tally.v1.DestinationService. Exit status: 0 done,
 * 1 refused (an unknown id, a destination changed meanwhile, a rotation past 3 secrets), 2 a bad
 * command line or an invalid destination (the message names the flag). Signing secrets are
 * printed in full only by create and rotate-secret; header values that may be credentials never.
 */
import { type DestinationInput, redactHeaders, secretHint } from '../domain/destinations.ts';
import { formatColumns, minuteTime } from '../domain/text-table.ts';
import { AppError, Code } from '../infra/app-error.ts';
import type { DestinationAdmin } from '../infra/delivery/destination-admin.ts';
import type { Destination } from '../infra/delivery/destination-store.ts';
import {
  DESTINATIONS_USAGE,
  type DestinationFlags,
  DestinationsArgsError,
  parseDestinationsArgs,
} from './destinations-args.ts';

export interface DestinationsCommandIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
}

/** The destinations on the configured database and log, and how to close them. */
export type OpenDestinations = () => Promise<{ destinations: DestinationAdmin; close(): Promise<void> }>;

/** The flag behind each field the store reports (paths relative to the destination; indexes dropped). */
const FLAG_OF_FIELD: Record<string, string> = {
  name: '--name',
  disabled_reason: '--reason',
  endpoint: '--url or --kafka-topic',
  'webhook.url': '--url',
  'webhook.headers': '--header',
  'webhook.timeout_ms': '--timeout-ms',
  'kafka.topic': '--kafka-topic',
  'kafka.brokers': '--kafka-brokers',
  'filter.event_types': '--types',
  'filter.target_prefixes': '--prefixes',
  'filter.attributes': '--attr',
  'transform.fields': '--field',
  ordering: '--ordering',
  'retry.delays_seconds': '--retry',
  rate_limit_per_second: '--rate-limit',
  concurrency: '--concurrency',
  signing_secrets: '--secret',
  secret: '--secret',
  grace_seconds: '--grace-seconds',
};

function flagOf(field: string): string | undefined {
  const plain = field.replace(/\[[^\]]*\]/g, '');
  return FLAG_OF_FIELD[plain] ?? FLAG_OF_FIELD[plain.replace(/\.(to|from|template|json)$/, '')];
}

export async function destinationsCommand(
  args: readonly string[],
  open: OpenDestinations,
  io: DestinationsCommandIo,
): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    io.out.write(`${DESTINATIONS_USAGE}\n`);
    return 0;
  }
  let action: ReturnType<typeof parseDestinationsArgs>;
  try {
    action = parseDestinationsArgs(args);
  } catch (error) {
    if (!(error instanceof DestinationsArgsError)) throw error;
    io.err.write(`tally: ${error.message}\n${DESTINATIONS_USAGE}\n`);
    return 2;
  }
  const { destinations, close } = await open();
  try {
    switch (action.action) {
      case 'create': {
        const made = await destinations.create(inputOf(action.destination), action.destination.secrets);
        io.out.write(details(made));
        for (const s of made.signingSecrets)
          io.out.write(
            `secret:    ${s.secret}   (shown once: keep it where the receiver verifies signatures)\n`,
          );
        return 0;
      }
      case 'list':
        io.out.write(table(await destinations.list()));
        return 0;
      case 'get': {
        const found = await destinations.get(action.id);
        if (!found) throw new AppError(Code.NOT_FOUND, `no destination with id ${JSON.stringify(action.id)}`);
        io.out.write(details(found));
        return 0;
      }
      case 'update': {
        const current = await destinations.get(action.id);
        if (!current)
          throw new AppError(Code.NOT_FOUND, `no destination with id ${JSON.stringify(action.id)}`);
        const kind = current.endpoint.kind;
        const given = action.destination;
        if (
          (kind === 'webhook' && given.kafkaTopic !== undefined) ||
          (kind === 'kafka' && given.url !== undefined)
        ) {
          io.err.write(
            `tally: ${kind === 'webhook' ? '--kafka-topic' : '--url'}: ${action.id} is a ${kind} destination, and a destination's kind stays: create another\n`,
          );
          return 2;
        }
        // Against the revision read, so that a change made meanwhile is not overwritten.
        const updated = await destinations.update(action.id, inputOf(given, current), current.revision);
        io.out.write(details(updated));
        return 0;
      }
      case 'delete': {
        const gone = await destinations.delete(action.id);
        io.out.write(`deleted destination ${gone.id} (${gone.name}) and its topic\n`);
        return 0;
      }
      case 'rotate-secret': {
        const rotated = await destinations.rotateSecret(action.id, {
          ...(action.secret === undefined ? {} : { secret: action.secret }),
          ...(action.graceSeconds === undefined ? {} : { graceSeconds: action.graceSeconds }),
        });
        io.out.write(details(rotated));
        io.out.write(`secret:    ${rotated.signingSecrets[0]!.secret}   (shown once)\n`);
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
    io.err.write(`tally: destinations ${action.action}: ${error.message}\n`);
    return error.code === Code.INVALID_ARGUMENT ? 2 : 1;
  } finally {
    await close();
  }
}

/**
 * The destination the flags describe: on create, the flags alone (defaults fill the rest); on
 * update, `current` with the flags over it.
 */
function inputOf(flags: DestinationFlags, current?: Destination): DestinationInput {
  const e = current?.endpoint;
  const webhook = e?.kind === 'webhook' ? e : undefined;
  const kafka = e?.kind === 'kafka' ? e : undefined;
  const input: DestinationInput = {
    name: flags.name ?? current?.name ?? '',
    filter: {
      eventTypes: flags.eventTypes ?? current?.filter.eventTypes ?? [],
      targetPrefixes: flags.targetPrefixes ?? current?.filter.targetPrefixes ?? [],
      attributes: flags.attributes ?? current?.filter.attributes ?? {},
    },
    transform: { fields: flags.fields ?? current?.transform.fields ?? [] },
    ordering: flags.ordering ?? current?.ordering ?? '',
  };
  if (flags.url !== undefined || webhook)
    input.endpoint = {
      kind: 'webhook',
      url: flags.url ?? webhook?.url ?? '',
      allowPlainHttp: flags.allowPlainHttp ?? webhook?.allowPlainHttp ?? false,
      headers: flags.headers ?? webhook?.headers ?? {},
      ...((flags.timeoutMs ?? webhook?.timeoutMs) === undefined
        ? {}
        : { timeoutMs: (flags.timeoutMs ?? webhook?.timeoutMs)! }),
    };
  else if (flags.kafkaTopic !== undefined || kafka)
    input.endpoint = {
      kind: 'kafka',
      topic: flags.kafkaTopic ?? kafka?.topic ?? '',
      brokers: flags.kafkaBrokers ?? kafka?.brokers ?? [],
    };
  const retry = flags.retryDelaysSeconds ?? current?.retryDelaysSeconds;
  if (retry) input.retryDelaysSeconds = retry;
  const rate =
    flags.rateLimitPerSecond === undefined ? current?.rateLimitPerSecond : flags.rateLimitPerSecond;
  if (rate !== undefined && rate !== null) input.rateLimitPerSecond = rate;
  const concurrency = flags.concurrency ?? current?.concurrency;
  if (concurrency !== undefined) input.concurrency = concurrency;
  if (flags.enabled !== undefined) input.enabled = flags.enabled;
  if (flags.disabledReason !== undefined) input.disabledReason = flags.disabledReason;
  return input;
}

function endpointText(d: Destination): string {
  const e = d.endpoint;
  return e.kind === 'webhook'
    ? e.url
    : `kafka topic ${e.topic}${e.brokers.length > 0 ? ` on ${e.brokers.join(',')}` : ''}`;
}

function filterText(d: Destination): string {
  const f = d.filter;
  const parts = [
    ...(f.eventTypes.length > 0 ? [`types ${f.eventTypes.join(', ')}`] : []),
    ...(f.targetPrefixes.length > 0 ? [`targets ${f.targetPrefixes.map((p) => `${p}…`).join(', ')}`] : []),
    ...Object.entries(f.attributes).map(([k, v]) => `${k}=${v}`),
  ];
  return parts.length === 0 ? 'every event' : parts.join('; ');
}

/** A destination as `label: value` lines. */
function details(d: Destination): string {
  const e = d.endpoint;
  const lines: [string, string][] = [
    ['id', d.id],
    ['name', d.name],
    ['enabled', d.enabled ? 'yes' : `no${d.disabledReason ? ` (${d.disabledReason})` : ''}`],
    ['kind', e.kind],
    ['endpoint', endpointText(d)],
  ];
  if (e.kind === 'webhook') {
    const headers = Object.entries(redactHeaders(e.headers)).map(([k, v]) => `${k}: ${v}`);
    if (headers.length > 0) lines.push(['headers', headers.join(', ')]);
    lines.push(['timeout', `${e.timeoutMs} ms${e.allowPlainHttp ? ', plain http allowed' : ''}`]);
  }
  lines.push(
    ['filter', filterText(d)],
    [
      'transform',
      d.transform.fields.length === 0
        ? 'none (the event as JSON)'
        : d.transform.fields.map((f) => f.to).join(', '),
    ],
    ['ordering', d.ordering],
    ['retry', `${d.retryDelaysSeconds.length} attempts after ${d.retryDelaysSeconds.join(', ')} s`],
    [
      'pace',
      `${d.concurrency} at once${d.rateLimitPerSecond === undefined ? '' : `, at most ${d.rateLimitPerSecond}/s`}`,
    ],
  );
  for (const s of d.signingSecrets)
    lines.push([
      'signing',
      `${secretHint(s.secret)} made ${minuteTime(new Date(s.createdAtMs))}${s.expiresAtMs === undefined ? '' : `, until ${minuteTime(new Date(s.expiresAtMs))}`}`,
    ]);
  lines.push(
    ['created', minuteTime(d.createdAt)],
    ['updated', minuteTime(d.updatedAt)],
    ['revision', String(d.revision)],
  );
  return lines.map(([label, value]) => `${`${label}:`.padEnd(11)}${value}\n`).join('');
}

/** The listing: one line per destination, aligned columns. */
function table(all: readonly Destination[]): string {
  if (all.length === 0) return 'no destinations\n';
  return formatColumns([
    ['ID', 'NAME', 'KIND', 'ENDPOINT', 'FILTER', 'ENABLED', 'UPDATED'],
    ...all.map((d) => [
      d.id,
      d.name,
      d.endpoint.kind,
      endpointText(d),
      filterText(d),
      d.enabled ? 'yes' : 'no',
      minuteTime(d.updatedAt),
    ]),
  ]);
}
