import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError, Code } from '../infra/app-error.ts';
import { decodeCursor, encodeCursor, type ListingFilter } from './event-cursor.ts';

const filter: ListingFilter = { subject: { kind: 'user', id: 'u1' }, type: 'like', order: 'newest' };
const at = { occurredUs: 1_767_225_600_123_456n, id: '0198a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b' };

const refusedNaming = (field: string) => (error: unknown) =>
  error instanceof AppError && error.code === Code.INVALID_ARGUMENT && error.field === field;

test('a token round-trips its direction and exact position, base64url and short', () => {
  for (const cursor of [
    { toward: 'next' as const, at },
    { toward: 'prev' as const, at },
    { toward: 'next' as const },
  ]) {
    const token = encodeCursor(filter, cursor);
    assert.match(token, /^[A-Za-z0-9_-]+$/);
    assert.ok(token.length < 200, token);
    assert.deepEqual(decodeCursor(token, filter), cursor);
  }
});

test("another filter's token is refused naming page_token", () => {
  const token = encodeCursor(filter, { toward: 'next', at });
  for (const other of [
    { ...filter, subject: { kind: 'user' as const, id: 'u2' } },
    { ...filter, subject: { kind: 'target' as const, id: 'u1' } },
    { ...filter, type: undefined },
    { ...filter, fromUs: 0n },
    { ...filter, toUs: 1n },
    { ...filter, order: 'oldest' as const },
  ])
    assert.throws(() => decodeCursor(token, other), refusedNaming('page_token'));
});

test('anything else is refused naming page_token, never thrown as another error', () => {
  const json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  for (const token of [
    'not a token',
    'x'.repeat(600),
    'bm90IGpzb24',
    json(null),
    json({ v: 2, f: 'x', d: 'n' }),
    json({ v: 1, f: 'x', d: 'sideways' }),
    json({ v: 1, f: encodeCursor(filter, { toward: 'next' }).slice(0, 0), d: 'n' }),
  ])
    assert.throws(() => decodeCursor(token, filter), refusedNaming('page_token'), token);
  const good = JSON.parse(Buffer.from(encodeCursor(filter, { toward: 'next', at }), 'base64url').toString());
  for (const broken of [
    { ...good, t: '1e9' },
    { ...good, t: 5 },
    { ...good, i: undefined },
  ])
    assert.throws(() => decodeCursor(json(broken), filter), refusedNaming('page_token'));
});
