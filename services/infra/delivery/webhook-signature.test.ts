import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { AppError } from '../app-error.ts';
import {
  generateSecret,
  secretKey,
  signWebhook,
  verifyWebhook,
  type WebhookHeaders,
} from './webhook-signature.ts';

const body = JSON.stringify({ type: 'like', user_id: 'u-1', target: 'post/9', value: 1 });

describe('signWebhook, verified by the standardwebhooks library', () => {
  test('each secret of a rotation verifies on its own; a secret not signing does not', () => {
    const secrets = [generateSecret(), generateSecret(), generateSecret()];
    const headers = signWebhook({ secrets, id: 'msg_2hX9abc', timestamp: new Date(), body });
    assert.equal(headers['webhook-id'], 'msg_2hX9abc');
    assert.match(headers['webhook-timestamp'], /^[0-9]{10}$/);
    assert.equal(headers['webhook-signature'].split(' ').length, 3);
    for (const secret of secrets)
      assert.deepEqual(new Webhook(secret).verify(body, { ...headers }), JSON.parse(body));
    assert.throws(() => new Webhook(generateSecret()).verify(body, { ...headers }), WebhookVerificationError);
  });

  test('the library and this module compute the same signature', () => {
    const secret = generateSecret();
    const at = new Date('2026-03-01T12:00:00.750Z');
    const ours = signWebhook({ secrets: [secret], id: 'msg_1', timestamp: at, body });
    assert.equal(ours['webhook-timestamp'], '1772366400');
    assert.equal(ours['webhook-signature'], new Webhook(secret).sign('msg_1', at, body));
  });

  test('tampering with the body, the id, the timestamp or the signature fails verification', () => {
    const secret = generateSecret();
    const headers = signWebhook({ secrets: [secret], id: 'msg_1', timestamp: new Date(), body });
    const webhook = new Webhook(secret);
    const fails = (payload: string, h: WebhookHeaders) =>
      assert.throws(() => webhook.verify(payload, { ...h }), WebhookVerificationError);
    fails(body.replace('"value":1', '"value":2'), headers);
    fails(`${body} `, headers);
    fails(body, { ...headers, 'webhook-id': 'msg_2' });
    fails(body, { ...headers, 'webhook-timestamp': String(Number(headers['webhook-timestamp']) + 1) });
    const sig = headers['webhook-signature'];
    fails(body, { ...headers, 'webhook-signature': `${sig.slice(0, -6)}AAAAA=` });
    fails(body, { ...headers, 'webhook-signature': sig.replace('v1,', 'v2,') });
    // Signed long ago: outside the library's five minutes.
    fails(
      body,
      signWebhook({ secrets: [secret], id: 'msg_1', timestamp: new Date(Date.now() - 3_600_000), body }),
    );
  });

  test('byte bodies sign the same as their text', () => {
    const secret = generateSecret();
    const at = new Date();
    assert.deepEqual(
      signWebhook({ secrets: [secret], id: 'm', timestamp: at, body: Buffer.from(body) }),
      signWebhook({ secrets: [secret], id: 'm', timestamp: at, body }),
    );
  });

  test('bad secrets and ids are refused without quoting the secret', () => {
    const secret = generateSecret();
    assert.equal(secretKey(secret).length, 32);
    const short = `whsec_${randomBytes(8).toString('base64')}`;
    for (const bad of ['sk_abc', 'whsec_not base64!', short]) {
      const error = (() => {
        try {
          signWebhook({ secrets: [bad], id: 'm', timestamp: new Date(), body });
        } catch (e) {
          return e;
        }
      })();
      assert.ok(error instanceof AppError, bad);
      assert.ok(!error.message.includes(bad.replace('whsec_', '')), error.message);
    }
    const at = new Date();
    assert.throws(() => signWebhook({ secrets: [], id: 'm', timestamp: at, body }), /1 to 3 secrets/);
    assert.throws(
      () => signWebhook({ secrets: Array(4).fill(secret), id: 'm', timestamp: at, body }),
      /1 to 3/,
    );
    assert.throws(() => signWebhook({ secrets: [secret], id: 'a.b', timestamp: at, body }), /webhook id/);
  });
});

describe('verifyWebhook, against the library signer', () => {
  const signedByLibrary = (secret: string, at: Date, id = 'msg_lib') => ({
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, at, body),
  });

  test('a request the library signed verifies with any of the accepted secrets', () => {
    const old = generateSecret();
    const current = generateSecret();
    const at = new Date();
    assert.deepEqual(verifyWebhook({ secrets: [current, old], headers: signedByLibrary(old, at), body }), {
      ok: true,
      id: 'msg_lib',
      timestamp: new Date(Math.floor(at.getTime() / 1000) * 1000),
    });
    assert.deepEqual(verifyWebhook({ secrets: [current], headers: signedByLibrary(old, at), body }), {
      ok: false,
      reason: 'no signature matches',
    });
  });

  test('header names in any case; tampering and a stale or future timestamp fail', () => {
    const secret = generateSecret();
    const now = new Date('2026-03-01T12:00:00Z');
    const headers = signedByLibrary(secret, now);
    const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    assert.equal(verifyWebhook({ secrets: [secret], headers: upper, body, now }).ok, true);
    const check = (h: Record<string, string>, b = body, at = now) =>
      verifyWebhook({ secrets: [secret], headers: h, body: b, now: at });
    assert.deepEqual(check(headers, `${body}x`), { ok: false, reason: 'no signature matches' });
    assert.deepEqual(check({ ...headers, 'webhook-id': 'msg_other' }), {
      ok: false,
      reason: 'no signature matches',
    });
    assert.deepEqual(check(headers, body, new Date(now.getTime() + 301_000)), {
      ok: false,
      reason: 'webhook-timestamp is too old',
    });
    assert.deepEqual(check(headers, body, new Date(now.getTime() - 301_000)), {
      ok: false,
      reason: 'webhook-timestamp is in the future',
    });
    assert.equal(check(headers, body, new Date(now.getTime() + 299_000)).ok, true);
    assert.deepEqual(check({ ...headers, 'webhook-timestamp': '12e9' }), {
      ok: false,
      reason: 'webhook-timestamp is not a number',
    });
    const { 'webhook-signature': _, ...unsigned } = headers;
    assert.equal(check(unsigned).ok, false);
    assert.equal(check({ ...headers, 'webhook-signature': 'v1,' }).ok, false);
    assert.equal(
      check({ ...headers, 'webhook-signature': `v1a,${headers['webhook-signature'].slice(3)}` }).ok,
      false,
    );
  });
});
