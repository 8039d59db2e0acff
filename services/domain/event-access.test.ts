import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Principal, Scope } from './api-keys.ts';
import { eventSubjectFor } from './event-access.ts';

const principal = (kind: Principal['kind'], scopes: Scope[], userId?: string): Principal => ({
  kind,
  id: userId ?? 'k1',
  scopes: new Set(scopes),
  ...(userId === undefined ? {} : { userId }),
});
const endUser = principal('jwt', ['read'], 'u1');
const adminToken = principal('jwt', ['read', 'admin'], 'ops');
const serverKey = principal('key', ['read']);

test('exactly one of user and target, named when missing or doubled', () => {
  for (const who of [serverKey, endUser, undefined]) {
    assert.deepEqual(eventSubjectFor(who, { user: '', target: '' }), {
      ok: false,
      denied: false,
      field: 'user',
      reason: 'one of user and target is required',
    });
    const both = eventSubjectFor(who, { user: 'u1', target: 'post/1' });
    assert.equal(!both.ok && both.field, 'target');
    assert.equal(!both.ok && both.denied, false);
  }
});

test('an end user lists its own events only, by its id or "me"', () => {
  assert.deepEqual(eventSubjectFor(endUser, { user: 'u1', target: '' }), {
    ok: true,
    subject: { kind: 'user', id: 'u1' },
  });
  assert.deepEqual(eventSubjectFor(endUser, { user: 'me', target: '' }), {
    ok: true,
    subject: { kind: 'user', id: 'u1' },
  });
  const other = eventSubjectFor(endUser, { user: 'u2', target: '' });
  assert.deepEqual(other.ok ? undefined : [other.denied, other.field], [true, 'user']);
  const target = eventSubjectFor(endUser, { user: '', target: 'post/1' });
  assert.deepEqual(target.ok ? undefined : [target.denied, target.field], [true, 'target']);
  assert.match(target.ok ? '' : target.reason, /only its own events/);
});

test('keys and administering tokens list any user and any target; "me" needs a subject', () => {
  for (const who of [serverKey, adminToken, undefined]) {
    assert.deepEqual(eventSubjectFor(who, { user: 'u2', target: '' }), {
      ok: true,
      subject: { kind: 'user', id: 'u2' },
    });
    assert.deepEqual(eventSubjectFor(who, { user: '', target: 'post/1' }), {
      ok: true,
      subject: { kind: 'target', id: 'post/1' },
    });
  }
  assert.deepEqual(eventSubjectFor(adminToken, { user: 'me', target: '' }), {
    ok: true,
    subject: { kind: 'user', id: 'ops' },
  });
  const me = eventSubjectFor(serverKey, { user: 'me', target: '' });
  assert.deepEqual(me.ok ? undefined : [me.denied, me.field], [false, 'user']);
});
