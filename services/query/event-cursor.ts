/**
 * The event log's page tokens (docs/events-api.md, "Cursors"): opaque to clients, base64url of a
 * small versioned JSON object — the direction (`n`ext or `p`rev in the listing's order), the
 * (occurred_at µs, id) of the event the page starts beyond, and a digest of the filter the token
 * was made for, so that a token is refused for any other filter. Not signed: a token only moves a
 * listing the caller may make anyway, and each page is checked afresh.
 */
import { createHash } from 'node:crypto';
import type { EventSubject } from '../domain/event-access.ts';
import { AppError } from '../infra/app-error.ts';
import type { EventPosition } from '../infra/events/sql-event-history.ts';

/** What a token is bound to: every field of a listing that decides its events and their order. */
export interface ListingFilter {
  subject: EventSubject;
  type?: string;
  fromUs?: bigint;
  toUs?: bigint;
  order: 'newest' | 'oldest';
}

/** Where a page starts: beyond `at` (absent: at the start) toward `next` or `prev` in the listing's order. */
export interface PageCursor {
  toward: 'next' | 'prev';
  at?: EventPosition;
}

const VERSION = 1;
/** Longer tokens are refused before decoding (a position holds an id of at most 64 characters). */
const MAX_TOKEN_CHARS = 512;

interface RawCursor {
  v: number;
  f: string;
  d: 'n' | 'p';
  t?: string;
  i?: string;
}

/** The filter's digest: 12 base64url characters of SHA-256 over its canonical JSON. */
export function filterDigest(filter: ListingFilter): string {
  const canonical = JSON.stringify([
    filter.subject.kind,
    filter.subject.id,
    filter.type ?? null,
    filter.fromUs?.toString() ?? null,
    filter.toUs?.toString() ?? null,
    filter.order,
  ]);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 12);
}

export function encodeCursor(filter: ListingFilter, cursor: PageCursor): string {
  const raw: RawCursor = { v: VERSION, f: filterDigest(filter), d: cursor.toward === 'next' ? 'n' : 'p' };
  if (cursor.at) {
    raw.t = cursor.at.occurredUs.toString();
    raw.i = cursor.at.id;
  }
  return Buffer.from(JSON.stringify(raw)).toString('base64url');
}

const refused = (description: string) => AppError.invalidField('page_token', description);

/** The cursor `token` holds, or INVALID_ARGUMENT naming `page_token` (not a token, or another filter's). */
export function decodeCursor(token: string, filter: ListingFilter): PageCursor {
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token))
    throw refused('is not a page token this server gave');
  let raw: Partial<RawCursor>;
  try {
    raw = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw refused('is not a page token this server gave');
  }
  if (typeof raw !== 'object' || raw === null || raw.v !== VERSION || (raw.d !== 'n' && raw.d !== 'p'))
    throw refused('is not a page token this server gave');
  if (raw.f !== filterDigest(filter))
    throw refused(
      'was given for another filter: a token continues the listing it came from (same user or target, type, from, to and order)',
    );
  const toward = raw.d === 'n' ? 'next' : 'prev';
  if (raw.t === undefined && raw.i === undefined) return { toward };
  if (
    typeof raw.t !== 'string' ||
    !/^-?\d{1,19}$/.test(raw.t) ||
    typeof raw.i !== 'string' ||
    raw.i.length > 200
  )
    throw refused('is not a page token this server gave');
  return { toward, at: { occurredUs: BigInt(raw.t), id: raw.i } };
}
