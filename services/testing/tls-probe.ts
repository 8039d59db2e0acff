/**
 * Test support for TLS listeners, with plain node:tls and @grpc/grpc-js (nothing of the code
 * under test): the certificate a new connection is served, a gRPC health check under given
 * credentials, and waiting for a listener to serve another certificate.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import {
  Health,
  HealthCheckRequestSchema,
  type HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from '../gen/grpc/health/v1/health_pb.js';

/** The SHA-256 fingerprint of the (first) certificate in a PEM file, as node:tls prints it. */
export function fingerprintOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}

/**
 * The fingerprint of the certificate 127.0.0.1:`port` serves a new connection, verified against
 * `caFile` (ALPN `alpn`: `h2` for gRPC, `http/1.1` for HTTPS).
 */
export function servedFingerprint(port: number, caFile: string, alpn = 'http/1.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, ca: readFileSync(caFile), ALPNProtocols: [alpn] },
      () => {
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        socket.end();
        resolve(fingerprint);
      },
    );
    socket.once('error', reject);
  });
}

/** Polls until 127.0.0.1:`port` serves a certificate of fingerprint `expected`; rejects after `ms`. */
export async function untilServed(
  port: number,
  caFile: string,
  expected: string,
  options: { alpn?: string; ms?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (options.ms ?? 10_000);
  let last = '';
  while (Date.now() < deadline) {
    last = await servedFingerprint(port, caFile, options.alpn).catch((error: Error) => error.message);
    if (last === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`still served ${last}, not ${expected}, after ${options.ms ?? 10_000} ms`);
}

/** grpc-js channel credentials trusting `caFile`, presenting `client` when given. */
export function trustingCredentials(caFile: string, client?: { certFile: string; keyFile: string }) {
  return grpc.credentials.createSsl(
    readFileSync(caFile),
    client ? readFileSync(client.keyFile) : null,
    client ? readFileSync(client.certFile) : null,
  );
}

/**
 * A grpc.health.v1 Check of the whole server at 127.0.0.1:`port` with `credentials` on a channel
 * of its own (closed after): the status, or the call's error.
 */
export function healthCheck(
  port: number,
  credentials: grpc.ChannelCredentials,
  timeoutMs = 5_000,
): Promise<HealthCheckResponse_ServingStatus> {
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials);
  return new Promise<HealthCheckResponse_ServingStatus>((resolve, reject) =>
    client.makeUnaryRequest(
      `/${Health.typeName}/${Health.method.check.name}`,
      (service: string) =>
        Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }))),
      (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes).status,
      '',
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (error, status) => (error ? reject(error) : resolve(status!)),
    ),
  ).finally(() => client.close());
}

/**
 * An HTTPS request to 127.0.0.1:`port` trusting `caFile`: the status, the body's text, and the
 * fingerprint of the certificate the connection was served.
 */
export function httpsRequest(
  port: number,
  method: string,
  path: string,
  caFile: string,
  body?: unknown,
): Promise<{ status: number; text: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ca: readFileSync(caFile),
        agent: false, // a new connection each time: the certificate served now
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (response) => {
        const fingerprint = (response.socket as TLSSocket).getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode!,
            text: Buffer.concat(chunks).toString('utf8'),
            fingerprint,
          }),
        );
        response.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
