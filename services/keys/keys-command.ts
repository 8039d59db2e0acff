/**
 * `tally keys create|list|revoke|rotate`: API key administration on the configured database
 * (main.ts opens it and applies the migrations). A new key is printed once, never logged; listings
 * show display ids, never keys or hashes. Exit status: 0 done, 1 refused (unknown id, a key
 * already rotated), 2 a bad command line.
 *
 * `tally keys generate` prints a fresh key and opens nothing: a well-formed key (its checksum
 * included) to hand to Tally as TALLY_BOOTSTRAP_ADMIN_KEY, e.g. in a Kubernetes Secret, from a
 * machine or an image that has no access to the database.
 */
import { randomBytes } from 'node:crypto';
import { API_KEY_RANDOM_BYTES, formatApiKey } from '../domain/api-keys.ts';
import { formatColumns, minuteTime } from '../domain/text-table.ts';
import { AppError, Code } from '../infra/app-error.ts';
import type { ApiKeyRecord, CreatedKey, KeyStore } from '../infra/keys/key-store.ts';
import { KEYS_USAGE, KeysArgsError, parseKeysArgs } from './keys-args.ts';

export interface KeysCommandIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
  /** The clock (default: the system's). */
  now?: () => Date;
}

/** The key store on the configured database, and how to close both. */
export type OpenKeyStore = () => Promise<{ store: KeyStore; close(): Promise<void> }>;

/** The create flag behind each field of a key spec, for errors the store reports by field. */
const FLAG_OF_FIELD: Record<string, string> = {
  name: '--name',
  kind: '--kind',
  scopes: '--scopes',
  expiresAt: '--expires',
  allowedOrigins: '--origins',
  allowedTypes: '--types',
  'limits.ingestEventsPerMinute': '--ingest-rate',
  'limits.readsPerMinute': '--read-rate',
  monthlyQuota: '--quota',
  graceMs: '--grace',
};

export async function keysCommand(
  args: readonly string[],
  openStore: OpenKeyStore,
  io: KeysCommandIo,
): Promise<number> {
  const now = io.now ?? (() => new Date());
  if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    io.out.write(`${KEYS_USAGE}\n`);
    return 0;
  }
  let action: ReturnType<typeof parseKeysArgs>;
  try {
    action = parseKeysArgs(args);
  } catch (error) {
    if (!(error instanceof KeysArgsError)) throw error;
    io.err.write(`tally: ${error.message}\n${KEYS_USAGE}\n`);
    return 2;
  }
  if (action.action === 'generate') {
    // The key alone on stdout, so that `$(tally keys generate)` is the key; nothing stored.
    io.out.write(`${formatApiKey(action.kind, new Uint8Array(randomBytes(API_KEY_RANDOM_BYTES)))}\n`);
    return 0;
  }
  const { store, close } = await openStore();
  try {
    switch (action.action) {
      case 'create': {
        const at = now();
        const created = await store.create({
          name: action.name,
          kind: action.kind,
          scopes: action.scopes,
          expiresAt:
            action.expiresInMs === undefined ? undefined : new Date(at.getTime() + action.expiresInMs),
          allowedOrigins: action.origins,
          allowedTypes: action.types,
          limits: {
            ...(action.ingestRate === undefined ? {} : { ingestEventsPerMinute: action.ingestRate }),
            ...(action.readRate === undefined ? {} : { readsPerMinute: action.readRate }),
          },
          monthlyQuota: action.quota,
        });
        printCreated(io, created);
        return 0;
      }
      case 'list':
        io.out.write(table(await store.list()));
        return 0;
      case 'revoke': {
        const record = await store.revoke(action.id);
        io.out.write(`revoked API key ${record.id} (${record.name}) at ${minuteTime(record.revokedAt)}\n`);
        return 0;
      }
      case 'rotate': {
        const created = await store.rotate(action.id, action.graceMs);
        const old = await store.get(action.id);
        printCreated(io, created);
        io.out.write(`replaces:  ${action.id}, which works until ${minuteTime(old?.expiresAt)}\n`);
        return 0;
      }
    }
  } catch (error) {
    if (!(error instanceof AppError) || error.code === Code.INTERNAL || error.code === Code.UNAVAILABLE)
      throw error;
    const field = error.field;
    const flag =
      field === undefined
        ? undefined
        : (FLAG_OF_FIELD[field] ?? FLAG_OF_FIELD[field.replace(/\[\d+\]$/, '')]);
    const message =
      flag !== undefined && field !== undefined && error.message.startsWith(`${field}: `)
        ? `${flag}: ${error.message.slice(field.length + 2)}`
        : error.message;
    io.err.write(`tally: keys ${action.action}: ${message}\n`);
    return error.code === Code.INVALID_ARGUMENT ? 2 : 1;
  } finally {
    await close();
  }
}

function printCreated(io: KeysCommandIo, { key, record }: CreatedKey): void {
  const lines = [
    ['id', record.id],
    ['name', record.name],
    ['kind', record.kind],
    ['scopes', record.scopes.join(',')],
    ['expires', minuteTime(record.expiresAt, 'never')],
  ];
  if (record.allowedOrigins.length > 0) lines.push(['origins', record.allowedOrigins.join(',')]);
  if (record.allowedTypes.length > 0) lines.push(['types', record.allowedTypes.join(',')]);
  if (record.limits.ingestEventsPerMinute !== undefined)
    lines.push(['ingest rate', `${record.limits.ingestEventsPerMinute} events/min`]);
  if (record.limits.readsPerMinute !== undefined)
    lines.push(['read rate', `${record.limits.readsPerMinute} reads/min`]);
  if (record.monthlyQuota !== undefined) lines.push(['quota', `${record.monthlyQuota} events/month`]);
  lines.push(['key', key]);
  io.out.write(lines.map(([label, value]) => `${`${label}:`.padEnd(11)}${value}\n`).join(''));
  io.err.write('This key is shown once and never again: store it now (Tally keeps only its SHA-256).\n');
}

/** `2026-01-15 12:00Z`, or `dash` for none. */
/** The listing: one line per key, aligned columns; never a key or a hash. */
function table(records: readonly ApiKeyRecord[]): string {
  if (records.length === 0) return 'no API keys\n';
  const rows = [
    ['ID', 'NAME', 'KIND', 'SCOPES', 'CREATED', 'LAST USED', 'EXPIRES', 'REVOKED'],
    ...records.map((r) => [
      r.id,
      r.replacedBy === undefined ? r.name : `${r.name} (replaced by ${r.replacedBy})`,
      r.kind,
      r.scopes.join(','),
      minuteTime(r.createdAt),
      minuteTime(r.lastUsedAt),
      minuteTime(r.expiresAt, 'never'),
      minuteTime(r.revokedAt),
    ]),
  ];
  return formatColumns(rows);
}
