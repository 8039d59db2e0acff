/**
 * Alert rule administration end to end on the real servers (`tally all`, rules in PostgreSQL):
 * the REST routes and the gRPC methods of tally.v1.AlertService need an admin credential, fill
 * and answer the defaults, refuse an invalid rule naming each field at fault from the request
 * (`rule.milestone.thresholds[2]`), and a deleted rule is NOT_FOUND.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { newSecretKey, reasonOf, rest } from './access-control.contract.ts';
import { AlertService } from './gen/tally/v1/alerts_pb.js';
import { type AppError, Code } from './infra/app-error.ts';
import { createGrpcClient } from './infra/grpc/grpc-service.ts';
import { requireRealServers, testNamespace } from './testing/real-servers.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

let tally: TallyProcess;
let adminKey: string;
let readKey: string;

const admin = () => ({ authorization: `Bearer ${adminKey}` });

before(async () => {
  await requireRealServers();
  const ns = testNamespace(2);
  adminKey = newSecretKey();
  tally = await startTally(
    ['all'],
    { ...ns.env, TALLY_AUTH: 'on', TALLY_BOOTSTRAP_ADMIN_KEY: adminKey },
    60_000,
    { untilServing: true },
  );
  const made = await rest(tally.httpPort!, 'POST', '/v1/keys', {
    body: { name: 'reader', scopes: ['read'] },
    headers: admin(),
  });
  assert.equal(made.status, 200, JSON.stringify(made.json));
  readKey = (made.json as { key: string }).key;
});

after(async () => {
  await tally?.kill('SIGTERM');
});

const milestoneRule = {
  name: 'post milestones',
  eventType: 'view',
  recipients: { targetOwner: true, dashboard: true },
  milestone: { subject: { targetPrefix: 'post/' }, thresholds: [100, 1000, 10000] },
};

interface RuleJson {
  id: string;
  revision: string;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
  [field: string]: unknown;
}

const fieldsOf = (json: Record<string, unknown>) =>
  (
    (json.error as { details?: { fieldViolations?: { field: string }[] }[] }).details?.find(
      (d) => d.fieldViolations,
    )?.fieldViolations ?? []
  ).map((v) => v.field);

test('REST: an admin creates, lists, gets, updates and deletes rules; defaults are answered', async () => {
  const port = tally.httpPort!;
  const created = await rest(port, 'POST', '/v1/alert-rules', { body: milestoneRule, headers: admin() });
  assert.equal(created.status, 200, JSON.stringify(created.json));
  const rule = (created.json as { rule: RuleJson }).rule;
  assert.match(rule.id, /^ar_[0-9A-Za-z]{10}$/);
  assert.deepEqual(rule, {
    id: rule.id,
    name: 'post milestones',
    enabled: true,
    eventType: 'view',
    recipients: { userIds: [], groups: [], targetOwner: true, dashboard: true },
    milestone: { subject: { targetPrefix: 'post/' }, thresholds: ['100', '1000', '10000'] },
    createdAt: rule.createdAt,
    updatedAt: rule.createdAt,
    revision: rule.revision,
  });

  const spike = await rest(port, 'POST', '/v1/alert-rules', {
    body: {
      name: 'checkout spike',
      eventType: 'purchase',
      recipients: { groups: ['oncall'] },
      spike: { subject: { target: 'shop/checkout' }, zThreshold: 5 },
    },
    headers: admin(),
  });
  assert.equal(spike.status, 200, JSON.stringify(spike.json));
  const spikeRule = (spike.json as { rule: RuleJson }).rule;
  assert.deepEqual(spikeRule.spike, {
    subject: { target: 'shop/checkout' },
    halfLifeMinutes: 60,
    zThreshold: 5,
    zClear: 2.5,
    minCount: 5,
    minRatio: 2,
    warmupMinutes: 60,
  });

  const listed = await rest(port, 'GET', '/v1/alert-rules', { headers: admin() });
  assert.equal(listed.status, 200);
  assert.deepEqual(
    (listed.json as { rules: RuleJson[] }).rules.map((r) => r.id),
    [rule.id, spikeRule.id],
  );
  const got = await rest(port, 'GET', `/v1/alert-rules/${rule.id}`, { headers: admin() });
  assert.deepEqual((got.json as { rule: RuleJson }).rule, rule);

  const window = {
    name: 'big spender',
    enabled: false,
    eventType: 'purchase',
    recipients: { userIds: ['sales-1'] },
    threshold: { subject: { userId: 'user-42' }, measure: 'sum', windowMinutes: 60, threshold: 500 },
  };
  const updated = await rest(port, 'PUT', `/v1/alert-rules/${rule.id}`, { body: window, headers: admin() });
  assert.equal(updated.status, 200, JSON.stringify(updated.json));
  const after = (updated.json as { rule: RuleJson }).rule;
  assert.equal(after.id, rule.id);
  assert.equal(after.createdAt, rule.createdAt);
  assert.equal(after.enabled, false);
  assert.equal(after.milestone, undefined);
  assert.deepEqual(after.threshold, {
    subject: { userId: 'user-42' },
    measure: 'sum',
    windowMinutes: 60,
    threshold: 500,
    rearmMinutes: 60,
  });
  assert.ok(BigInt(after.revision) > BigInt(rule.revision));

  // An update made against an older revision is refused: the rule changed since.
  const stale = await rest(port, 'PUT', `/v1/alert-rules/${rule.id}?expectedRevision=${rule.revision}`, {
    body: milestoneRule,
    headers: admin(),
  });
  assert.equal(stale.status, 409, JSON.stringify(stale.json));
  assert.equal(stale.json.error?.status, 'ABORTED');

  const deleted = await rest(port, 'DELETE', `/v1/alert-rules/${rule.id}`, { headers: admin() });
  assert.equal(deleted.status, 200, JSON.stringify(deleted.json));
  for (const [verb, body] of [
    ['GET', undefined],
    ['DELETE', undefined],
    ['PUT', milestoneRule],
  ] as const) {
    const gone = await rest(port, verb, `/v1/alert-rules/${rule.id}`, { body, headers: admin() });
    assert.equal(gone.status, 404, `${verb} after delete: ${JSON.stringify(gone.json)}`);
    assert.equal(gone.json.error?.status, 'NOT_FOUND');
  }
  const left = await rest(port, 'GET', '/v1/alert-rules', { headers: admin() });
  assert.deepEqual(
    (left.json as { rules: RuleJson[] }).rules.map((r) => r.id),
    [spikeRule.id],
  );
});

test('REST: an invalid rule is a 400 naming each field at fault from the request', async () => {
  const port = tally.httpPort!;
  const listed = await rest(port, 'GET', '/v1/alert-rules', { headers: admin() });
  const before = (listed.json as { rules: unknown[] }).rules.length;
  const cases: [unknown, string[]][] = [
    [
      { ...milestoneRule, milestone: { subject: { target: 'post/1' }, thresholds: [100, 1000, 1000] } },
      ['rule.milestone.thresholds[2]'],
    ],
    [
      {
        ...milestoneRule,
        recipients: {},
        milestone: undefined,
        threshold: { subject: { targetPrefix: 'post/' }, windowMinutes: 2000, threshold: 3 },
      },
      ['rule.recipients', 'rule.threshold.window_minutes'],
    ],
    [{ ...milestoneRule, milestone: undefined }, ['rule.condition']],
    [
      { ...milestoneRule, milestone: undefined, spike: { subject: { userId: 'u1' }, zClear: 9 } },
      ['rule.spike.subject.user_id', 'rule.spike.z_clear'],
    ],
    [{ ...milestoneRule, colour: 'red' }, ['rule.colour']],
  ];
  for (const [body, fields] of cases) {
    const answer = await rest(port, 'POST', '/v1/alert-rules', { body, headers: admin() });
    assert.equal(answer.status, 400, JSON.stringify(answer.json));
    assert.equal(answer.json.error?.status, 'INVALID_ARGUMENT');
    assert.deepEqual(fieldsOf(answer.json), fields, JSON.stringify(answer.json));
    assert.equal((answer.json.error as { field?: string }).field, fields[0]);
  }
  const count = async () =>
    ((await rest(port, 'GET', '/v1/alert-rules', { headers: admin() })).json as { rules: unknown[] }).rules
      .length;
  assert.equal(await count(), before, 'nothing was stored');
});

test('REST: without a credential 401, with a read key 403, on every alert rule route', async () => {
  const port = tally.httpPort!;
  for (const [verb, path, body] of [
    ['POST', '/v1/alert-rules', milestoneRule],
    ['GET', '/v1/alert-rules', undefined],
    ['GET', '/v1/alert-rules/ar_0000000000', undefined],
    ['PUT', '/v1/alert-rules/ar_0000000000', milestoneRule],
    ['DELETE', '/v1/alert-rules/ar_0000000000', undefined],
  ] as const) {
    const anonymous = await rest(port, verb, path, { body });
    assert.equal(anonymous.status, 401, `${verb} ${path}`);
    assert.equal(reasonOf(anonymous.json), 'MISSING_CREDENTIAL');
    const reader = await rest(port, verb, path, { body, headers: { authorization: `Bearer ${readKey}` } });
    assert.equal(reader.status, 403, `${verb} ${path}`);
    assert.equal(reasonOf(reader.json), 'INSUFFICIENT_SCOPE');
  }
});

test('gRPC: the same methods, credentials and errors', async (t) => {
  const client = createGrpcClient(AlertService, `127.0.0.1:${tally.grpcPort}`);
  t.after(() => client.close());
  const metadata = { authorization: `Bearer ${adminKey}` };
  const rule = {
    name: 'grpc window',
    eventType: 'like',
    recipients: { dashboard: true },
    condition: {
      case: 'threshold' as const,
      value: {
        subject: { subject: { case: 'targetPrefix' as const, value: 'post/' } },
        windowMinutes: 5,
        threshold: 10,
      },
    },
  };
  const refused = (code: number, reason?: string, field?: string) => (error: AppError) => {
    assert.equal(error.code, code, error.message);
    if (reason) assert.equal(error.reason, reason);
    if (field) assert.equal(error.field, field);
    return true;
  };
  await assert.rejects(client.createAlertRule({ rule }), refused(Code.UNAUTHENTICATED, 'MISSING_CREDENTIAL'));
  await assert.rejects(
    client.listAlertRules({}, { metadata: { authorization: `Bearer ${readKey}` } }),
    refused(Code.PERMISSION_DENIED, 'INSUFFICIENT_SCOPE'),
  );

  const created = await client.createAlertRule({ rule }, { metadata });
  const made = created.rule!;
  assert.equal(made.condition.case, 'threshold');
  assert.equal(made.condition.case === 'threshold' && made.condition.value.measure, 'count');
  assert.equal(made.condition.case === 'threshold' && made.condition.value.rearmMinutes, 5);
  assert.equal(made.enabled, true);
  assert.deepEqual((await client.getAlertRule({ id: made.id }, { metadata })).rule, made);

  await assert.rejects(
    client.createAlertRule(
      { rule: { ...rule, condition: { case: 'milestone', value: { thresholds: [5n, 3n] } } } },
      { metadata },
    ),
    (error: AppError) => {
      refused(Code.INVALID_ARGUMENT, undefined, 'rule.milestone.subject')(error);
      assert.deepEqual(
        error.fieldViolations.map((v) => v.field),
        ['rule.milestone.subject', 'rule.milestone.thresholds[1]'],
      );
      return true;
    },
  );
  await assert.rejects(
    client.createAlertRule({ rule: { ...rule, name: '' } }, { metadata }),
    refused(Code.INVALID_ARGUMENT, undefined, 'rule.name'),
  );
  await assert.rejects(
    client.createAlertRule({}, { metadata }),
    refused(Code.INVALID_ARGUMENT, undefined, 'rule'),
  );
  await assert.rejects(
    client.updateAlertRule({ id: made.id, rule, expectedRevision: made.revision + 1n }, { metadata }),
    refused(Code.ABORTED, undefined, 'expected_revision'),
  );
  const updated = await client.updateAlertRule(
    { id: made.id, rule: { ...rule, enabled: false }, expectedRevision: made.revision },
    { metadata },
  );
  assert.equal(updated.rule!.enabled, false);

  await client.deleteAlertRule({ id: made.id }, { metadata });
  await assert.rejects(
    client.getAlertRule({ id: made.id }, { metadata }),
    refused(Code.NOT_FOUND, undefined, 'id'),
  );
  await assert.rejects(client.deleteAlertRule({ id: made.id }, { metadata }), refused(Code.NOT_FOUND));
  await assert.rejects(
    client.getAlertRule({ id: '' }, { metadata }),
    refused(Code.INVALID_ARGUMENT, undefined, 'id'),
  );
});
