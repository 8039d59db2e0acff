import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Principal, Scope } from './api-keys.ts';
import { readerFor, recipientFor } from './notification-access.ts';

const principal = (kind: Principal['kind'], scopes: Scope[], userId?: string): Principal => ({
  kind,
  id: userId ?? 'k1',
  scopes: new Set(scopes),
  ...(userId === undefined ? {} : { userId }),
});
const endUser = principal('jwt', ['read'], 'u1');
const adminToken = principal('jwt', ['read', 'admin'], 'ops');
const serverKey = principal('key', ['read']);
const select = (recipient: string, target = '') => ({ recipient, target });

test('an end user sees its own notifications, or those about a target it names', () => {
  assert.deepEqual(recipientFor(endUser, select('')), { ok: true, recipient: 'user:u1' });
  assert.deepEqual(recipientFor(endUser, select('me')), { ok: true, recipient: 'user:u1' });
  assert.deepEqual(recipientFor(endUser, select('user:u1')), { ok: true, recipient: 'user:u1' });
  assert.deepEqual(recipientFor(endUser, select('', 'post/1')), { ok: true });
  assert.deepEqual(recipientFor(endUser, select('me', 'post/1')), { ok: true, recipient: 'user:u1' });
  for (const other of ['user:u2', 'group:ops', 'dashboard']) {
    const refused = recipientFor(endUser, select(other));
    assert.equal(refused.ok, false, other);
    assert.equal(!refused.ok && refused.denied, true, other);
    assert.match(!refused.ok ? refused.reason : '', /may only read "user:u1"/);
  }
});

test('a server key, an admin token and an anonymous caller see any recipient; a watch names one or a target', () => {
  for (const who of [serverKey, adminToken, undefined]) {
    assert.deepEqual(recipientFor(who, select('user:u2')), { ok: true, recipient: 'user:u2' });
    assert.deepEqual(recipientFor(who, select('group:ops')), { ok: true, recipient: 'group:ops' });
    assert.deepEqual(recipientFor(who, select('')), { ok: true }, 'a listing of every recipient');
    const watch = recipientFor(who, select(''), true);
    assert.equal(watch.ok, false);
    assert.equal(!watch.ok && watch.denied, false);
    assert.deepEqual(recipientFor(who, select('', 'post/1'), true), { ok: true });
  }
  assert.deepEqual(recipientFor(adminToken, select('me')), { ok: true, recipient: 'user:ops' });
});

test('recipients are checked: "me" needs a user, and only the three forms pass', () => {
  const me = recipientFor(serverKey, select('me'));
  assert.equal(me.ok, false);
  assert.match(!me.ok ? me.reason : '', /needs a token that names a user/);
  for (const bad of ['someone', 'user:', 'users:u1', 'x'.repeat(201)]) {
    const refused = recipientFor(serverKey, select(bad));
    assert.equal(refused.ok, false, bad);
    assert.equal(!refused.ok && refused.denied, false, bad);
  }
});

test("marking read needs a recipient: the one named, or an end user's own", () => {
  assert.deepEqual(readerFor(endUser, ''), { ok: true, recipient: 'user:u1' });
  assert.deepEqual(readerFor(serverKey, 'user:u2'), { ok: true, recipient: 'user:u2' });
  const none = readerFor(serverKey, '');
  assert.equal(none.ok, false);
  assert.match(!none.ok ? none.reason : '', /is required/);
  assert.equal(readerFor(endUser, 'user:u2').ok, false);
});
