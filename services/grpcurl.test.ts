/**
 * grpcurl, with no proto files, against a running `tally all` (embedded mode): reflection lists
 * the services, and an invalid event gets INVALID_ARGUMENT with its google.rpc.BadRequest detail,
 * the same details a REST client gets for the same event.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { grpcurlOrSkip, runGrpcurl } from './testing/grpcurl.ts';
import { http } from './testing/tally-client.ts';
import { freePort, startTally } from './testing/tally-process.ts';

test('grpcurl lists the services by reflection and reads the BadRequest of an invalid event', async (t) => {
  const grpcurl = grpcurlOrSkip(t);
  if (!grpcurl) return;
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-grpcurl-'));
  const tally = await startTally(['all'], {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '1',
  });
  t.after(async () => {
    await tally.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  const address = `127.0.0.1:${tally.grpcPort}`;

  const list = await runGrpcurl(grpcurl, ['-plaintext', address, 'list']);
  assert.equal(list.code, 0, list.stderr);
  const services = list.stdout.trim().split('\n');
  for (const name of ['tally.v1.IngestService', 'tally.v1.QueryService', 'grpc.health.v1.Health'])
    assert.ok(services.includes(name), `${name} in ${JSON.stringify(services)}`);

  const event = { type: 'bad type!', target: 'https://example.com/' };
  const publish = await runGrpcurl(grpcurl, [
    '-plaintext',
    '-format-error',
    '-d',
    JSON.stringify({ event }),
    address,
    'tally.v1.IngestService/Publish',
  ]);
  assert.notEqual(publish.code, 0, 'the invalid event was accepted');
  // -format-error prints the google.rpc.Status as JSON (on stderr), its details decoded through reflection.
  const status = JSON.parse(publish.stderr) as {
    code: number;
    message: string;
    details: { '@type': string; fieldViolations?: { field: string; description: string }[] }[];
  };
  assert.equal(status.code, 3, publish.stderr);
  const badRequest = status.details.find((d) => d['@type'] === 'type.googleapis.com/google.rpc.BadRequest');
  assert.ok(badRequest, `a BadRequest detail in ${publish.stderr}`);
  assert.equal(badRequest.fieldViolations?.[0]?.field, 'event.type');

  // REST: the same error with the same details.
  const rest = await http(tally.httpPort!, 'POST', '/v1/events', event);
  assert.equal(rest.status, 400);
  const body = JSON.parse(rest.text) as { error: { message: string; field: string; details: unknown[] } };
  assert.equal(body.error.message, status.message);
  assert.equal(body.error.field, 'event.type');
  assert.deepEqual(body.error.details, status.details);

  // Without -format-error grpcurl prints the details in its own text form.
  const plain = await runGrpcurl(grpcurl, [
    '-plaintext',
    '-d',
    JSON.stringify({ event }),
    address,
    'tally.v1.IngestService/Publish',
  ]);
  assert.match(plain.stderr, /Code: InvalidArgument/);
  assert.match(plain.stderr, /google\.rpc\.BadRequest/);
  assert.match(plain.stderr, /"field": "event\.type"/);
});
