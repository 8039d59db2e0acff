/**
 * What the gateway's two pages (the dashboard and the API reference at /docs) share in serving
 * their files: content types, the pages' security headers, content-addressed assets (a digest as
 * the ETag and the version in the URL) and the If-None-Match comparison.
 */
import { createHash } from 'node:crypto';

export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * A page loads only its own files and talks only to its own origin (the WebSocket included);
 * `data:` images are allowed (Swagger UI draws its icons as data: SVG).
 */
export const PAGE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
};

export interface StaticAsset {
  body: Buffer;
  contentType: string;
  /** A strong ETag: the body's digest. */
  etag: string;
  /** The digest in versioned URLs (`?v=`), so that an asset can be cached as immutable. */
  version: string;
}

/** `body` as a content-addressed asset. */
export function staticAsset(body: Buffer, contentType: string): StaticAsset {
  const digest = createHash('sha256').update(body).digest('base64url').slice(0, 22);
  return { body, contentType, etag: `"${digest}"`, version: digest.slice(0, 12) };
}

/** True when an `If-None-Match` header names `etag` (weakly compared, as RFC 9110 asks) or `*`. */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}
