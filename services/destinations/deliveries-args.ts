/**
 * `tally deliveries …` command line → what to do. Every bad value or unknown flag is a
 * DeliveriesArgsError whose message starts with the flag at fault; what only the API can judge
 * (a state, a page token, an unknown id) is left to it.
 */
import { isDestinationId } from '../domain/destinations.ts';

export type DeliveriesAction =
  | {
      action: 'list';
      destinationId?: string;
      state?: string;
      userId?: string;
      sinceMs?: number;
      untilMs?: number;
      pageSize?: number;
      pageToken?: string;
    }
  | { action: 'attempts'; id: string }
  | { action: 'redeliver'; id: string }
  | { action: 'recover'; destinationId: string; sinceMs: number };

export const DELIVERIES_USAGE = `usage:
  tally deliveries list [--destination ds_…] [--state pending|delivered|dead] [--user <id>]
                        [--since <time>] [--until <time>] [--limit 50] [--page <token>]
  tally deliveries attempts <msg_…>
  tally deliveries redeliver <msg_…>
  tally deliveries recover <ds_…> --since <time>
<time>: an ISO 8601 time (2026-01-15T00:00:00Z) or an age: 30m, 6h, 2d ago.
list shows the newest first, a page at a time (the next page's --page is printed below it).
attempts: a delivery's attempts, first first. redeliver: sends a dead or delivered delivery again
(same webhook-id). recover: sends again every dead letter of a destination since <time>.
docs/delivery.md, "Deliveries: the admin API".`;

/** A bad command line; `message` names the flag. */
export class DeliveriesArgsError extends Error {
  override readonly name = 'DeliveriesArgsError';
}

const AGE = /^(\d+)(s|m|h|d)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `text` as ms since the epoch: an ISO 8601 time with its zone, or an age before `nowMs`. */
export function timeArg(flag: string, text: string, nowMs: number): number {
  const age = AGE.exec(text);
  if (age) return nowMs - Number(age[1]) * UNIT_MS[age[2] as keyof typeof UNIT_MS];
  const ms = /^\d{4}-\d{2}-\d{2}(T.*(Z|[+-]\d{2}:?\d{2}))?$/.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms))
    throw new DeliveriesArgsError(
      `${flag}: must be an ISO 8601 time with its zone (2026-01-15T00:00:00Z) or an age (30m, 6h, 2d), got ${JSON.stringify(text)}`,
    );
  return ms;
}

function flagValues(
  action: string,
  args: readonly string[],
  allowed: readonly string[],
): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    if (!allowed.includes(flag))
      throw new DeliveriesArgsError(
        flag.startsWith('--')
          ? `${flag}: unknown flag for ${action}`
          : `${action}: unexpected argument ${JSON.stringify(flag)}`,
      );
    const value = args[++i];
    if (value === undefined) throw new DeliveriesArgsError(`${flag}: needs a value`);
    if (out.has(flag)) throw new DeliveriesArgsError(`${flag}: given twice`);
    out.set(flag, value);
  }
  return out;
}

export function parseDeliveriesArgs(args: readonly string[], nowMs: number): DeliveriesAction {
  const [action, ...rest] = args;
  const needId = (what: 'delivery' | 'destination'): [string, readonly string[]] => {
    const [id, ...flags] = rest;
    if (id === undefined || id.startsWith('--'))
      throw new DeliveriesArgsError(
        `${action}: needs a ${what} id (${what === 'delivery' ? 'msg_…' : 'ds_…'})`,
      );
    if (what === 'destination' && !isDestinationId(id))
      throw new DeliveriesArgsError(`${action}: ${JSON.stringify(id)} is not a destination id (ds_…)`);
    if (what === 'delivery' && !id.startsWith('msg_'))
      throw new DeliveriesArgsError(
        `${action}: ${JSON.stringify(id)} is not a delivery id (msg_…, the webhook-id)`,
      );
    return [id, flags];
  };
  switch (action) {
    case 'list': {
      const f = flagValues(action, rest, [
        '--destination',
        '--state',
        '--user',
        '--since',
        '--until',
        '--limit',
        '--page',
      ]);
      const out: DeliveriesAction = { action };
      const destination = f.get('--destination');
      if (destination !== undefined) {
        if (!isDestinationId(destination))
          throw new DeliveriesArgsError(
            `--destination: ${JSON.stringify(destination)} is not a destination id (ds_…)`,
          );
        out.destinationId = destination;
      }
      if (f.has('--state')) out.state = f.get('--state')!;
      if (f.has('--user')) out.userId = f.get('--user')!;
      if (f.has('--since')) out.sinceMs = timeArg('--since', f.get('--since')!, nowMs);
      if (f.has('--until')) out.untilMs = timeArg('--until', f.get('--until')!, nowMs);
      const limit = f.get('--limit');
      if (limit !== undefined) {
        if (!/^\d+$/.test(limit))
          throw new DeliveriesArgsError(`--limit: must be a whole number, got ${JSON.stringify(limit)}`);
        out.pageSize = Number(limit);
      }
      if (f.has('--page')) out.pageToken = f.get('--page')!;
      return out;
    }
    case 'attempts':
    case 'redeliver': {
      const [id, flags] = needId('delivery');
      if (flags.length > 0) throw new DeliveriesArgsError(`${action}: takes only an id, got ${flags[0]}`);
      return { action, id };
    }
    case 'recover': {
      const [destinationId, flags] = needId('destination');
      const since = flagValues(action, flags, ['--since']).get('--since');
      if (since === undefined)
        throw new DeliveriesArgsError('--since: is required (the dead letters since when to send again)');
      return { action, destinationId, sinceMs: timeArg('--since', since, nowMs) };
    }
    default:
      throw new DeliveriesArgsError(
        action === undefined
          ? 'deliveries: needs an action'
          : `deliveries: unknown action ${JSON.stringify(action)}`,
      );
  }
}
