/**
 * The seed event counter's REST routes, kept as compatible aliases of the
 * /v1 API with exactly its request and response shapes, and the seed's
 * leniencies where they are harmless (an unparseable ip; see README).
 */
import { isIpAddress } from '../domain/event-rules.ts';
import type { IngestService } from '../gen/tally/v1/ingest_pb.js';
import type { QueryService } from '../gen/tally/v1/query_pb.js';
import { AppError } from '../infra/app-error.ts';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import { sendJson, sendText } from '../infra/http/http-server.ts';
import type { RequestContext } from './request-context.ts';
import { LEGACY_ROUTES, type RouteDoc } from './route-docs.ts';

export interface LegacyRoute {
  verb: string;
  /** With and without the trailing slash; the first is the documented one. */
  paths: string[];
  handle(ctx: RequestContext): Promise<void>;
}

interface LegacyDeps {
  ingest: ServiceClient<(typeof IngestService)['method']>;
  query: ServiceClient<(typeof QueryService)['method']>;
}

export function legacyRoutes(deps: LegacyDeps): LegacyRoute[] {
  return [
    {
      // {"uuid","type","ip","url"} → 200 text/plain OK, once Kafka acknowledged.
      ...served(LEGACY_ROUTES.generate),
      async handle(ctx) {
        const body = objectBody(await ctx.json());
        ctx.takeBodyKey(body);
        const event = {
          id: optionalString(body, 'uuid'),
          type: optionalString(body, 'type'),
          target: optionalString(body, 'url'),
          ...seedIp(optionalString(body, 'ip')),
        };
        try {
          await ctx.publish(event);
        } catch (error) {
          throw inSeedTerms(error);
        }
        sendText(ctx.response, 200, 'OK');
      },
    },
    {
      // {"url"} → {"url","events":[{"type","count"}]}
      ...served(LEGACY_ROUTES.track),
      async handle(ctx) {
        const body = objectBody(await ctx.json());
        const url = requiredString(body, 'url');
        const counters = await deps.query.getCounters({ target: url }, { metadata: ctx.callMetadata() });
        sendJson(ctx.response, 200, { url, events: seedTrack(counters.counts) });
      },
    },
    {
      // {"url","date"} → {"url","date","dateHourEventCounts":[{"datehour","eventCounts":[{"type","count"}]}]}
      ...served(LEGACY_ROUTES.report),
      async handle(ctx) {
        const body = objectBody(await ctx.json());
        const url = requiredString(body, 'url');
        const date = requiredString(body, 'date');
        const report = await deps.query.getReport({ target: url, date }, { metadata: ctx.callMetadata() });
        sendJson(ctx.response, 200, {
          url,
          date,
          dateHourEventCounts: report.hours.map((h) => ({
            datehour: h.hour,
            eventCounts: h.counts.map((c) => ({ type: c.type, count: Number(c.count) })),
          })),
        });
      },
    },
  ];
}

/** The verb and paths of a documented route (route-docs.ts describes it in the OpenAPI document). */
function served(doc: RouteDoc): Pick<LegacyRoute, 'verb' | 'paths'> {
  return { verb: doc.verb, paths: [doc.path, ...doc.aliases] };
}

/** Longest `raw_ip` attribute kept from an unparseable seed ip, in UTF-16 code units. */
export const MAX_RAW_IP_CHARS = 64;

/**
 * The seed accepted any text as `ip` (its own README and traffic generator send
 * `323.3253.34.999`). An address is kept; anything else is dropped, so the server fills the ip
 * from the request as for any event without one, and kept as the attribute `raw_ip`, cut to
 * {@link MAX_RAW_IP_CHARS} — unless it holds text no attribute may hold (control characters,
 * invalid Unicode), then it is dropped altogether.
 */
export function seedIp(ip: string): { ip: string; attributes?: Record<string, string> } {
  if (ip === '' || isIpAddress(ip)) return { ip };
  let raw = ip.slice(0, MAX_RAW_IP_CHARS);
  if (/[\uD800-\uDBFF]$/.test(raw)) raw = raw.slice(0, -1); // the cut split a surrogate pair
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what an attribute may not hold
  const unfit = /[\u0000-\u001f\u007f-\u009f\ufffd]/.test(raw) || !raw.isWellFormed();
  return unfit ? { ip: '' } : { ip: '', attributes: { raw_ip: raw } };
}

/** The types every seed answer starts with, in this order, zero-filled: its clients index into them. */
export const SEED_TYPES: readonly string[] = ['CLICK', 'VIEW'];

/** `/event_track/`'s `events`: CLICK and VIEW first (0 when never seen), then the other types in `counts`' order. */
export function seedTrack(
  counts: readonly { type: string; count: bigint }[],
): { type: string; count: number }[] {
  const byType = new Map(counts.map((c) => [c.type, Number(c.count)]));
  return [
    ...SEED_TYPES.map((type) => ({ type, count: byType.get(type) ?? 0 })),
    ...counts
      .filter((c) => !SEED_TYPES.includes(c.type))
      .map((c) => ({ type: c.type, count: Number(c.count) })),
  ];
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw AppError.invalidField('body', 'must be a JSON object');
  return body as Record<string, unknown>;
}

function optionalString(body: Record<string, unknown>, field: string): string {
  const value = body[field];
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw AppError.invalidField(field, 'must be a string');
  return value;
}

function requiredString(body: Record<string, unknown>, field: string): string {
  const value = optionalString(body, field);
  if (value === '') throw AppError.invalidField(field, 'is required');
  return value;
}

const SEED_FIELDS: ReadonlyMap<string, string> = new Map([
  ['event.id', 'uuid'],
  ['event.type', 'type'],
  ['event.ip', 'ip'],
  ['event.target', 'url'],
]);

/** A validation error of the event, reported with the seed's field names. */
function inSeedTerms(error: unknown): unknown {
  if (!(error instanceof AppError) || !error.fieldViolations.some((v) => SEED_FIELDS.has(v.field)))
    return error;
  return error.renameFields((field) => SEED_FIELDS.get(field) ?? field);
}
