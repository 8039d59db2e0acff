/**
 * The key store contract, run on each SQL adapter (PostgreSQL, PGlite): the same keys, states and
 * errors. `environment()` gives a migrated database in a fresh schema.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { parseApiKey } from '../../domain/api-keys.ts';
import { type AppError, Code } from '../app-error.ts';
import type { SqlDatabase } from '../sql/sql-database.ts';
import { authenticateApiKey, hashApiKey, keyState, type NewKeySpec, principalOfKey } from './key-store.ts';
import { createSqlKeyStore, type SqlKeyStoreOptions } from './sql-key-store.ts';

export interface KeyStoreEnvironment {
  /** Migrated. */
  sql: SqlDatabase;
  cleanup(): Promise<void>;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

const secret = (scopes: NewKeySpec['scopes'] = new Set(['ingest', 'read'])): NewKeySpec => ({
  name: 'reporting server',
  kind: 'secret',
  scopes,
});

function rejectsWith(code: number, field?: string, why?: string) {
  return (error: AppError) => {
    assert.equal(error.code, code, error.message);
    if (field !== undefined) assert.equal(error.field, field, error.message);
    if (why !== undefined) assert.equal(error.metadata.credential_error, why, error.message);
    return true;
  };
}

export function keyStoreContract(adapter: string, environment: () => Promise<KeyStoreEnvironment>): void {
  describe(`key store contract: ${adapter}`, () => {
    /** A store on a fresh schema with a clock the test moves; `lastUseWrites` counts last-use statements. */
    const withStore = async (
      t: { after(fn: () => Promise<void>): void },
      options: Partial<SqlKeyStoreOptions> = {},
    ) => {
      const env = await environment();
      const clock = { ms: T0 };
      let lastUseWrites = 0;
      const sql: SqlDatabase = {
        ...env.sql,
        query: (text, params) => {
          if (text.includes('SET last_used_at')) lastUseWrites++;
          return env.sql.query(text, params);
        },
      };
      const store = createSqlKeyStore({ sql, now: () => new Date(clock.ms), ...options });
      t.after(async () => {
        await store.close();
        await env.cleanup();
      });
      return { store, clock, sql: env.sql, lastUseWrites: () => lastUseWrites };
    };

    test('a new key is returned once and found by its hash; nothing stored reveals it', async (t) => {
      const { store, sql } = await withStore(t);
      const { key, record } = await store.create(secret());
      const parsed = parseApiKey(key);
      assert.ok(parsed.ok);
      assert.equal(parsed.kind, 'secret');
      assert.equal(record.id, parsed.id);
      assert.deepEqual(record, {
        id: parsed.id,
        name: 'reporting server',
        kind: 'secret',
        scopes: ['ingest', 'read'],
        allowedOrigins: [],
        allowedTypes: [],
        limits: {},
        monthlyQuota: undefined,
        createdAt: new Date(T0),
        lastUsedAt: undefined,
        expiresAt: undefined,
        revokedAt: undefined,
        replacedBy: undefined,
      });
      assert.deepEqual(await store.findByHash(hashApiKey(key)), record);
      const other = key.endsWith('x') ? 'y' : 'x'; // one character changed, whatever the last was
      assert.equal(await store.findByHash(hashApiKey(`${key.slice(0, -1)}${other}`)), undefined);
      assert.deepEqual(await store.get(record.id), record);
      assert.equal(await store.get('nope0000'), undefined);
      const rows = JSON.stringify(await sql.query('SELECT * FROM api_key'));
      assert.ok(!rows.includes(key.slice(7, 40)), 'the key is not stored');
      assert.ok(rows.includes(hashApiKey(key)), 'its SHA-256 is');
      assert.equal(hashApiKey(key), createHash('sha256').update(key).digest('hex'));
    });

    test('an ingest key keeps its origins, types, limits and quota', async (t) => {
      const { store } = await withStore(t);
      const { key, record } = await store.create({
        name: 'web app',
        kind: 'ingest',
        scopes: new Set(['ingest']),
        allowedOrigins: ['https://a.example', 'http://localhost:5173'],
        allowedTypes: ['like', 'view'],
        limits: { ingestEventsPerMinute: 600, readsPerMinute: 30 },
        monthlyQuota: 5_000_000_000,
        expiresAt: new Date(T0 + 90 * DAY),
      });
      assert.match(key, /^tly_ik_/);
      assert.deepEqual(await store.findByHash(hashApiKey(key)), record);
      assert.deepEqual(record.allowedOrigins, ['https://a.example', 'http://localhost:5173']);
      assert.deepEqual(record.allowedTypes, ['like', 'view']);
      assert.deepEqual(record.limits, { ingestEventsPerMinute: 600, readsPerMinute: 30 });
      assert.equal(record.monthlyQuota, 5_000_000_000);
      assert.deepEqual(record.expiresAt, new Date(T0 + 90 * DAY));
      assert.deepEqual(principalOfKey(record), {
        kind: 'key',
        id: record.id,
        scopes: new Set(['ingest']),
        allowedOrigins: ['https://a.example', 'http://localhost:5173'],
        allowedTypes: ['like', 'view'],
        limits: { ingestEventsPerMinute: 600, readsPerMinute: 30 },
        monthlyQuota: 5_000_000_000,
        expiresAtMs: T0 + 90 * DAY,
      });
    });

    test('a bad spec is refused naming its field, and nothing is stored', async (t) => {
      const { store } = await withStore(t);
      const cases: [Partial<NewKeySpec>, string][] = [
        [{ name: '  ' }, 'name'],
        [{ name: 'two\nlines' }, 'name'],
        [{ scopes: new Set() }, 'scopes'],
        [{ kind: 'ingest', scopes: new Set(['ingest', 'read']) }, 'scopes'],
        [{ allowedOrigins: ['https://a.example'] }, 'allowedOrigins'],
        [{ allowedTypes: ['like'] }, 'allowedTypes'],
        [
          { kind: 'ingest', scopes: new Set(['ingest']), allowedOrigins: ['https://a.example/path'] },
          'allowedOrigins[0]',
        ],
        [{ kind: 'ingest', scopes: new Set(['ingest']), allowedTypes: ['ok', 'not ok'] }, 'allowedTypes[1]'],
        [{ limits: { ingestEventsPerMinute: 0 } }, 'limits.ingestEventsPerMinute'],
        [{ limits: { readsPerMinute: 1.5 } }, 'limits.readsPerMinute'],
        [{ monthlyQuota: -1 }, 'monthlyQuota'],
        [{ expiresAt: new Date(T0) }, 'expiresAt'],
      ];
      for (const [change, field] of cases)
        await assert.rejects(
          store.create({ ...secret(), ...change }),
          rejectsWith(Code.INVALID_ARGUMENT, field),
        );
      assert.deepEqual(await store.list(), []);
    });

    test('list shows every key, oldest first', async (t) => {
      const { store, clock } = await withStore(t);
      const a = await store.create({ ...secret(), name: 'a' });
      clock.ms += MINUTE;
      const b = await store.create({ ...secret(new Set(['admin'])), name: 'b' });
      const listed = await store.list();
      assert.deepEqual(listed, [a.record, b.record]);
      assert.ok(listed.every((r) => !('hash' in r) && !('key' in r)));
    });

    test('concurrent creates make distinct keys', async (t) => {
      const { store } = await withStore(t);
      const made = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.create({ ...secret(), name: `k${i}` })),
      );
      assert.equal(new Set(made.map((m) => m.record.id)).size, 20);
      assert.equal((await store.list()).length, 20);
    });

    test('a display id already taken makes the store draw another key', async (t) => {
      const first = randomBytes(32);
      const draws = [first, Buffer.concat([first.subarray(0, 16), randomBytes(16)]), randomBytes(32)];
      const { store } = await withStore(t, { random: () => draws.shift() ?? randomBytes(32) });
      const a = await store.create(secret());
      const b = await store.create(secret());
      assert.notEqual(a.record.id, b.record.id);
      assert.equal(draws.length, 0, 'the colliding draw was used and replaced');
      assert.ok(await store.findByHash(hashApiKey(b.key)));
    });

    test('revoke stops a key at once; again changes nothing; an unknown id is NOT_FOUND', async (t) => {
      const { store, clock } = await withStore(t);
      const { key, record } = await store.create(secret());
      assert.equal((await authenticateApiKey(store, key, new Date(clock.ms))).id, record.id);
      clock.ms += MINUTE;
      const revoked = await store.revoke(record.id);
      assert.deepEqual(revoked.revokedAt, new Date(T0 + MINUTE));
      assert.equal(keyState(revoked, new Date(clock.ms)), 'revoked');
      clock.ms += MINUTE;
      assert.deepEqual((await store.revoke(record.id)).revokedAt, new Date(T0 + MINUTE));
      await assert.rejects(
        authenticateApiKey(store, key, new Date(clock.ms)),
        rejectsWith(Code.UNAUTHENTICATED, undefined, 'revoked'),
      );
      await assert.rejects(store.revoke('nope0000'), rejectsWith(Code.NOT_FOUND, 'id'));
    });

    test('rotate: both keys work during the grace period, then only the new one', async (t) => {
      const { store, clock } = await withStore(t);
      const old = await store.create({ ...secret(), expiresAt: new Date(T0 + 30 * DAY) });
      clock.ms += DAY;
      const rotated = await store.rotate(old.record.id, 3_600_000);
      assert.notEqual(rotated.key, old.key);
      assert.equal(rotated.record.name, old.record.name);
      assert.deepEqual(rotated.record.scopes, old.record.scopes);
      assert.deepEqual(rotated.record.createdAt, new Date(T0 + DAY));
      assert.deepEqual(rotated.record.expiresAt, new Date(T0 + 31 * DAY), 'the same lifetime');
      const before = (await store.get(old.record.id))!;
      assert.equal(before.replacedBy, rotated.record.id);
      assert.deepEqual(before.expiresAt, new Date(T0 + DAY + 3_600_000));

      clock.ms += 3_600_000 - 1;
      await authenticateApiKey(store, old.key, new Date(clock.ms));
      await authenticateApiKey(store, rotated.key, new Date(clock.ms));
      clock.ms += 1;
      await assert.rejects(
        authenticateApiKey(store, old.key, new Date(clock.ms)),
        rejectsWith(Code.UNAUTHENTICATED, undefined, 'expired'),
      );
      await authenticateApiKey(store, rotated.key, new Date(clock.ms));
    });

    test('rotate keeps an earlier expiry, and refuses keys rotated, revoked or unknown', async (t) => {
      const { store, clock } = await withStore(t);
      const soon = await store.create({ ...secret(), expiresAt: new Date(T0 + MINUTE) });
      await store.rotate(soon.record.id, DAY);
      assert.deepEqual((await store.get(soon.record.id))!.expiresAt, new Date(T0 + MINUTE));
      await assert.rejects(store.rotate(soon.record.id, DAY), rejectsWith(Code.FAILED_PRECONDITION));
      const revoked = await store.create(secret());
      await store.revoke(revoked.record.id);
      await assert.rejects(store.rotate(revoked.record.id, DAY), rejectsWith(Code.FAILED_PRECONDITION));
      await assert.rejects(store.rotate('nope0000', DAY), rejectsWith(Code.NOT_FOUND, 'id'));
      await assert.rejects(
        store.rotate(revoked.record.id, -1),
        rejectsWith(Code.INVALID_ARGUMENT, 'graceMs'),
      );
      clock.ms += DAY;
      const forever = await store.create(secret());
      const next = await store.rotate(forever.record.id, 0);
      assert.equal(next.record.expiresAt, undefined, 'a key without expiry is replaced by one without');
      await assert.rejects(
        authenticateApiKey(store, forever.key, new Date(clock.ms)),
        rejectsWith(Code.UNAUTHENTICATED, undefined, 'expired'),
      );
    });

    test('authentication refuses malformed and unknown keys without repeating them', async (t) => {
      const { store, clock } = await withStore(t);
      const { key } = await store.create(secret());
      for (const [text, why] of [
        // The last character changed (the checksum then fails): to another, whatever it was.
        [`${key.slice(0, -1)}${key.endsWith('0') ? '1' : '0'}`, 'malformed'],
        ['Bearer abc', 'malformed'],
        [key.replace('tly_sk_', 'tly_ik_'), 'malformed'],
      ] as const)
        await assert.rejects(authenticateApiKey(store, text, new Date(clock.ms)), (error: AppError) => {
          rejectsWith(Code.UNAUTHENTICATED, undefined, why)(error);
          assert.ok(!error.message.includes(text.slice(7, 30)), error.message);
          return true;
        });
      const other = (await withStore(t)).store;
      const foreign = (await other.create(secret())).key;
      await assert.rejects(authenticateApiKey(store, foreign, new Date(clock.ms)), (error: AppError) => {
        rejectsWith(Code.UNAUTHENTICATED, undefined, 'unknown')(error);
        assert.ok(!error.message.includes(foreign.slice(15)), error.message);
        return true;
      });
    });

    test('last use is written at most once per key per minute, in one statement for all keys', async (t) => {
      const { store, clock, lastUseWrites } = await withStore(t, { flushDelayMs: 60_000 });
      const a = await store.create(secret());
      const b = await store.create(secret());
      for (let i = 0; i < 50; i++) {
        await authenticateApiKey(store, a.key, new Date(clock.ms));
        await authenticateApiKey(store, b.key, new Date(clock.ms));
        clock.ms += 100;
      }
      await store.flush();
      assert.equal(lastUseWrites(), 1);
      assert.deepEqual((await store.get(a.record.id))!.lastUsedAt, new Date(T0));
      assert.deepEqual((await store.get(b.record.id))!.lastUsedAt, new Date(T0));

      clock.ms = T0 + 30_000;
      store.touchLastUsed(a.record.id);
      await store.flush();
      assert.equal(lastUseWrites(), 1, 'within the minute: no write');
      clock.ms = T0 + MINUTE;
      store.touchLastUsed(a.record.id);
      store.touchLastUsed(a.record.id);
      await store.close();
      assert.equal(lastUseWrites(), 2);
      assert.deepEqual((await store.get(a.record.id))!.lastUsedAt, new Date(T0 + MINUTE));
      assert.deepEqual((await store.get(b.record.id))!.lastUsedAt, new Date(T0));
    });

    test('pending last uses are written by the timer', async (t) => {
      const { store, lastUseWrites } = await withStore(t, { flushDelayMs: 20 });
      const a = await store.create(secret());
      store.touchLastUsed(a.record.id);
      for (let i = 0; i < 100 && lastUseWrites() === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(lastUseWrites(), 1);
      await store.flush();
      assert.deepEqual((await store.get(a.record.id))!.lastUsedAt, new Date(T0));
    });
  });
}
