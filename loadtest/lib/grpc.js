/**
 * A gRPC client of `tally.v1.IngestService`, from the protos in proto/ with the google/api
 * annotations from node_modules/google-proto-files (where buf.yaml finds them too).
 */
import grpc from 'k6/net/grpc';

/** Full names of the ingest methods. */
export const PUBLISH = 'tally.v1.IngestService/Publish';
export const PUBLISH_STREAM = 'tally.v1.IngestService/PublishStream';
export const PUBLISH_STREAM_ACKED = 'tally.v1.IngestService/PublishStreamAcked';

/** A client with the ingest service loaded; call in the init context (once per VU). */
export function ingestClient() {
  const client = new grpc.Client();
  // Paths relative to this file, whatever directory k6 runs from.
  client.load(
    [import.meta.resolve('../../proto'), import.meta.resolve('../../node_modules/google-proto-files')],
    'tally/v1/ingest.proto',
  );
  return client;
}

/** Connects `client` on a VU's first iteration; later iterations reuse the connection. */
export function connectOnce(client, state, addr) {
  if (state.connected) return;
  client.connect(addr, { plaintext: true, timeout: '10s' });
  state.connected = true;
}
