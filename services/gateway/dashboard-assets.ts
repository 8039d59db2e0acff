/**
 * The live dashboard's files (services/gateway/dashboard/), read once at start
 * and served from memory: the page at `/`, its files at `/assets/<name>`.
 * The page links its files as `/assets/<name>?v=<digest>`: such a versioned URL
 * is cached for a year (`immutable`); the page itself and unversioned URLs are
 * revalidated (`no-cache`) against a strong ETag.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { AppError, Code } from '../infra/app-error.ts';
import { methodNotAllowed } from '../infra/http/http-server.ts';
import {
  CONTENT_TYPES,
  etagMatches,
  PAGE_SECURITY_HEADERS,
  type StaticAsset,
  staticAsset,
} from './static-asset.ts';

type Asset = StaticAsset;

export interface DashboardAssets {
  /** True when `path` is the page or an asset path (served or answered 404/405 here). */
  owns(path: string): boolean;
  /** Serves the page or an asset; throws AppError NOT_FOUND for an unknown asset. */
  serve(request: IncomingMessage, response: ServerResponse, url: URL): void;
}

export const DASHBOARD_DIR = join(import.meta.dirname, 'dashboard');

export function loadDashboardAssets(dir: string = DASHBOARD_DIR): DashboardAssets {
  const assets = new Map<string, Asset>();
  const make = staticAsset;
  for (const name of readdirSync(dir)) {
    const contentType = CONTENT_TYPES[extname(name)];
    if (contentType && name !== 'index.html')
      assets.set(name, make(readFileSync(join(dir, name)), contentType));
  }
  let html = readFileSync(join(dir, 'index.html'), 'utf8');
  for (const [name, asset] of assets)
    html = html.replaceAll(`"/assets/${name}"`, `"/assets/${name}?v=${asset.version}"`);
  const page = make(Buffer.from(html, 'utf8'), CONTENT_TYPES['.html']!);

  return {
    owns: (path) => path === '/' || path === '/index.html' || path.startsWith('/assets/'),

    serve(request, response, url) {
      const verb = request.method ?? 'GET';
      const isPage = url.pathname === '/' || url.pathname === '/index.html';
      const name = isPage ? undefined : decodeURIComponentSafe(url.pathname.slice('/assets/'.length));
      const asset = isPage ? page : name === undefined ? undefined : assets.get(name);
      if (!asset) throw new AppError(Code.NOT_FOUND, `no asset ${url.pathname}`);
      if (verb !== 'GET' && verb !== 'HEAD') {
        throw methodNotAllowed(['GET', 'HEAD'], url.pathname);
      }
      const versioned = !isPage && url.searchParams.get('v') === asset.version;
      const headers: Record<string, string | number> = {
        'content-type': asset.contentType,
        etag: asset.etag,
        'cache-control': versioned ? 'public, max-age=31536000, immutable' : 'no-cache',
        'x-content-type-options': 'nosniff',
        ...(isPage ? PAGE_SECURITY_HEADERS : {}),
      };
      if (etagMatches(request.headers['if-none-match'], asset.etag)) {
        response.writeHead(304, headers);
        response.end();
        return;
      }
      response.writeHead(200, { ...headers, 'content-length': asset.body.length });
      response.end(verb === 'HEAD' ? undefined : asset.body);
    },
  };
}

function decodeURIComponentSafe(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
