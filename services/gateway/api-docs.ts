/**
 * The API description: `GET /openapi.json` (the committed document,
 * services/gen/openapi.json, made by `npm run generate`) and the reference page
 * `GET /docs`, Swagger UI from the swagger-ui-dist package and services/gateway/api-docs/,
 * served from this origin only. The page's files are read on the first request
 * for the page (about 2 MB that most gateways never serve), then kept in memory,
 * gzipped for clients that accept it; the page links them with `?v=<digest>`
 * (cached for a year), the page and the document are revalidated against strong ETags.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { AppError, Code } from '../infra/app-error.ts';
import { sendJson } from '../infra/http/http-server.ts';
import { DOCS_PATH, OPENAPI_PATH } from './route-docs.ts';
import {
  CONTENT_TYPES,
  etagMatches,
  PAGE_SECURITY_HEADERS,
  type StaticAsset,
  staticAsset,
} from './static-asset.ts';

export const OPENAPI_FILE = join(import.meta.dirname, '..', 'gen', 'openapi.json');
const PAGE_DIR = join(import.meta.dirname, 'api-docs');
const ASSETS_PATH = `${DOCS_PATH}/assets/`;

/** The page's files: name → where it is read from. */
function assetFiles(): Record<string, string> {
  const swaggerUi = dirname(fileURLToPath(import.meta.resolve('swagger-ui-dist/package.json')));
  return {
    'swagger-ui.css': join(swaggerUi, 'swagger-ui.css'),
    'swagger-ui-bundle.js': join(swaggerUi, 'swagger-ui-bundle.js'),
    'favicon-32x32.png': join(swaggerUi, 'favicon-32x32.png'),
    'api-docs.js': join(PAGE_DIR, 'api-docs.js'),
  };
}

interface Asset extends StaticAsset {
  /** Only when it saves something. */
  gzipped?: Buffer;
}

function makeAsset(body: Buffer, contentType: string): Asset {
  const compressible = !contentType.startsWith('image/');
  const gzipped = compressible ? gzipSync(body) : undefined;
  return {
    ...staticAsset(body, contentType),
    gzipped: gzipped && gzipped.length < body.length ? gzipped : undefined,
  };
}

export interface ApiDocs {
  /** True for `/openapi.json`, `/docs`, `/docs/` and `/docs/assets/…` (served or answered 404/405 here). */
  owns(path: string): boolean;
  /** The route label of an owned path (a template: never an asset's name). */
  route(path: string): string;
  serve(request: IncomingMessage, response: ServerResponse, url: URL): void;
}

export function loadApiDocs(openApiFile: string = OPENAPI_FILE): ApiDocs {
  const document = makeAsset(readFileSync(openApiFile), CONTENT_TYPES['.json']!);
  let page: { html: Asset; assets: Map<string, Asset> } | undefined;
  const loadPage = () => {
    if (page) return page;
    const assets = new Map<string, Asset>();
    for (const [name, file] of Object.entries(assetFiles()))
      assets.set(name, makeAsset(readFileSync(file), CONTENT_TYPES[extname(name)]!));
    let html = readFileSync(join(PAGE_DIR, 'index.html'), 'utf8');
    for (const [name, asset] of assets)
      html = html.replaceAll(`"${ASSETS_PATH}${name}"`, `"${ASSETS_PATH}${name}?v=${asset.version}"`);
    page = { html: makeAsset(Buffer.from(html, 'utf8'), CONTENT_TYPES['.html']!), assets };
    return page;
  };
  const isPage = (path: string) => path === DOCS_PATH || path === `${DOCS_PATH}/`;

  return {
    owns: (path) => path === OPENAPI_PATH || isPage(path) || path.startsWith(ASSETS_PATH),
    route: (path) => (path === OPENAPI_PATH ? OPENAPI_PATH : isPage(path) ? DOCS_PATH : `${ASSETS_PATH}*`),

    serve(request, response, url) {
      const path = url.pathname;
      let asset: Asset | undefined;
      if (path === OPENAPI_PATH) asset = document;
      else if (isPage(path)) asset = loadPage().html;
      else asset = loadPage().assets.get(path.slice(ASSETS_PATH.length));
      if (!asset) throw new AppError(Code.NOT_FOUND, `no asset ${path}`);
      const verb = request.method ?? 'GET';
      if (verb !== 'GET' && verb !== 'HEAD') {
        const allow = 'GET, HEAD';
        const message = `${path} accepts ${allow}`;
        sendJson(response, 405, { error: { code: 405, status: 'METHOD_NOT_ALLOWED', message } }, { allow });
        return;
      }
      const versioned = path.startsWith(ASSETS_PATH) && url.searchParams.get('v') === asset.version;
      const gzip =
        asset.gzipped !== undefined && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
      const headers: Record<string, string | number> = {
        'content-type': asset.contentType,
        'cache-control': versioned ? 'public, max-age=31536000, immutable' : 'no-cache',
        'x-content-type-options': 'nosniff',
        ...(asset.gzipped ? { vary: 'accept-encoding' } : {}),
        ...(isPage(path) ? PAGE_SECURITY_HEADERS : {}),
      };
      // Each encoding is its own representation, with its own strong ETag.
      const etag = gzip ? `${asset.etag.slice(0, -1)}-gzip"` : asset.etag;
      headers.etag = etag;
      if (etagMatches(request.headers['if-none-match'], etag)) {
        response.writeHead(304, headers);
        response.end();
        return;
      }
      const body = gzip ? asset.gzipped! : asset.body;
      response.writeHead(200, {
        ...headers,
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
        'content-length': body.length,
      });
      response.end(verb === 'HEAD' ? undefined : body);
    },
  };
}
