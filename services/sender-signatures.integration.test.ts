/**
 * Signatures of the sender's deliveries, verified at the receiving end with the `standardwebhooks`
 * library (what receivers use), on the real servers: every delivery verifies with the
 * destination's secret and with no other; after `rotateSecret` deliveries carry both signatures
 * while the grace period lasts — each verifying with its own secret — then only the new one (the
 * sender's clock moved past the grace period).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { generateSecret } from './infra/delivery/webhook-signature.ts';
import { handleProcessWarnings } from './infra/node-warnings.ts';
import { type ReceivedRequest, senderHarness, startScriptedEndpoint } from './sender-harness.ts';
import { plannedRecords, webhookTo, writeRecords } from './testing/delivery-run.ts';
import { requireRealServers, waitFor } from './testing/real-servers.ts';

await requireRealServers();
handleProcessWarnings();

/** The payload, when `secret` verifies the request (the library checks the timestamp too). */
function verify(secret: string, request: ReceivedRequest): unknown {
  return new Webhook(secret).verify(request.body.toString('utf8'), {
    'webhook-id': String(request.headers['webhook-id']),
    'webhook-timestamp': String(request.headers['webhook-timestamp']),
    'webhook-signature': String(request.headers['webhook-signature']),
  });
}

const signatures = (request: ReceivedRequest) => String(request.headers['webhook-signature']).split(' ');

test('deliveries verify with standardwebhooks; a rotation signs with both secrets during its grace period, then with the new one only', async (t) => {
  const h = await senderHarness(t);
  let clock = Date.now();
  const oldSecret = generateSecret();
  const endpoint = await startScriptedEndpoint(t, () => ({ status: 204 }));
  const { d, topic } = await h.destination(
    webhookTo(`${endpoint.url}/hook?token=abc`, { headers: { 'x-team': 'shop' } }),
    [oldSecret],
  );
  await h.startSender({}, { now: () => clock });
  const planned = plannedRecords(d.id, 1, 40);
  let next = 0;
  /** Writes the next record and answers its request. */
  const deliverOne = async (): Promise<ReceivedRequest> => {
    const record = planned[next++]!;
    await writeRecords(h.log.producer(), topic, [record]);
    await waitFor(
      () => endpoint.requests.some((r) => r.headers['webhook-id'] === record.record.messageId),
      () => `record ${next} not delivered`,
    );
    return endpoint.requests.find((r) => r.headers['webhook-id'] === record.record.messageId)!;
  };
  const expectPayload = (secret: string, request: ReceivedRequest, n: number) =>
    assert.deepEqual(verify(secret, request), JSON.parse(new TextDecoder().decode(planned[n]!.record.body)));

  // Before any rotation: one signature, the destination's secret.
  const before = await deliverOne();
  assert.equal(signatures(before).length, 1);
  expectPayload(oldSecret, before, 0);
  assert.throws(() => verify(generateSecret(), before), WebhookVerificationError);
  assert.equal(before.headers['x-team'], 'shop', 'the static headers go too');
  assert.equal(before.headers['content-type'], 'application/json');

  // Rotation with an hour's grace: once the sender has the change, both secrets sign.
  const rotated = await h.destinations.rotateSecret(d.id, { graceSeconds: 3600 });
  const newSecret = rotated.signingSecrets[0]!.secret;
  assert.notEqual(newSecret, oldSecret);
  let during = await deliverOne();
  while (signatures(during).length === 1) {
    expectPayload(oldSecret, during, next - 1); // the change is not taken in yet: the old one still signs
    assert.ok(next < 20, 'the sender never took the rotation in');
    during = await deliverOne();
  }
  const firstBoth = next - 1;
  for (let i = 0; i < 3; i++) {
    if (i > 0) during = await deliverOne();
    assert.equal(signatures(during).length, 2, 'both secrets sign during the grace period');
    expectPayload(oldSecret, during, firstBoth + i);
    expectPayload(newSecret, during, firstBoth + i);
    // Each signature is one secret's: the request with only the new one's verifies with it alone.
    const [newest, older] = signatures(during);
    const only = (signature: string) => ({
      ...during,
      headers: { ...during.headers, 'webhook-signature': signature },
    });
    assert.ok(verify(newSecret, only(newest!)));
    assert.ok(verify(oldSecret, only(older!)));
    assert.throws(() => verify(oldSecret, only(newest!)), WebhookVerificationError);
  }

  // The grace period over (the sender's clock past it): only the new secret signs.
  clock += 3600_000 + 1_000;
  for (let i = 0; i < 3; i++) {
    const after = await deliverOne();
    assert.equal(signatures(after).length, 1);
    expectPayload(newSecret, after, next - 1);
    assert.throws(() => verify(oldSecret, after), WebhookVerificationError);
  }
  // Every delivery was verified by the library; none went twice.
  const ids = endpoint.requests.map((r) => r.headers['webhook-id']);
  assert.equal(new Set(ids).size, ids.length);
});
