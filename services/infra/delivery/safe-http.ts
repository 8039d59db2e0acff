/**
 * HTTP requests to addresses users chose, refused where they would reach this host or a private
 * network (SSRF; docs/webhooks.md). Through undici:
 * - the URL is checked first (scheme, credentials, literal addresses in any legacy form, local
 *   names): domain/network-address.ts `checkDestinationUrl`;
 * - the Agent's connector checks again AT CONNECT TIME: a literal address before dialling, a name
 *   through a `lookup` that resolves it and refuses the connection when ANY address it resolves
 *   to is refused. The check and the connection use the same answer, so a name that resolves to
 *   a public address when the destination is saved and to 127.0.0.1 later (DNS rebinding) is
 *   refused when it matters;
 * - redirects are never followed (a 3xx is answered as it is);
 * - the response body is read up to `maxResponseBytes`, then the connection is dropped;
 * - connect, headers and body timeouts, and a deadline for the whole request.
 * Connections are pooled per origin (keep-alive) by the Agent.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import {
  type Cidr,
  checkAddress,
  checkDestinationUrl,
  isLocalName,
  parseCidr,
  parseIp,
} from '../../domain/network-address.ts';

export interface SafeHttpOptions {
  /** CIDR blocks that may be reached although not public (`10.20.0.0/16`, `127.0.0.1/32`). */
  allowList?: readonly string[];
  /** The resolver (default node's `dns.lookup`); tests map names to addresses with it. */
  lookup?: LookupFunction;
  /** Default 5 s. */
  connectTimeoutMs?: number;
  /** From the request sent to the response's headers; default 15 s. */
  headersTimeoutMs?: number;
  /** Between two chunks of the response body; default 10 s. */
  bodyTimeoutMs?: number;
  /** The whole request, connection included; default 30 s. */
  totalTimeoutMs?: number;
  /** Response bytes kept; beyond them the connection is dropped. Default 64 KiB. */
  maxResponseBytes?: number;
  /** How long an idle pooled connection is kept; default 30 s. */
  keepAliveTimeoutMs?: number;
  /** Connections per origin; default 16. */
  connectionsPerOrigin?: number;
  /** PEM certificates trusted besides the system's (a private CA). */
  ca?: string;
}

export interface SafeRequest {
  url: string;
  method?: 'POST' | 'GET' | 'PUT';
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Let `http:` through (default: `https:` only). */
  allowPlainHttp?: boolean;
  signal?: AbortSignal;
}

/** How a request ended. */
export type SafeResult =
  | {
      kind: 'response';
      status: number;
      headers: Record<string, string | string[] | undefined>;
      /** The first `maxResponseBytes` of the body. */
      body: Buffer;
      /** The body was longer (or stalled): the rest was not read and the connection dropped. */
      truncated: boolean;
      /** ms from the call to the end of the body read. */
      latencyMs: number;
    }
  /** Refused before or while connecting: the URL, or an address it led to (nothing was sent). */
  | { kind: 'refused'; reason: string; latencyMs: number }
  | { kind: 'failed'; failure: NetworkFailure; message: string; latencyMs: number };

/** Why a request got no response. */
export type NetworkFailure = 'timeout' | 'dns' | 'connect' | 'tls' | 'network' | 'aborted';

export interface SafeHttp {
  send(req: SafeRequest): Promise<SafeResult>;
  close(): Promise<void>;
}

/** Thrown inside the connector for a refused address; answered as `refused`. */
export class AddressRefusedError extends Error {
  readonly code = 'ERR_TALLY_ADDRESS_REFUSED';
}

/** A `lookup` answering only when every address the name resolves to is allowed. */
export function guardedLookup(allowList: readonly Cidr[], base: LookupFunction = dnsLookup): LookupFunction {
  return ((hostname: string, options: LookupAllOptions, callback: (...args: unknown[]) => void) => {
    if (isLocalName(hostname)) {
      callback(new AddressRefusedError(`host ${hostname} is a local name`));
      return;
    }
    base(hostname, { ...options, all: true }, ((error: Error | null, addresses: LookupAddress[]) => {
      if (error) return callback(error);
      if (addresses.length === 0) return callback(new Error(`${hostname} resolved to no address`));
      for (const { address } of addresses) {
        const ip = parseIp(address);
        const verdict = ip
          ? checkAddress(ip, allowList)
          : { allowed: false as const, reason: 'not an address' };
        if (!verdict.allowed)
          return callback(new AddressRefusedError(`${hostname} resolves to ${address}: ${verdict.reason}`));
      }
      if (options.all) callback(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    }) as never);
  }) as LookupFunction;
}

const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH)/;

function classify(error: unknown): { failure: NetworkFailure | 'refused'; message: string } {
  // undici wraps some causes; node's AggregateError holds one error per address tried.
  const chain: unknown[] = [];
  for (let e: unknown = error; e && chain.length < 5; e = (e as { cause?: unknown }).cause) {
    chain.push(e);
    for (const inner of (e as { errors?: unknown[] }).errors ?? []) chain.push(inner);
  }
  const refused = chain.find((e) => e instanceof AddressRefusedError);
  if (refused) return { failure: 'refused', message: (refused as Error).message };
  const codes = chain.map((e) =>
    String((e as { code?: unknown }).code ?? (e as { name?: unknown }).name ?? ''),
  );
  const message = chain
    .map((e) => (e instanceof Error ? e.message : String(e)))
    .filter((m) => m !== '')
    .join(': ');
  const has = (test: (code: string) => boolean) => codes.some(test);
  let failure: NetworkFailure = 'network';
  if (has((c) => /TIMEOUT|TimeoutError|ETIMEDOUT/.test(c))) failure = 'timeout';
  else if (has((c) => c === 'AbortError')) failure = 'aborted';
  else if (has((c) => c === 'ENOTFOUND' || c === 'EAI_AGAIN' || c === 'ENODATA')) failure = 'dns';
  else if (has((c) => TLS_CODES.test(c))) failure = 'tls';
  else if (has((c) => /^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL)$/.test(c))) failure = 'connect';
  return { failure, message: message || 'request failed' };
}

export function createSafeHttp(options: SafeHttpOptions = {}): SafeHttp {
  const allowList = (options.allowList ?? []).map(parseCidr);
  const maxResponseBytes = options.maxResponseBytes ?? 64 * 1024;
  const totalTimeoutMs = options.totalTimeoutMs ?? 30_000;
  const lookup = guardedLookup(allowList, options.lookup);
  const connector = buildConnector({
    timeout: options.connectTimeoutMs ?? 5_000,
    lookup,
    allowH2: false,
    ...(options.ca === undefined ? {} : { ca: options.ca }),
  });
  const agent = new Agent({
    connect(connectOptions, callback) {
      // A literal address is dialled without a lookup: check it here. (The URL check already
      // did, but a dispatcher may also be handed URLs by other code.)
      const ip = parseIp(connectOptions.hostname);
      if (ip) {
        const verdict = checkAddress(ip, allowList);
        if (!verdict.allowed) {
          callback(new AddressRefusedError(verdict.reason), null);
          return;
        }
      }
      connector(connectOptions, callback);
    },
    headersTimeout: options.headersTimeoutMs ?? 15_000,
    bodyTimeout: options.bodyTimeoutMs ?? 10_000,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
    connections: options.connectionsPerOrigin ?? 16,
  });

  return {
    async send(req: SafeRequest): Promise<SafeResult> {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      const verdict = checkDestinationUrl(req.url, {
        allowPlainHttp: req.allowPlainHttp ?? false,
        allowList,
      });
      if (!verdict.allowed) return { kind: 'refused', reason: verdict.reason, latencyMs: elapsed() };
      const deadline = AbortSignal.timeout(totalTimeoutMs);
      const signal = req.signal ? AbortSignal.any([req.signal, deadline]) : deadline;
      let response: Awaited<ReturnType<typeof request>>;
      try {
        response = await request(verdict.url, {
          dispatcher: agent,
          method: req.method ?? 'POST',
          headers: req.headers,
          body: req.body,
          signal,
        });
      } catch (error) {
        const { failure, message } = classify(deadline.aborted ? deadline.reason : error);
        if (failure === 'refused') return { kind: 'refused', reason: message, latencyMs: elapsed() };
        return { kind: 'failed', failure, message, latencyMs: elapsed() };
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      try {
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          const room = maxResponseBytes - size;
          if (chunk.length >= room) {
            if (room > 0) chunks.push(chunk.subarray(0, room));
            size = maxResponseBytes;
            // More than the bound (or exactly it, with more perhaps to come): stop reading;
            // leaving the loop destroys the body, which drops the connection.
            truncated = chunk.length > room || !response.body.readableEnded;
            break;
          }
          chunks.push(chunk);
          size += chunk.length;
        }
      } catch {
        truncated = true; // stalled or reset mid-body: the status stands
      }
      if (truncated) response.body.destroy();
      return {
        kind: 'response',
        status: response.statusCode,
        headers: response.headers,
        body: Buffer.concat(chunks, size),
        truncated,
        latencyMs: elapsed(),
      };
    },

    async close(): Promise<void> {
      await agent.close();
    },
  };
}
