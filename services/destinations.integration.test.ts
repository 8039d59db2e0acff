/**
 * Destination administration end to end on the real servers (`tally all`, destinations in
 * PostgreSQL, topics in Kafka): the REST routes and gRPC methods of tally.v1.DestinationService
 * need an admin credential, answer the defaults and the secrets once, refuse an invalid
 * destination naming each field at fault from the request, make and delete the destination's
 * topic, and answer NOT_FOUND naming `id` and ABORTED for a stale revision — never a 500.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { newSecretKey, reasonOf, rest } from './access-control.contract.ts';
import { DestinationService } from './gen/tally/v1/destinations_pb.js';
import { type AppError, Code } from './infra/app-error.ts';
import { createGrpcClient } from './infra/grpc/grpc-service.ts';
import { handleProcessWarnings } from './infra/node-warnings.ts';
import {
  realServers,
  requireRealServers,
  type TestNamespace,
  testNamespace,
} from './testing/real-servers.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

let tally: TallyProcess;
let adminKey: string;
let ns: TestNamespace;
const kafkaAdmin = new Kafka({
  brokers: realServers.kafkaBrokers.split(','),
  logLevel: logLevel.NOTHING,
}).admin();

const admin = () => ({ authorization: `Bearer ${adminKey}` });
const topicExists = async (id: string) =>
  (await kafkaAdmin.listTopics()).includes(`${ns.groupPrefix}deliveries.${id}`);

handleProcessWarnings(); // kafkajs's known-harmless TimeoutNegativeWarning

before(async () => {
  await requireRealServers();
  ns = testNamespace(2);
  adminKey = newSecretKey();
  await kafkaAdmin.connect();
  tally = await startTally(
    ['all'],
    { ...ns.env, TALLY_AUTH: 'on', TALLY_BOOTSTRAP_ADMIN_KEY: adminKey },
    60_000,
    { untilServing: true },
  );
});

after(async () => {
  await tally?.kill('SIGTERM');
  const left = (await kafkaAdmin.listTopics()).filter((t) => t.startsWith(`${ns.groupPrefix}deliveries.`));
  if (left.length > 0) await kafkaAdmin.deleteTopics({ topics: left });
  await kafkaAdmin.disconnect();
});

const hook = {
  name: 'orders',
  webhook: { url: 'https://hooks.example.com/tally', headers: { 'X-Team': 'shop' } },
  filter: { eventTypes: ['purchase'] },
  transform: {
    fields: [
      { to: 'data.user', from: 'user_id' },
      { to: 'schema', json: '{"v":2}' },
    ],
  },
};

test('REST: create answers defaults and the secret once, makes the topic; get shows a hint; delete removes both', async () => {
  const port = tally.httpPort!;
  const made = await rest(port, 'POST', '/v1/destinations', { body: hook, headers: admin() });
  assert.equal(made.status, 200, JSON.stringify(made.json));
  const { destination, signingSecrets } = made.json as {
    destination: Record<string, unknown> & { id: string; revision: string };
    signingSecrets: string[];
  };
  assert.match(destination.id, /^ds_[0-9A-Za-z]{10}$/);
  assert.equal(signingSecrets.length, 1);
  assert.match(signingSecrets[0]!, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.deepEqual(
    {
      webhook: destination.webhook,
      ordering: destination.ordering,
      retry: destination.retry,
      concurrency: destination.concurrency,
      transform: destination.transform,
    },
    {
      webhook: {
        url: 'https://hooks.example.com/tally',
        allowPlainHttp: false,
        headers: { 'x-team': 'shop' },
        timeoutMs: 10000,
      },
      ordering: 'per_user',
      retry: { delaysSeconds: [0, 5, 300, 1800, 7200, 18000, 36000, 36000] },
      concurrency: 10,
      transform: {
        fields: [
          { to: 'data.user', from: 'user_id' },
          { to: 'schema', json: '{"v":2}' },
        ],
      },
    },
  );
  assert.ok(await topicExists(destination.id), 'its topic was made');

  const got = await rest(port, 'GET', `/v1/destinations/${destination.id}`, { headers: admin() });
  assert.equal(got.status, 200);
  assert.ok(!JSON.stringify(got.json).includes(signingSecrets[0]!), 'get never answers the secret');
  const hint = (got.json.destination as { signingSecrets: { hint: string }[] }).signingSecrets[0]!.hint;
  assert.equal(hint, `${signingSecrets[0]!.slice(0, 10)}…`);

  const stale = await rest(port, 'PUT', `/v1/destinations/${destination.id}?expectedRevision=999`, {
    body: { ...hook, name: 'renamed' },
    headers: admin(),
  });
  assert.equal(stale.status, 409, JSON.stringify(stale.json));

  const rotated = await rest(port, 'POST', `/v1/destinations/${destination.id}:rotate-secret`, {
    body: { graceSeconds: 60 },
    headers: admin(),
  });
  assert.equal(rotated.status, 200, JSON.stringify(rotated.json));
  assert.notEqual((rotated.json as { signingSecret: string }).signingSecret, signingSecrets[0]);

  const gone = await rest(port, 'DELETE', `/v1/destinations/${destination.id}`, { headers: admin() });
  assert.equal(gone.status, 200);
  assert.equal(await topicExists(destination.id), false, 'its topic went with it');
  const missing = await rest(port, 'GET', `/v1/destinations/${destination.id}`, { headers: admin() });
  assert.equal(missing.status, 404);
  assert.match(JSON.stringify(missing.json), /"field":"id"/, JSON.stringify(missing.json));
});

test('REST: an invalid destination is a 400 naming every field at fault; no admin scope is a 403', async () => {
  const port = tally.httpPort!;
  const bad = await rest(port, 'POST', '/v1/destinations', {
    body: {
      name: '',
      webhook: { url: 'http://plain.example.com' },
      filter: { eventTypes: ['1x'] },
      transform: { fields: [{ to: 'a', json: 'not json' }] },
    },
    headers: admin(),
  });
  assert.equal(bad.status, 400, JSON.stringify(bad.json));
  assert.match(JSON.stringify(bad.json), /destination\.transform\.fields\[0\]\.json/);
  const bad2 = await rest(port, 'POST', '/v1/destinations', {
    body: {
      name: '',
      webhook: { url: 'http://plain.example.com' },
      filter: { eventTypes: ['1x'] },
      concurrency: 0,
    },
    headers: admin(),
  });
  assert.equal(bad2.status, 400);
  const fields = (
    (bad2.json.error as { details: { fieldViolations?: { field: string }[] }[] }).details.find(
      (d) => d.fieldViolations,
    )?.fieldViolations ?? []
  ).map((v) => v.field);
  assert.deepEqual(fields, [
    'destination.name',
    'destination.webhook.url',
    'destination.filter.event_types[0]',
    'destination.concurrency',
  ]);
  const made = await rest(port, 'POST', '/v1/keys', {
    body: { name: 'r', scopes: ['read'] },
    headers: admin(),
  });
  const reader = (made.json as { key: string }).key;
  const refused = await rest(port, 'GET', '/v1/destinations', {
    headers: { authorization: `Bearer ${reader}` },
  });
  assert.equal(refused.status, 403);
  assert.ok(reasonOf(refused.json));
});

test('gRPC: a Kafka destination round-trips; rotation is FAILED_PRECONDITION; unknown ids NOT_FOUND', async () => {
  const client = createGrpcClient(DestinationService, `127.0.0.1:${tally.grpcPort}`);
  try {
    const options = { metadata: admin() };
    const { destination } = await client.createDestination(
      {
        destination: {
          name: 'audit',
          endpoint: { case: 'kafka', value: { topic: 'audit.events', brokers: ['audit:9092'] } },
          ordering: 'none',
          rateLimitPerSecond: 50,
        },
      },
      options,
    );
    assert.equal(destination!.endpoint.case, 'kafka');
    assert.equal(destination!.rateLimitPerSecond, 50);
    assert.deepEqual(destination!.signingSecrets, []);
    const code = async (call: Promise<unknown>) => {
      try {
        await call;
        return Code.OK;
      } catch (error) {
        return (error as AppError).code;
      }
    };
    assert.equal(
      await code(client.rotateDestinationSecret({ id: destination!.id }, options)),
      Code.FAILED_PRECONDITION,
    );
    assert.equal(await code(client.getDestination({ id: 'ds_0000000000' }, options)), Code.NOT_FOUND);
    assert.equal(await code(client.deleteDestination({ id: 'nope' }, options)), Code.NOT_FOUND);
    const updated = await client.updateDestination(
      {
        id: destination!.id,
        destination: { name: 'audit 2', endpoint: destination!.endpoint },
        expectedRevision: destination!.revision,
      },
      options,
    );
    assert.equal(updated.destination!.name, 'audit 2');
    assert.equal(updated.destination!.enabled, true);
    assert.equal(
      await code(
        client.updateDestination(
          {
            id: destination!.id,
            destination: { name: 'x', endpoint: destination!.endpoint },
            expectedRevision: destination!.revision,
          },
          options,
        ),
      ),
      Code.ABORTED,
    );
    await client.deleteDestination({ id: destination!.id }, options);
  } finally {
    client.close();
  }
});
