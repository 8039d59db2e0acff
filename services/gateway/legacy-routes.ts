/**
 * The seed event counter's REST routes, kept as compatible aliases of the
 * /v1 API with exactly its request and response shapes.
 */
import type { IngestService } from '../gen/tally/v1/ingest_pb.js';
import type { QueryService } from '../gen/tally/v1/query_pb.js';
import { AppError } from '../infra/app-error.ts';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import { sendJson, sendText } from '../infra/http/http-server.ts';
import type { RequestContext } from './gateway.ts';

export interface LegacyRoute {
  verb: string;
  /** With and without the trailing slash. */
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
      verb: 'PUT',
      paths: ['/event_generate/', '/event_generate'],
      async handle(ctx) {
        const body = objectBody(await ctx.json());
        const event = {
          id: optionalString(body, 'uuid'),
          type: optionalString(body, 'type'),
          ip: optionalString(body, 'ip'),
          target: optionalString(body, 'url'),
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
      verb: 'POST',
      paths: ['/event_track/', '/event_track'],
      async handle(ctx) {
        const body = objectBody(await ctx.json());
        const url = requiredString(body, 'url');
        const counters = await deps.query.getCounters({ target: url });
        sendJson(ctx.response, 200, {
          url,
          events: counters.counts.map((c) => ({ type: c.type, count: Number(c.count) })),
        });
      },
    },
    {
      // {"url","date"} → {"url","date","dateHourEventCounts":[{"datehour","eventCounts":[{"type","count"}]}]}
      verb: 'POST',
      paths: ['/event_report/', '/event_report'],
      async handle(ctx) {
        const body = objectBody(await ctx.json());
        const url = requiredString(body, 'url');
        const date = requiredString(body, 'date');
        const report = await deps.query.getReport({ target: url, date });
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
