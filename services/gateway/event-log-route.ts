/**
 * GET /v1/events as HAL (docs/events-api.md): the answer of EventLogService/ListEvents as
 * `application/hal+json` — `_links` (self, next, prev, and the listing's user or target resources)
 * and `_embedded.events`, each event with links of its own — and the same links in a `Link`
 * header (RFC 8288). Caching: every page has a strong `ETag`; a page of a closed range is
 * `immutable`, any other `no-cache` (revalidated with `If-None-Match`, answered 304 when
 * unchanged). `Prefer: wait=N` (RFC 7240; N capped at 30) long-polls: query answers once the page
 * changes or after N seconds, and `Preference-Applied` says the wait was honoured.
 */
import { toJson } from '@bufbuild/protobuf';
import type { EventLogService, ListEventsRequest } from '../gen/tally/v1/event_log_pb.js';
import { EventSchema } from '../gen/tally/v1/event_pb.js';
import { AppError, Code } from '../infra/app-error.ts';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import type { DedicatedRoute } from './rest-transcoder.ts';

export const HAL_CONTENT_TYPE = 'application/hal+json; charset=utf-8';
/** How long a closed range's page may be kept: a day (it never changes; retention may remove it later). */
export const CLOSED_MAX_AGE_S = 86_400;
/** The longest wait `Prefer: wait` is honoured for, seconds. */
export const MAX_PREFER_WAIT_S = 30;

export interface EventLogRouteOptions {
  /** Absent: the route answers UNIMPLEMENTED. */
  events?: ServiceClient<(typeof EventLogService)['method']>;
  /** Each call's deadline, beyond its wait. */
  requestTimeoutMs: number;
}

interface Link {
  href: string;
  templated?: boolean;
}

/** The route's handler, for the transcoder's `dedicated` routes. */
export function eventLogRoute(options: EventLogRouteOptions): DedicatedRoute {
  return async (decoded, ctx, url, keys) => {
    const { events } = options;
    if (!events)
      throw new AppError(Code.UNIMPLEMENTED, 'tally.v1.EventLogService/ListEvents is not served here');
    const request = decoded as ListEventsRequest;
    const wait = preferredWait(ctx.request.headersDistinct.prefer?.join(','));
    if (wait !== undefined) request.waitSeconds = wait;
    const known = ifNoneMatch(ctx.request.headers['if-none-match']);
    if (known !== undefined) request.knownEtag = known;
    let page: Awaited<ReturnType<typeof events.listEvents>>;
    try {
      page = await events.listEvents(request, {
        metadata: { ...ctx.callMetadata(), 'x-forwarded-for': ctx.clientIp },
        timeoutMs: options.requestTimeoutMs + request.waitSeconds * 1000,
      });
    } catch (error) {
      // Fields by the names the client used: its query keys, and the headers it sent.
      const names = new Map([...keys, ['wait_seconds', 'Prefer'], ['known_etag', 'If-None-Match']]);
      if (!(error instanceof AppError) || error.fieldViolations.length === 0) throw error;
      throw error.renameFields((f) => names.get(f) ?? f, { reason: error.reason, metadata: error.metadata });
    }

    const links = pageLinks(url, request, page);
    const headers: Record<string, string> = {
      etag: `"${page.etag}"`,
      'cache-control': page.closed
        ? `${ctx.request.headers.authorization ? 'private' : 'public'}, max-age=${CLOSED_MAX_AGE_S}, immutable`
        : 'no-cache',
      vary: 'Authorization',
      link: linkHeader(links),
    };
    if (page.waitedSeconds > 0) headers['preference-applied'] = `wait=${page.waitedSeconds}`;
    if (page.notModified) {
      ctx.response.writeHead(304, headers);
      ctx.response.end();
      return;
    }
    const body = {
      _links: links,
      _embedded: {
        events: page.events.map((event) => ({
          ...(toJson(EventSchema, event, { alwaysEmitImplicit: true }) as Record<string, unknown>),
          _links: eventLinks(event.target, event.userId),
        })),
      },
      closed: page.closed,
      ...(page.estimatedTotal === undefined ? {} : { estimatedTotal: page.estimatedTotal.toString() }),
    };
    const text = JSON.stringify(body);
    ctx.response.writeHead(200, {
      'content-type': HAL_CONTENT_TYPE,
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    ctx.response.end(text);
  };
}

/** `url` with its page token replaced by `token` (none: removed). */
function withToken(url: URL, token: string | undefined): string {
  const next = new URL(url);
  next.searchParams.delete('page_token');
  next.searchParams.delete('pageToken');
  if (token) next.searchParams.set('pageToken', token);
  return `${next.pathname}${next.search}`;
}

const q = encodeURIComponent;

function pageLinks(
  url: URL,
  request: ListEventsRequest,
  page: { nextPageToken: string; prevPageToken: string },
): Record<string, Link> {
  const links: Record<string, Link> = { self: { href: `${url.pathname}${url.search}` } };
  if (page.nextPageToken) links.next = { href: withToken(url, page.nextPageToken) };
  if (page.prevPageToken) links.prev = { href: withToken(url, page.prevPageToken) };
  links.first = { href: withToken(url, undefined) };
  if (request.target !== '') Object.assign(links, targetLinks(request.target));
  if (request.user !== '') links.user = { href: `/v1/events?user=${q(request.user)}` };
  return links;
}

/** A target's resources: its live counters and its daily report (a template over the date). */
function targetLinks(target: string): Record<string, Link> {
  return {
    target: { href: `/v1/counters?target=${q(target)}` },
    report: { href: `/v1/report?target=${q(target)}{&date}`, templated: true },
  };
}

function eventLinks(target: string, userId: string): Record<string, Link> {
  const links: Record<string, Link> = {
    ...targetLinks(target),
    'target-events': { href: `/v1/events?target=${q(target)}` },
  };
  if (userId !== '') links.user = { href: `/v1/events?user=${q(userId)}` };
  return links;
}

/** The links as an RFC 8288 `Link` header (templated ones left out: a header holds URIs). */
function linkHeader(links: Record<string, Link>): string {
  return Object.entries(links)
    .filter(([, link]) => !link.templated)
    .map(([rel, link]) => `<${link.href}>; rel="${rel}"`)
    .join(', ');
}

/** The `wait` of a `Prefer` header in seconds, capped at MAX_PREFER_WAIT_S; undefined when absent or not a count. */
export function preferredWait(header: string | undefined): number | undefined {
  if (!header) return undefined;
  for (const preference of header.split(',')) {
    const match = /^\s*wait\s*=\s*"?(\d{1,9})"?\s*(;.*)?$/i.exec(preference);
    if (match) return Math.min(Number(match[1]), MAX_PREFER_WAIT_S);
  }
  return undefined;
}

/** The first entity tag of an `If-None-Match` header, without quotes (weak tags compare as strong ones, as RFC 9110 says for it). */
export function ifNoneMatch(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^\s*(?:W\/)?"([^"]{1,100})"/.exec(header);
  return match?.[1];
}
