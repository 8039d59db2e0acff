import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  CompactSign,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { type AppError, Code } from '../app-error.ts';
import {
  createJwtVerifier,
  INVALID_TOKEN,
  type JwtFailure,
  type JwtVerifierOptions,
} from './jwt-verifier.ts';

const ISSUER = 'https://id.example';
const AUDIENCE = 'tally';

type Pair = Awaited<ReturnType<typeof generateKeyPair>>;
interface SigningKey {
  kid: string;
  alg: string;
  pair: Pair;
  jwk: JWK;
}

async function signingKey(kid: string, alg: string): Promise<SigningKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, pair, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' } };
}

/** A token signed by `key`, valid now for five minutes, for `user-1`, unless `claims` say otherwise. */
async function sign(
  key: SigningKey,
  claims: JWTPayload = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  const nowSec = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'user-1', iat: nowSec, exp: nowSec + 300, ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.pair.privateKey);
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A JWKS endpoint whose keys the test changes; it counts its fetches and can fail or hang. */
class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  readonly server: Server = createServer((_req, res) => {
    this.fetches++;
    if (this.mode === 'hang') return; // never answers; the verifier's timeout ends the fetch
    if (this.mode === 'fail') return void res.writeHead(500).end('down');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
  });

  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

/** Asserts `promise` is refused for `failure`, and that nothing the caller sees repeats the token. */
async function refusedFor(promise: Promise<unknown>, failure: JwtFailure, token: string): Promise<void> {
  await assert.rejects(promise, (error: AppError) => {
    assert.equal(error.metadata.token_error, failure, error.message);
    assert.equal(error.reason, INVALID_TOKEN);
    assert.equal(error.code, failure === 'jwks_unavailable' ? Code.UNAVAILABLE : Code.UNAUTHENTICATED);
    const seen = `${error.message} ${JSON.stringify(error.metadata)} ${String(error.cause)}`;
    for (const part of token.split('.').filter((p) => p.length > 8))
      assert.ok(!seen.includes(part), `the error repeats the token: ${seen}`);
    return true;
  });
}

describe('JWT verifier with a JWKS URL', () => {
  const jwks = new JwksServer();
  let url: string;
  let rs: SigningKey;
  let es: SigningKey;
  let ed: SigningKey;
  const verifier = (options: Partial<JwtVerifierOptions> = {}) =>
    createJwtVerifier({
      jwksUrl: url,
      issuer: ISSUER,
      audience: AUDIENCE,
      cooldownMs: 200,
      timeoutMs: 500,
      ...options,
    });

  before(async () => {
    [rs, es, ed] = await Promise.all([
      signingKey('rs-1', 'RS256'),
      signingKey('es-1', 'ES256'),
      signingKey('ed-1', 'EdDSA'),
    ]);
    url = await jwks.listen();
  });
  after(() => jwks.close());

  test('a valid token becomes a principal; its Tally scopes are kept, others ignored', async () => {
    jwks.keys = [rs.jwk, es.jwk, ed.jwk];
    const v = verifier();
    for (const key of [rs, es, ed]) {
      const principal = await v.verify(await sign(key, { scope: 'openid ingest read profile' }));
      const { expiresAtMs, ...rest } = principal;
      assert.deepEqual(rest, {
        kind: 'jwt',
        id: 'user-1',
        userId: 'user-1',
        scopes: new Set(['ingest', 'read']),
      });
      assert.ok(expiresAtMs! > Date.now(), "the token's exp is the principal's expiry");
    }
    assert.deepEqual((await v.verify(await sign(rs))).scopes, new Set(), 'no scopes claim: no scopes');
  });

  test('the scopes claim is configurable and may be an array', async () => {
    jwks.keys = [rs.jwk];
    const v = verifier({ scopesClaim: 'permissions' });
    const token = await sign(rs, { permissions: ['read', 'admin', 'billing'], scope: 'ingest' });
    assert.deepEqual((await v.verify(token)).scopes, new Set(['read', 'admin']));
    const numeric = await sign(rs, { permissions: 42 });
    await refusedFor(v.verify(numeric), 'malformed', numeric);
  });

  test('keys are cached: many verifications, one fetch', async () => {
    jwks.keys = [rs.jwk];
    const v = verifier();
    const before = jwks.fetches;
    for (let i = 0; i < 10; i++) await v.verify(await sign(rs));
    assert.equal(jwks.fetches - before, 1);
  });

  test('rotation: a kid published later is accepted after one refetch; a kid never published is refused after one', async () => {
    jwks.keys = [rs.jwk];
    const v = verifier();
    await v.verify(await sign(rs));
    const fetched = jwks.fetches;

    const next = await signingKey('rs-2', 'RS256');
    jwks.keys = [rs.jwk, next.jwk];
    await new Promise((r) => setTimeout(r, 250)); // past the cooldown
    await v.verify(await sign(next));
    assert.equal(jwks.fetches, fetched + 1, 'the unknown kid fetched the keys once');
    await v.verify(await sign(rs));
    await v.verify(await sign(next));
    assert.equal(jwks.fetches, fetched + 1, 'both kids served from the cache');

    await new Promise((r) => setTimeout(r, 250));
    const rogue = await signingKey('never-published', 'RS256');
    const token = await sign(rogue);
    await refusedFor(v.verify(token), 'unknown_kid', token);
    assert.equal(jwks.fetches, fetched + 2, 'one refetch for the unknown kid');
    await refusedFor(v.verify(token), 'unknown_kid', token);
    assert.equal(jwks.fetches, fetched + 2, 'no refetch within the cooldown');
  });

  test('a key published under a known kid but not the signer is a bad signature', async () => {
    jwks.keys = [rs.jwk];
    const impostor = await signingKey('rs-1', 'RS256');
    const token = await sign(impostor);
    await refusedFor(verifier().verify(token), 'bad_signature', token);
    const [h, , s] = (await sign(rs)).split('.');
    const tampered = `${h}.${b64url({ iss: ISSUER, aud: AUDIENCE, sub: 'admin', exp: 2e9 })}.${s}`;
    await refusedFor(verifier().verify(tampered), 'bad_signature', tampered);
  });

  test('alg none is refused', async () => {
    jwks.keys = [rs.jwk];
    const nowSec = Math.floor(Date.now() / 1000);
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: ISSUER, aud: AUDIENCE, sub: 'u', exp: nowSec + 60 })}.`;
    await refusedFor(verifier().verify(token), 'algorithm_not_allowed', token);
    const withKid = `${b64url({ alg: 'none', kid: 'rs-1' })}.${b64url({ iss: ISSUER, aud: AUDIENCE, sub: 'u', exp: nowSec + 60 })}.`;
    await refusedFor(verifier().verify(withKid), 'algorithm_not_allowed', withKid);
  });

  test('HS256 signed with the RS256 public key as the secret is refused', async () => {
    jwks.keys = [rs.jwk];
    const token = hs256WithPublicKey(await exportSPKI(rs.pair.publicKey), 'rs-1');
    await refusedFor(verifier().verify(token), 'algorithm_not_allowed', token);
  });

  test('wrong audience, wrong issuer, expired, not yet valid, missing claims', async () => {
    jwks.keys = [rs.jwk];
    const v = verifier();
    const nowSec = Math.floor(Date.now() / 1000);
    const cases: [JWTPayload, JwtFailure][] = [
      [{ aud: 'someone-else' }, 'wrong_audience'],
      [{ iss: 'https://evil.example' }, 'wrong_issuer'],
      [{ iss: undefined }, 'wrong_issuer'],
      [{ exp: nowSec - 60 }, 'expired'],
      [{ nbf: nowSec + 120 }, 'not_yet_valid'],
      [{ sub: undefined }, 'malformed'],
      [{ exp: undefined }, 'malformed'],
      [{ sub: 'x'.repeat(129) }, 'malformed'],
    ];
    for (const [claims, failure] of cases) {
      const token = await sign(rs, claims);
      await refusedFor(v.verify(token), failure, token);
    }
    // Within the clock tolerance (30 s by default), both ways.
    await v.verify(await sign(rs, { exp: nowSec - 10 }));
    await v.verify(await sign(rs, { nbf: nowSec + 10 }));
    await refusedFor(
      verifier({ clockToleranceSec: 0 }).verify(await sign(rs, { exp: nowSec - 10 })),
      'expired',
      'x',
    );
    // An audience list accepts a token for any of its members.
    await verifier({ audience: ['other', AUDIENCE] }).verify(await sign(rs));
  });

  test('malformed tokens', async () => {
    jwks.keys = [rs.jwk];
    const v = verifier();
    const good = await sign(rs);
    for (const token of [
      '',
      'abc',
      'a.b.c',
      `${good}.x`,
      `!${good}`,
      await signedText(rs, 'not json'),
      `${'a'.repeat(20_000)}.b.c`,
    ])
      await refusedFor(v.verify(token), 'malformed', token);
  });

  test('an unreachable, failing or hanging JWKS is jwks_unavailable, within the timeout', async () => {
    const token = await sign(rs);
    jwks.mode = 'fail';
    try {
      await refusedFor(verifier().verify(token), 'jwks_unavailable', token);
      jwks.mode = 'hang';
      const started = performance.now();
      await refusedFor(verifier({ timeoutMs: 300 }).verify(token), 'jwks_unavailable', token);
      assert.ok(performance.now() - started < 2_000, 'bounded by the timeout');
    } finally {
      jwks.mode = 'ok';
    }
    await refusedFor(
      createJwtVerifier({
        jwksUrl: 'http://127.0.0.1:1/jwks.json',
        issuer: ISSUER,
        audience: AUDIENCE,
      }).verify(token),
      'jwks_unavailable',
      token,
    );
  });
});

describe('JWT verifier with a static key', () => {
  test('a PEM public key verifies its tokens; other algorithms are refused', async () => {
    const rs = await signingKey('any', 'RS256');
    const es = await signingKey('any', 'ES256');
    const pem = await exportSPKI(rs.pair.publicKey);
    const v = createJwtVerifier({ publicKeyPem: pem, issuer: ISSUER, audience: AUDIENCE });
    assert.equal((await v.verify(await sign(rs, { scope: 'ingest' }))).userId, 'user-1');
    const other = await sign(es);
    await refusedFor(v.verify(other), 'algorithm_not_allowed', other);
    const rogue = await sign(await signingKey('any', 'RS256'));
    await refusedFor(v.verify(rogue), 'bad_signature', rogue);
    const confused = hs256WithPublicKey(pem);
    await refusedFor(v.verify(confused), 'algorithm_not_allowed', confused);
    const expired = await sign(rs, { exp: Math.floor(Date.now() / 1000) - 3600 });
    await refusedFor(v.verify(expired), 'expired', expired);
  });

  test('a JWK verifies its tokens', async () => {
    const ed = await signingKey('ed', 'EdDSA');
    const v = createJwtVerifier({ jwk: ed.jwk, issuer: ISSUER, audience: AUDIENCE });
    assert.deepEqual((await v.verify(await sign(ed, { scope: 'read' }))).scopes, new Set(['read']));
  });

  test('an HMAC-only list verifies with a shared secret', async () => {
    const secret = new TextEncoder().encode('a shared secret of at least 32 bytes!!');
    const token = await new SignJWT({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'u',
      exp: Math.floor(Date.now() / 1000) + 60,
    })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(secret);
    const v = createJwtVerifier({ secret, algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE });
    assert.equal((await v.verify(token)).id, 'u');
  });

  test('bad configurations are refused, naming the option', async () => {
    const rs = await signingKey('k', 'RS256');
    const pem = await exportSPKI(rs.pair.publicKey);
    const base = { issuer: ISSUER, audience: AUDIENCE };
    const cases: [Partial<JwtVerifierOptions>, RegExp][] = [
      [{}, /exactly one of/],
      [{ publicKeyPem: pem, jwk: rs.jwk }, /exactly one of/],
      [{ publicKeyPem: pem, algorithms: ['none'] }, /"none" is never allowed/],
      [{ publicKeyPem: pem, algorithms: ['RS256', 'NONE'] }, /"none" is never allowed/],
      [{ publicKeyPem: pem, algorithms: ['RS256', 'HS256'] }, /may not be mixed/],
      [{ publicKeyPem: pem, algorithms: ['HS256'] }, /need a secret/],
      [{ secret: new Uint8Array(32) }, /HMAC algorithms only/],
      [{ publicKeyPem: pem, algorithms: ['XX1'] }, /unknown algorithm "XX1"/],
      [{ publicKeyPem: pem, algorithms: [] }, /at least one/],
      [{ publicKeyPem: pem, algorithms: ['ES256'] }, /the key verifies RS256/],
      [{ publicKeyPem: 'not a key' }, /publicKeyPem: not a public key/],
      [{ publicKeyPem: pem, issuer: '' }, /issuer/],
      [{ publicKeyPem: pem, audience: [] }, /audience/],
      [{ publicKeyPem: pem, clockToleranceSec: -1 }, /clockToleranceSec/],
    ];
    for (const [options, message] of cases)
      assert.throws(
        () => createJwtVerifier({ ...base, ...options }),
        message,
        JSON.stringify(Object.keys(options)),
      );
  });
});

/** A compact JWS over `payload` that is not a JSON claims set, correctly signed by `key`. */
async function signedText(key: SigningKey, payload: string): Promise<string> {
  return new CompactSign(new TextEncoder().encode(payload))
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .sign(key.pair.privateKey);
}

/** The classic confusion attack: an HS256 token whose HMAC key is the RS256 public key's PEM text. */
function hs256WithPublicKey(pem: string, kid?: string): string {
  const nowSec = Math.floor(Date.now() / 1000);
  const head = `${b64url({ alg: 'HS256', typ: 'JWT', ...(kid ? { kid } : {}) })}.${b64url({ iss: ISSUER, aud: AUDIENCE, sub: 'user-1', exp: nowSec + 60 })}`;
  return `${head}.${createHmac('sha256', pem).update(head).digest('base64url')}`;
}
