/**
 * What kubelet's gRPC probe does, by hand: one call of `/grpc.health.v1.Health/Check` with the
 * probe's `service`, the request and the answer encoded and decoded here from the protocol's
 * definition (not from the code's generated descriptors), so that a name or field number that
 * drifted from the standard fails the check. The probe succeeds only on SERVING.
 */
import * as grpc from '@grpc/grpc-js';

const CHECK = '/grpc.health.v1.Health/Check';
/** HealthCheckResponse.ServingStatus, by number. */
const STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

/** HealthCheckRequest { string service = 1; }: field 1, wire type 2 (length-delimited). */
function encodeRequest(service: string): Buffer {
  const bytes = Buffer.from(service, 'utf8');
  if (bytes.length === 0) return Buffer.alloc(0);
  const length: number[] = [];
  for (let n = bytes.length; ; n >>>= 7) {
    if (n < 0x80) {
      length.push(n);
      break;
    }
    length.push((n & 0x7f) | 0x80);
  }
  return Buffer.concat([Buffer.from([0x0a, ...length]), bytes]);
}

/** HealthCheckResponse { ServingStatus status = 1; }: field 1, varint; absent is 0 (UNKNOWN). */
function decodeResponse(bytes: Buffer): string {
  let status = 0;
  for (let i = 0; i < bytes.length; ) {
    const tag = bytes[i++]!;
    if (tag === 0x08) {
      status = bytes[i++]!;
      if (status >= 0x80) throw new Error('a status beyond one varint byte');
    } else throw new Error(`unexpected field tag ${tag} in HealthCheckResponse`);
  }
  return STATUS[status] ?? `status ${status}`;
}

/** Checks `service` at host:port: the status name the server answered, or its gRPC error code's name. */
export function grpcHealthCheck(address: string, service = '', timeoutMs = 5_000): Promise<string> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<string>((resolve) =>
    client.makeUnaryRequest(
      CHECK,
      encodeRequest,
      decodeResponse,
      service,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (error, status) => resolve(error ? `error ${grpc.status[error.code]}` : status!),
    ),
  ).finally(() => client.close());
}
