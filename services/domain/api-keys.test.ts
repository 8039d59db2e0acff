import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import {
  API_KEY_BODY_CHARS,
  API_KEY_CHARS,
  API_KEY_PREFIXES,
  type ApiKeyKind,
  apiKeyId,
  base62,
  crc32,
  eventUserFor,
  formatApiKey,
  type Principal,
  parseApiKey,
  parseScopes,
  sortedScopes,
} from './api-keys.ts';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const kinds = fc.constantFrom<ApiKeyKind>('ingest', 'secret');
const random32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe('scopes', () => {
  test('a comma-separated list becomes a set; spaces and repeats do not matter', () => {
    const parsed = parseScopes(' ingest, read ,ingest');
    assert.ok('scopes' in parsed);
    assert.deepEqual(sortedScopes(parsed.scopes), ['ingest', 'read']);
    const all = parseScopes('admin,read,ingest');
    assert.ok('scopes' in all);
    assert.deepEqual(sortedScopes(all.scopes), ['ingest', 'read', 'admin']);
  });

  test('an unknown scope is named; an empty list is refused', () => {
    assert.deepEqual(parseScopes('ingest,write'), {
      error: 'unknown scope "write" (one of ingest, read, admin)',
    });
    assert.deepEqual(parseScopes('Read'), { error: 'unknown scope "Read" (one of ingest, read, admin)' });
    assert.ok('error' in parseScopes(' , '));
    assert.ok('error' in parseScopes(''));
  });
});

describe('API key format', () => {
  test('base62 and CRC32 are the standard ones', () => {
    assert.equal(base62(0n, 3), '000');
    assert.equal(base62(61n, 1), 'z');
    assert.equal(base62(62n, 1), '10');
    assert.equal(base62(2n ** 256n - 1n, API_KEY_BODY_CHARS).length, API_KEY_BODY_CHARS);
    assert.equal(crc32('123456789'), 0xcbf43926); // the CRC-32 check value
    fc.assert(fc.property(fc.stringMatching(/^[ -~]{0,80}$/), (text) => crc32(text) === zlibCrc32(text)));
  });

  test('a key is its prefix, 43 base62 characters of body and 6 of checksum', () => {
    const key = formatApiKey('secret', new Uint8Array(32).fill(0xff));
    assert.equal(key.length, API_KEY_CHARS);
    assert.equal(API_KEY_CHARS, 56);
    assert.match(key, /^tly_sk_[0-9A-Za-z]{49}$/);
    assert.match(formatApiKey('ingest', new Uint8Array(32)), /^tly_ik_0{43}[0-9A-Za-z]{6}$/);
    assert.throws(() => formatApiKey('secret', new Uint8Array(31)), /32 random bytes/);
  });

  test('round trip: every key parses back to its kind, body and id', () => {
    fc.assert(
      fc.property(kinds, random32, (kind, bytes) => {
        const key = formatApiKey(kind, bytes);
        const parsed = parseApiKey(key);
        assert.ok(parsed.ok);
        assert.equal(parsed.kind, kind);
        assert.equal(API_KEY_PREFIXES[kind] + parsed.body, key.slice(0, -6));
        assert.equal(BigInt(`0x${Buffer.from(bytes).toString('hex')}`), decode(parsed.body));
        assert.equal(parsed.id, key.slice(7, 15));
        assert.equal(apiKeyId(key), parsed.id);
      }),
    );
  });

  test('any one character changed is detected, the prefix included', () => {
    fc.assert(
      fc.property(
        kinds,
        random32,
        fc.nat(API_KEY_CHARS - 1),
        fc.constantFrom(...BASE62, '_', '-'),
        (kind, bytes, at, replacement) => {
          const key = formatApiKey(kind, bytes);
          fc.pre(key[at] !== replacement);
          const corrupted = key.slice(0, at) + replacement + key.slice(at + 1);
          const parsed = parseApiKey(corrupted);
          assert.equal(parsed.ok, false, `position ${at}`);
        },
      ),
      { numRuns: 2_000 },
    );
    // The two prefixes differ in one character: the checksum covers the prefix, so a key cannot change kind.
    const ingest = formatApiKey('ingest', randomBytes(32));
    const asSecret = parseApiKey(`tly_sk_${ingest.slice(7)}`);
    assert.ok(!asSecret.ok && asSecret.problem === 'bad_checksum');
  });

  test('each reason is precise and never repeats the text', () => {
    const key = formatApiKey('secret', randomBytes(32));
    const cases: [string, string][] = [
      [`ghp_${key.slice(7)}`, 'wrong_prefix'],
      [key.slice(0, -1), 'bad_length'],
      [`${key}A`, 'bad_length'],
      [`${key.slice(0, 20)}-${key.slice(21)}`, 'bad_characters'],
      [`${key.slice(0, 20)}${key[20] === 'A' ? 'B' : 'A'}${key.slice(21)}`, 'bad_checksum'],
      ['', 'wrong_prefix'],
    ];
    for (const [text, problem] of cases) {
      const parsed = parseApiKey(text);
      assert.ok(!parsed.ok, text);
      assert.equal(parsed.problem, problem, text);
      assert.ok(!parsed.message.includes(key.slice(7, 30)), `${problem}: the message repeats the key`);
    }
    assert.equal(apiKeyId('nope'), undefined);
  });
});

describe('eventUserFor', () => {
  const jwt = (scopes: Principal['scopes']): Principal => ({ kind: 'jwt', id: 'u1', userId: 'u1', scopes });

  test("a token's subject fills an empty user and may be repeated", () => {
    assert.deepEqual(eventUserFor(jwt(new Set(['ingest'])), ''), { userId: 'u1' });
    assert.deepEqual(eventUserFor(jwt(new Set(['ingest'])), 'u1'), { userId: 'u1' });
  });

  test('a token names another user only with the admin scope', () => {
    assert.ok('error' in eventUserFor(jwt(new Set(['ingest'])), 'u2'));
    assert.deepEqual(eventUserFor(jwt(new Set(['ingest', 'admin'])), 'u2'), { userId: 'u2' });
  });

  test('a key writes what it sends', () => {
    const key: Principal = { kind: 'key', id: 'abcdEFGH', scopes: new Set(['ingest']) };
    assert.deepEqual(eventUserFor(key, 'anyone'), { userId: 'anyone' });
    assert.deepEqual(eventUserFor(key, ''), { userId: '' });
  });
});

function decode(text: string): bigint {
  let value = 0n;
  for (const c of text) value = value * 62n + BigInt(BASE62.indexOf(c));
  return value;
}
