/**
 * `tally destinations …` command line → what to do. Every bad value or unknown flag is a
 * DestinationsArgsError whose message starts with the flag at fault. The destination itself is
 * checked by the domain (domain/destinations.ts) when it is stored; here only what the command
 * line can get wrong.
 */
import type { FieldMapping, JsonValue } from '../domain/destination-transform.ts';
import { isDestinationId } from '../domain/destinations.ts';

/** Fields a command line sets; absent: not given (create: the default; update: kept). */
export interface DestinationFlags {
  name?: string;
  enabled?: boolean;
  disabledReason?: string;
  url?: string;
  allowPlainHttp?: boolean;
  headers?: Record<string, string>;
  timeoutMs?: number;
  kafkaTopic?: string;
  kafkaBrokers?: string[];
  eventTypes?: string[];
  targetPrefixes?: string[];
  attributes?: Record<string, string>;
  fields?: FieldMapping[];
  ordering?: string;
  retryDelaysSeconds?: number[];
  /** null: --no-rate-limit. */
  rateLimitPerSecond?: number | null;
  concurrency?: number;
  secrets?: string[];
}

export type DestinationsAction =
  | { action: 'create'; destination: DestinationFlags }
  | { action: 'list' }
  | { action: 'get'; id: string }
  | { action: 'update'; id: string; destination: DestinationFlags }
  | { action: 'delete'; id: string }
  | { action: 'rotate-secret'; id: string; secret?: string; graceSeconds?: number };

export const DESTINATIONS_USAGE = `usage:
  tally destinations create --name <name> (--url <https://…> | --kafka-topic <topic>) [flags] [--disabled]
  tally destinations list
  tally destinations get <id>
  tally destinations update <id> [any flag of create but the kind] [--enable | --disable [--reason <why>]]
  tally destinations delete <id>
  tally destinations rotate-secret <id> [--secret whsec_…] [--grace-seconds 86400]
webhook:  --url <https://…> [--allow-http] [--header name=value]… [--timeout-ms 10000] [--secret whsec_…]…
kafka:    --kafka-topic <topic> [--kafka-brokers host:port,…]   (another cluster; default: Tally's own)
filter:   [--types like,view] [--prefixes post/,shop/] [--attr name=value]…   (none: every event)
transform (none: the event as JSON), each --field to=<source>:
          --field data.user=from:user_id  --field text=template:'{{user_id}} liked {{target}}'
          --field source=constant:tally   --field meta=json:'{"v":2}'
delivery: [--ordering per_user|none] [--retry 0,5,300,…] [--rate-limit <per second> | --no-rate-limit]
          [--concurrency 10]
A webhook created without --secret gets one, printed once. update replaces the filter's and the
transform's lists when their flags are given (an empty value clears one). docs/delivery.md describes
destinations; tally deliveries lists their deliveries and sends them again.`;

/** A bad command line; `message` names the flag. */
export class DestinationsArgsError extends Error {
  override readonly name = 'DestinationsArgsError';
}

const VALUE_FLAGS = new Set([
  '--name',
  '--reason',
  '--url',
  '--header',
  '--timeout-ms',
  '--kafka-topic',
  '--kafka-brokers',
  '--types',
  '--prefixes',
  '--attr',
  '--field',
  '--ordering',
  '--retry',
  '--rate-limit',
  '--concurrency',
  '--secret',
  '--grace-seconds',
]);
const SWITCHES = new Set(['--allow-http', '--disabled', '--enable', '--disable', '--no-rate-limit']);

const list = (text: string) => (text === '' ? [] : text.split(',').map((s) => s.trim()));

function whole(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n))
    throw new DestinationsArgsError(`${flag}: must be a whole number, got ${JSON.stringify(text)}`);
  return n;
}

function pair(flag: string, text: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new DestinationsArgsError(`${flag}: must be name=value, got ${JSON.stringify(text)}`);
  return [text.slice(0, at), text.slice(at + 1)];
}

function mapping(text: string): FieldMapping {
  const [to, spec] = pair('--field', text);
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? '' : spec.slice(0, colon);
  const value = spec.slice(colon + 1);
  switch (kind) {
    case 'from':
      return { to, source: { kind: 'field', path: value } };
    case 'template':
      return { to, source: { kind: 'template', template: value } };
    case 'constant':
      return { to, source: { kind: 'constant', value } };
    case 'json':
      try {
        return { to, source: { kind: 'constant', value: JSON.parse(value) as JsonValue } };
      } catch {
        throw new DestinationsArgsError(`--field ${to}: json: is not valid JSON`);
      }
    default:
      throw new DestinationsArgsError(
        `--field ${to}: the source must start with from:, template:, constant: or json:, got ${JSON.stringify(spec)}`,
      );
  }
}

export function parseDestinationsArgs(args: readonly string[]): DestinationsAction {
  const [action, ...rest] = args;
  const needId = (): [string, readonly string[]] => {
    const [id, ...flags] = rest;
    if (id === undefined || id.startsWith('--'))
      throw new DestinationsArgsError(`${action}: needs a destination id`);
    if (!isDestinationId(id))
      throw new DestinationsArgsError(`${action}: ${JSON.stringify(id)} is not a destination id (ds_…)`);
    return [id, flags];
  };
  switch (action) {
    case 'list':
      if (rest.length > 0) throw new DestinationsArgsError(`list: takes no arguments, got ${rest[0]}`);
      return { action };
    case 'get':
    case 'delete': {
      const [id, flags] = needId();
      if (flags.length > 0) throw new DestinationsArgsError(`${action}: takes only an id, got ${flags[0]}`);
      return { action, id };
    }
    case 'rotate-secret': {
      const [id, flags] = needId();
      const f = parseFlags(flags, new Set(['--secret', '--grace-seconds']));
      return {
        action,
        id,
        ...(f.secrets === undefined ? {} : { secret: f.secrets.at(-1)! }),
        ...(f.graceSeconds === undefined ? {} : { graceSeconds: f.graceSeconds }),
      };
    }
    case 'create': {
      const { graceSeconds: _, ...destination } = parseFlags(rest);
      if (destination.name === undefined) throw new DestinationsArgsError('--name: is required');
      if ((destination.url === undefined) === (destination.kafkaTopic === undefined))
        throw new DestinationsArgsError(
          '--url or --kafka-topic: give exactly one (a webhook or a Kafka topic)',
        );
      return { action, destination };
    }
    case 'update': {
      const [id, flags] = needId();
      const { graceSeconds: _, ...destination } = parseFlags(flags);
      if (destination.secrets !== undefined)
        throw new DestinationsArgsError('--secret: secrets change with rotate-secret, not update');
      return { action, id, destination };
    }
    default:
      throw new DestinationsArgsError(
        action === undefined
          ? 'destinations: needs an action'
          : `destinations: unknown action ${JSON.stringify(action)}`,
      );
  }
}

function parseFlags(
  args: readonly string[],
  allowed?: ReadonlySet<string>,
): DestinationFlags & { graceSeconds?: number } {
  const out: DestinationFlags & { graceSeconds?: number } = {};
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    if ((!VALUE_FLAGS.has(flag) && !SWITCHES.has(flag)) || (allowed && !allowed.has(flag)))
      throw new DestinationsArgsError(`${flag}: unknown flag here`);
    if (SWITCHES.has(flag)) {
      if (flag === '--allow-http') out.allowPlainHttp = true;
      else if (flag === '--no-rate-limit') out.rateLimitPerSecond = null;
      else out.enabled = flag === '--enable';
      continue;
    }
    const value = args[++i];
    if (value === undefined) throw new DestinationsArgsError(`${flag}: needs a value`);
    switch (flag) {
      case '--name':
        out.name = value;
        break;
      case '--reason':
        out.disabledReason = value;
        break;
      case '--url':
        out.url = value;
        break;
      case '--header': {
        const [k, v] = pair(flag, value);
        out.headers = { ...out.headers, [k]: v };
        break;
      }
      case '--timeout-ms':
        out.timeoutMs = whole(flag, value);
        break;
      case '--kafka-topic':
        out.kafkaTopic = value;
        break;
      case '--kafka-brokers':
        out.kafkaBrokers = list(value);
        break;
      case '--types':
        out.eventTypes = list(value);
        break;
      case '--prefixes':
        out.targetPrefixes = list(value);
        break;
      case '--attr': {
        const [k, v] = pair(flag, value);
        out.attributes = { ...out.attributes, [k]: v };
        break;
      }
      case '--field':
        out.fields = [...(out.fields ?? []), mapping(value)];
        break;
      case '--ordering':
        out.ordering = value;
        break;
      case '--retry':
        out.retryDelaysSeconds = list(value).map((d) => whole(flag, d));
        break;
      case '--rate-limit':
        out.rateLimitPerSecond = whole(flag, value);
        break;
      case '--concurrency':
        out.concurrency = whole(flag, value);
        break;
      case '--secret':
        out.secrets = [...(out.secrets ?? []), value];
        break;
      case '--grace-seconds':
        out.graceSeconds = whole(flag, value);
        break;
    }
  }
  return out;
}
