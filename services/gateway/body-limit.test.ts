/**
 * A REST body over TALLY_HTTP_MAX_BODY_BYTES gets its 413 whatever the client: one that declares
 * its length, one that streams its body (Node's fetch, as browsers do), one that writes the whole
 * body before it reads anything (Python's http.client). Each must read the 413 and its JSON error,
 * not EPIPE or a reset.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import { createLogger } from '../infra/logger.ts';
import { type GatewayDeps, start } from './gateway.ts';

const LIMIT = 1024 * 1024;
const BODY_BYTES = 20 * 1024 * 1024;

async function startGateway() {
  const unused = {} as unknown as ServiceClient<never>;
  const deps = { ingest: unused, query: unused, logger: createLogger('error') } as GatewayDeps;
  return start(deps, {
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: LIMIT,
    requestTimeoutMs: 30_000,
    drainTimeoutMs: 2_000,
  });
}

const expectedError = {
  code: 413,
  status: 'RESOURCE_EXHAUSTED',
  message: `body: must be at most ${LIMIT} bytes`,
  field: 'body',
  details: [
    {
      '@type': 'type.googleapis.com/google.rpc.BadRequest',
      fieldViolations: [{ field: 'body', description: `must be at most ${LIMIT} bytes` }],
    },
    {
      '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
      reason: 'BODY_TOO_LARGE',
      domain: 'tally.dev',
      metadata: { limit_bytes: String(LIMIT) },
    },
  ],
};

test('fetch with a 20 MB body, declared or streamed, reads the 413 and its JSON error', async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const url = `http://127.0.0.1:${gateway.port}/v1/events`;
  const body = new Uint8Array(BODY_BYTES).fill(0x20);

  const declared = await fetch(url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(declared.status, 413);
  assert.equal(declared.headers.get('connection'), 'close');
  assert.deepEqual(await declared.json(), { error: expectedError });

  // Chunked: the limit is found mid-body, after the server has read some of it.
  const chunk = 256 * 1024;
  const streamed = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({
      pull(controller) {
        const sent = (this as { sent?: number }).sent ?? 0;
        if (sent >= BODY_BYTES) return controller.close();
        controller.enqueue(body.subarray(sent, sent + chunk));
        (this as { sent?: number }).sent = sent + chunk;
      },
    }),
    duplex: 'half',
  } as RequestInit);
  assert.equal(streamed.status, 413);
  assert.deepEqual(await streamed.json(), { error: expectedError });
});

test("Python's http.client, which sends the whole 20 MB body before reading, reads the 413", async (t) => {
  const gateway = await startGateway();
  t.after(() => gateway.stop());
  const script = `
import http.client, json, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=30)
c.request('POST', '/v1/events', body=b' ' * ${BODY_BYTES}, headers={'content-type': 'application/json'})
r = c.getresponse()
print(json.dumps({'status': r.status, 'connection': r.getheader('connection'), 'body': json.loads(r.read())}))
`;
  // Not execFileSync: the gateway answering runs in this process's event loop.
  const out = await new Promise<string>((resolve, reject) =>
    execFile('python3', ['-c', script, String(gateway.port)], { timeout: 60_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`python3 failed: ${error.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
  assert.deepEqual(JSON.parse(out), { status: 413, connection: 'close', body: { error: expectedError } });
});
