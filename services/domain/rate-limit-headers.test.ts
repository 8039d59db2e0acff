import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rateLimitHeaders, retryAfterSeconds } from './rate-limit-headers.ts';

const ingest = { name: 'ingest', limit: 1000, periodMs: 60_000 };
const read = { name: 'read', limit: 100, periodMs: 1_000 };

test('an admitted request: the policy, what is left and when the bucket is full again; no Retry-After', () => {
  assert.deepEqual(
    rateLimitHeaders([{ allowed: true, remaining: 500, resetMs: 30_000, retryAfterMs: 0, policy: ingest }]),
    { 'RateLimit-Policy': '"ingest";q=1000;w=60', RateLimit: '"ingest";r=500;t=30' },
  );
});

test('a refused request: Retry-After in whole seconds rounded up, and t no later than it', () => {
  assert.deepEqual(
    rateLimitHeaders([
      { allowed: true, remaining: 99, resetMs: 10, retryAfterMs: 0, policy: read },
      { allowed: false, remaining: 3, resetMs: 59_000, retryAfterMs: 1_020, policy: ingest },
    ]),
    {
      'Retry-After': '2',
      'RateLimit-Policy': '"read";q=100;w=1, "ingest";q=1000;w=60',
      RateLimit: '"read";r=99;t=1, "ingest";r=3;t=2',
    },
  );
  // The longest wait of several refusals.
  assert.equal(
    rateLimitHeaders([
      { allowed: false, remaining: 0, resetMs: 900, retryAfterMs: 10, policy: read },
      { allowed: false, remaining: 0, resetMs: 59_000, retryAfterMs: 4_001, policy: ingest },
    ])['Retry-After'],
    '5',
  );
  assert.equal(retryAfterSeconds(1), 1);
  assert.equal(retryAfterSeconds(1000), 1);
  assert.equal(retryAfterSeconds(1001), 2);
  assert.equal(retryAfterSeconds(0), 0);
});

test('a cost that never fits: no Retry-After, no t', () => {
  assert.deepEqual(
    rateLimitHeaders([
      { allowed: false, remaining: 1000, resetMs: 0, retryAfterMs: Number.POSITIVE_INFINITY, policy: ingest },
    ]),
    { 'RateLimit-Policy': '"ingest";q=1000;w=60', RateLimit: '"ingest";r=1000' },
  );
});

test('an unjudged decision (the backend failed) gives only its Retry-After; none gives nothing', () => {
  assert.deepEqual(
    rateLimitHeaders([
      {
        allowed: false,
        remaining: 0,
        resetMs: 0,
        retryAfterMs: 5_000,
        policy: ingest,
        reason: 'unavailable',
      },
    ]),
    { 'Retry-After': '5' },
  );
  assert.deepEqual(
    rateLimitHeaders([
      { allowed: true, remaining: 1000, resetMs: 0, retryAfterMs: 0, policy: ingest, reason: 'unavailable' },
    ]),
    {},
  );
  assert.deepEqual(rateLimitHeaders([]), {});
});

test('names are structured-field strings; a window that is not whole seconds is left out', () => {
  assert.deepEqual(
    rateLimitHeaders([
      {
        allowed: true,
        remaining: 1,
        resetMs: 0,
        retryAfterMs: 0,
        policy: { name: 'a"b\\c', limit: 2, periodMs: 1500 },
      },
    ]),
    { 'RateLimit-Policy': '"a\\"b\\\\c";q=2', RateLimit: '"a\\"b\\\\c";r=1;t=0' },
  );
  assert.throws(
    () =>
      rateLimitHeaders([
        { allowed: true, remaining: 1, resetMs: 0, retryAfterMs: 0, policy: { ...read, name: 'é' } },
      ]),
    /printable ASCII/,
  );
});
