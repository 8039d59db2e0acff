/**
 * `tally keys …` command line → what to do. Every bad value or unknown flag is a KeysArgsError
 * whose message starts with the flag at fault.
 */
import { API_KEY_KINDS, type ApiKeyKind, parseScopes, type Scope } from '../domain/api-keys.ts';

export type KeysAction =
  | {
      action: 'create';
      name: string;
      kind: ApiKeyKind;
      scopes: ReadonlySet<Scope>;
      /** From now; absent: never expires. */
      expiresInMs: number | undefined;
      origins: string[];
      types: string[];
      ingestRate: number | undefined;
      readRate: number | undefined;
      quota: number | undefined;
    }
  | { action: 'list' }
  | { action: 'revoke'; id: string }
  | { action: 'rotate'; id: string; graceMs: number }
  /** A fresh key printed, not stored (for TALLY_BOOTSTRAP_ADMIN_KEY, a Kubernetes Secret). */
  | { action: 'generate'; kind: ApiKeyKind };

export const KEYS_USAGE = `usage:
  tally keys create --name <name> --scopes ingest,read[,admin] [--kind secret|ingest]
                    [--expires 90d] [--origins https://a,https://b] [--types like,view]
                    [--ingest-rate <events/min>] [--read-rate <reads/min>] [--quota <events/month>]
  tally keys list
  tally keys revoke <id>
  tally keys rotate <id> [--grace 24h]
  tally keys generate [--kind secret|ingest]
generate prints a new key and stores nothing (no database is opened): give it to Tally as
TALLY_BOOTSTRAP_ADMIN_KEY, which stores it at start-up with the admin scope.
An ingest key (--kind ingest) has the ingest scope only and may be held to origins and event types.
Durations: <n>s, <n>m, <n>h or <n>d.`;

/** Grace period of `rotate` when --grace is not given. */
export const DEFAULT_GRACE_MS = 24 * 3_600_000;

/** A bad command line; `message` names the flag. */
export class KeysArgsError extends Error {
  override readonly name = 'KeysArgsError';
}

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `90d` → milliseconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d{1,6})([smhd])$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

const FLAGS: Record<KeysAction['action'], readonly string[]> = {
  create: [
    '--name',
    '--kind',
    '--scopes',
    '--expires',
    '--origins',
    '--types',
    '--ingest-rate',
    '--read-rate',
    '--quota',
  ],
  list: [],
  revoke: [],
  rotate: ['--grace'],
  generate: ['--kind'],
};

export function parseKeysArgs(args: readonly string[]): KeysAction {
  const [action, ...rest] = args;
  if (action === undefined)
    throw new KeysArgsError('keys: give an action: create, list, revoke, rotate or generate');
  if (!Object.hasOwn(FLAGS, action))
    throw new KeysArgsError(
      `keys: unknown action ${JSON.stringify(action)} (create, list, revoke, rotate or generate)`,
    );
  const allowed = FLAGS[action as KeysAction['action']];
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const [flag, inline] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg, undefined];
    if (!allowed.includes(flag)) throw new KeysArgsError(`${flag}: not a flag of keys ${action}`);
    if (flags.has(flag)) throw new KeysArgsError(`${flag}: given twice`);
    const value = inline ?? rest[++i];
    if (value === undefined || (inline === undefined && value.startsWith('--')))
      throw new KeysArgsError(`${flag}: needs a value`);
    flags.set(flag, value);
  }

  if (action === 'list') {
    if (positional.length > 0)
      throw new KeysArgsError(`keys list: takes no arguments (${positional.join(' ')})`);
    return { action };
  }
  const kindOf = (): ApiKeyKind => {
    const text = flags.get('--kind') ?? 'secret';
    if (!(API_KEY_KINDS as readonly string[]).includes(text))
      throw new KeysArgsError(
        `--kind: ${JSON.stringify(text)} is not a kind (${API_KEY_KINDS.join(' or ')})`,
      );
    return text as ApiKeyKind;
  };
  if (action === 'generate') {
    if (positional.length > 0)
      throw new KeysArgsError(`keys generate: takes no arguments (${positional.join(' ')})`);
    return { action, kind: kindOf() };
  }
  if (action === 'revoke' || action === 'rotate') {
    if (positional.length !== 1)
      throw new KeysArgsError(`keys ${action}: give the id of one key (as keys list shows it)`);
    const id = positional[0]!;
    if (!/^[0-9A-Za-z]{8}$/.test(id))
      throw new KeysArgsError(
        `keys ${action}: ${JSON.stringify(id)} is not a key id (8 letters and digits, as keys list shows)`,
      );
    if (action === 'revoke') return { action, id };
    const grace = flags.get('--grace');
    const graceMs = grace === undefined ? DEFAULT_GRACE_MS : parseDuration(grace);
    if (graceMs === undefined)
      throw new KeysArgsError(`--grace: ${JSON.stringify(grace)} is not a duration (24h, 30m, 0s)`);
    return { action, id, graceMs };
  }

  if (positional.length > 0)
    throw new KeysArgsError(`keys create: unexpected argument ${JSON.stringify(positional[0])}`);
  const name = flags.get('--name');
  if (name === undefined || name.trim() === '')
    throw new KeysArgsError('--name: required (who or what the key is for)');
  const kind = kindOf();
  const scopesText = flags.get('--scopes') ?? (kind === 'ingest' ? 'ingest' : undefined);
  if (scopesText === undefined)
    throw new KeysArgsError('--scopes: required for a secret key (ingest, read, admin)');
  const scopes = parseScopes(scopesText);
  if ('error' in scopes) throw new KeysArgsError(`--scopes: ${scopes.error}`);
  if (kind === 'ingest' && (scopes.scopes.size !== 1 || !scopes.scopes.has('ingest')))
    throw new KeysArgsError('--scopes: an ingest key has the ingest scope only');
  const expires = flags.get('--expires');
  const expiresInMs = expires === undefined ? undefined : parseDuration(expires);
  if (expires !== undefined && !expiresInMs)
    throw new KeysArgsError(`--expires: ${JSON.stringify(expires)} is not a duration after now (90d, 12h)`);
  const listOf = (flag: string) =>
    (flags.get(flag) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  const origins = listOf('--origins');
  const types = listOf('--types');
  for (const flag of ['--origins', '--types'])
    if (flags.has(flag) && kind !== 'ingest')
      throw new KeysArgsError(`${flag}: only ingest keys (--kind ingest) are held to ${flag.slice(2)}`);
  const count = (flag: string) => {
    const text = flags.get(flag);
    if (text === undefined) return undefined;
    if (!/^[1-9]\d{0,14}$/.test(text))
      throw new KeysArgsError(`${flag}: ${JSON.stringify(text)} is not a whole number above 0`);
    return Number(text);
  };
  return {
    action: 'create',
    name: name.trim(),
    kind,
    scopes: scopes.scopes,
    expiresInMs,
    origins,
    types,
    ingestRate: count('--ingest-rate'),
    readRate: count('--read-rate'),
    quota: count('--quota'),
  };
}
