/**
 * The destination store contract, run on each SQL adapter (PostgreSQL, PGlite): the same
 * destinations, defaults, secrets, errors and change feed. `environment()` gives a migrated
 * database in a fresh schema.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_RETRY_DELAYS_SECONDS,
  type DestinationInput,
  formatSigningSecret,
  signingSecretProblem,
} from '../../domain/destinations.ts';
import { type AppError, Code } from '../app-error.ts';
import type { SqlDatabase } from '../sql/sql-database.ts';
import { createSqlDestinationStore, type SqlDestinationStoreOptions } from './sql-destination-store.ts';

export interface DestinationStoreEnvironment {
  /** Migrated. */
  sql: SqlDatabase;
  cleanup(): Promise<void>;
}

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

export const webhook = (name = 'orders hook'): DestinationInput => ({
  name,
  endpoint: {
    kind: 'webhook',
    url: 'https://hooks.example.com/tally',
    headers: { 'X-Team': 'shop' },
  },
  filter: { eventTypes: ['purchase'], targetPrefixes: ['shop/'], attributes: { plan: 'pro' } },
  transform: {
    fields: [
      { to: 'data.user', source: { kind: 'field', path: 'user_id' } },
      { to: 'text', source: { kind: 'template', template: '{{user_id}} bought {{target}}' } },
      { to: 'meta', source: { kind: 'constant', value: { v: 2 } } },
    ],
  },
});

const kafka = (name = 'audit copy'): DestinationInput => ({
  name,
  endpoint: { kind: 'kafka', topic: 'audit.events', brokers: ['audit-kafka:9092'] },
  ordering: 'none',
  retryDelaysSeconds: [0, 1, 10],
  rateLimitPerSecond: 500,
  concurrency: 4,
});

const secret = (n: number) => formatSigningSecret(new Uint8Array(32).fill(n));

function rejectsWith(code: number, field?: string) {
  return (error: AppError) => {
    assert.equal(error.code, code, error.message);
    if (field !== undefined) assert.equal(error.field, field, error.message);
    return true;
  };
}

export function destinationStoreContract(
  adapter: string,
  environment: () => Promise<DestinationStoreEnvironment>,
): void {
  describe(`destination store contract: ${adapter}`, () => {
    const withStore = async (
      t: { after(fn: () => Promise<void>): void },
      options: Partial<SqlDestinationStoreOptions> = {},
    ) => {
      const env = await environment();
      const clock = { ms: T0 };
      const store = createSqlDestinationStore({ sql: env.sql, now: () => new Date(clock.ms), ...options });
      t.after(() => env.cleanup());
      return { store, clock, sql: env.sql };
    };

    test('a new webhook gets an id, its defaults, a secret made for it and a revision; reads back the same', async (t) => {
      const { store } = await withStore(t);
      const made = await store.create(webhook());
      assert.match(made.id, /^ds_[0-9A-Za-z]{10}$/);
      assert.equal(made.signingSecrets.length, 1);
      assert.equal(signingSecretProblem(made.signingSecrets[0]!.secret), undefined);
      assert.deepEqual(made, {
        id: made.id,
        name: 'orders hook',
        enabled: true,
        disabledReason: '',
        endpoint: {
          kind: 'webhook',
          url: 'https://hooks.example.com/tally',
          allowPlainHttp: false,
          headers: { 'x-team': 'shop' },
          timeoutMs: 10_000,
        },
        filter: { eventTypes: ['purchase'], targetPrefixes: ['shop/'], attributes: { plan: 'pro' } },
        transform: webhook().transform,
        ordering: 'per_user',
        retryDelaysSeconds: [...DEFAULT_RETRY_DELAYS_SECONDS],
        rateLimitPerSecond: undefined,
        concurrency: 10,
        signingSecrets: [{ secret: made.signingSecrets[0]!.secret, createdAtMs: T0, expiresAtMs: undefined }],
        createdAt: new Date(T0),
        updatedAt: new Date(T0),
        revision: 1,
      });
      assert.deepEqual(await store.get(made.id), made);
      assert.equal(await store.get('ds_0000000000'), undefined);
      assert.equal(await store.get('not an id'), undefined);
    });

    test('a kafka destination keeps its settings and has no secrets; given secrets are kept as given', async (t) => {
      const { store, clock } = await withStore(t);
      const k = await store.create(kafka());
      clock.ms += MINUTE;
      assert.deepEqual(
        {
          endpoint: k.endpoint,
          ordering: k.ordering,
          retry: k.retryDelaysSeconds,
          rate: k.rateLimitPerSecond,
          concurrency: k.concurrency,
          secrets: k.signingSecrets,
        },
        {
          endpoint: { kind: 'kafka', topic: 'audit.events', brokers: ['audit-kafka:9092'] },
          ordering: 'none',
          retry: [0, 1, 10],
          rate: 500,
          concurrency: 4,
          secrets: [],
        },
      );
      const w = await store.create(webhook('two secrets'), [secret(1), secret(2)]);
      assert.deepEqual(
        w.signingSecrets.map((s) => s.secret),
        [secret(1), secret(2)],
      );
      assert.deepEqual(await store.list(), [k, w]);
    });

    test('an invalid destination is refused with every field at fault, and nothing is stored', async (t) => {
      const { store } = await withStore(t);
      await assert.rejects(
        store.create(
          { ...webhook(), endpoint: { kind: 'webhook', url: 'http://plain.example.com' }, concurrency: 0 },
          ['nope'],
        ),
        (error: AppError) => {
          rejectsWith(Code.INVALID_ARGUMENT, 'webhook.url')(error);
          assert.deepEqual(
            error.fieldViolations.map((v) => v.field),
            ['webhook.url', 'concurrency', 'signing_secrets[0]'],
          );
          return true;
        },
      );
      await assert.rejects(
        store.create(kafka(), [secret(1)]),
        rejectsWith(Code.INVALID_ARGUMENT, 'signing_secrets'),
      );
      await assert.rejects(store.create({ name: 'x' }), rejectsWith(Code.INVALID_ARGUMENT, 'endpoint'));
      assert.deepEqual(await store.list(), []);
      assert.equal(await store.revision(), 0, 'a refused write takes no revision');
    });

    test('update replaces the fields and keeps id, kind, secrets, creation and (unless given) the state', async (t) => {
      const { store, clock } = await withStore(t);
      const made = await store.create(webhook());
      clock.ms += MINUTE;
      const off = await store.update(made.id, {
        ...webhook('renamed'),
        enabled: false,
        disabledReason: 'paused',
      });
      assert.equal(off.enabled, false);
      assert.equal(off.disabledReason, 'paused');
      assert.equal(off.name, 'renamed');
      assert.deepEqual(off.signingSecrets, made.signingSecrets);
      assert.deepEqual(off.createdAt, new Date(T0));
      assert.deepEqual(off.updatedAt, new Date(T0 + MINUTE));
      assert.ok(off.revision > made.revision);
      const plain = await store.update(made.id, {
        name: 'plain',
        endpoint: { kind: 'webhook', url: 'https://x.example.com' },
      });
      assert.equal(plain.enabled, false, 'enabled absent: the state is kept');
      assert.equal(plain.disabledReason, 'paused', 'and its reason');
      assert.deepEqual(plain.filter, { eventTypes: [], targetPrefixes: [], attributes: {} });
      assert.deepEqual(await store.get(made.id), plain);
      const on = await store.update(made.id, { ...webhook(), enabled: true });
      assert.equal(on.disabledReason, '');
      await assert.rejects(store.update(made.id, kafka()), rejectsWith(Code.INVALID_ARGUMENT, 'endpoint'));
      await assert.rejects(
        store.update(made.id, { ...webhook(), ordering: 'fifo' }),
        rejectsWith(Code.INVALID_ARGUMENT, 'ordering'),
      );
      await assert.rejects(store.update('ds_0000000000', webhook()), rejectsWith(Code.NOT_FOUND, 'id'));
    });

    test('update with an expected revision refuses a destination changed since', async (t) => {
      const { store } = await withStore(t);
      const made = await store.create(webhook());
      const next = await store.update(made.id, webhook('a'), made.revision);
      await assert.rejects(
        store.update(made.id, webhook('b'), made.revision),
        rejectsWith(Code.ABORTED, 'expected_revision'),
      );
      assert.equal((await store.get(made.id))!.name, 'a');
      await store.update(made.id, webhook('c'), next.revision);
    });

    test('rotating a secret: the new one first, the old one signs until the grace ends; limits', async (t) => {
      const { store, clock } = await withStore(t);
      const made = await store.create(webhook(), [secret(1)]);
      clock.ms += MINUTE;
      const rotated = await store.rotateSecret(made.id, { secret: secret(2), graceSeconds: 3600 });
      assert.deepEqual(rotated.signingSecrets, [
        { secret: secret(2), createdAtMs: T0 + MINUTE, expiresAtMs: undefined },
        { secret: secret(1), createdAtMs: T0, expiresAtMs: T0 + MINUTE + 3_600_000 },
      ]);
      assert.ok(rotated.revision > made.revision, 'a rotation is a change the senders follow');
      const third = await store.rotateSecret(made.id);
      assert.equal(third.signingSecrets.length, 3);
      assert.equal(signingSecretProblem(third.signingSecrets[0]!.secret), undefined, 'made by the store');
      await assert.rejects(
        store.rotateSecret(made.id, { secret: secret(4) }),
        rejectsWith(Code.FAILED_PRECONDITION, 'grace_seconds'),
      );
      const only = await store.rotateSecret(made.id, { secret: secret(4), graceSeconds: 0 });
      assert.deepEqual(
        only.signingSecrets.map((s) => s.secret),
        [secret(4)],
      );
      await assert.rejects(
        store.rotateSecret(made.id, { secret: 'whsec_x' }),
        rejectsWith(Code.INVALID_ARGUMENT, 'secret'),
      );
      await assert.rejects(
        store.rotateSecret(made.id, { graceSeconds: -1 }),
        rejectsWith(Code.INVALID_ARGUMENT, 'grace_seconds'),
      );
      const k = await store.create(kafka());
      await assert.rejects(store.rotateSecret(k.id), rejectsWith(Code.FAILED_PRECONDITION, 'id'));
      await assert.rejects(store.rotateSecret('ds_0000000000'), rejectsWith(Code.NOT_FOUND, 'id'));
    });

    test('delete removes the destination and erases its secrets; again, or unknown, is NOT_FOUND', async (t) => {
      const { store, sql } = await withStore(t);
      const a = await store.create(webhook('a'));
      const b = await store.create(webhook('b'));
      const gone = await store.delete(a.id);
      assert.equal(gone.id, a.id);
      assert.equal(await store.get(a.id), undefined);
      assert.deepEqual(await store.list(), [b]);
      const [row] = await sql.query<{ n: number }>(
        'SELECT jsonb_array_length(signing_secrets) AS n FROM destination WHERE id = $1',
        [a.id],
      );
      assert.equal(Number(row!.n), 0, 'the tombstone holds no secret');
      await assert.rejects(store.delete(a.id), rejectsWith(Code.NOT_FOUND, 'id'));
      await assert.rejects(store.update(a.id, webhook()), rejectsWith(Code.NOT_FOUND, 'id'));
      await assert.rejects(store.rotateSecret(a.id), rejectsWith(Code.NOT_FOUND, 'id'));
      await assert.rejects(store.delete('ds_0000000000'), rejectsWith(Code.NOT_FOUND, 'id'));
    });

    test('a reader follows every change by revision: creates, updates, rotations, disables and deletes', async (t) => {
      const { store } = await withStore(t);
      assert.deepEqual(await store.loadEnabled(), { revision: 0, destinations: [] });
      const a = await store.create(webhook('a'));
      const b = await store.create({ ...kafka('b'), enabled: false });
      const snapshot = await store.loadEnabled();
      assert.deepEqual(snapshot, { revision: 2, destinations: [a] }, 'enabled destinations only');
      assert.equal(await store.revision(), 2);
      assert.deepEqual(await store.changesSince(2), { revision: 2, changed: [], deleted: [] });

      const c = await store.create(webhook('c'));
      const a2 = await store.update(a.id, { ...webhook('a2'), enabled: false });
      const c2 = await store.rotateSecret(c.id);
      await store.delete(b.id);
      assert.equal(await store.revision(), 6);
      const changes = await store.changesSince(snapshot.revision);
      assert.deepEqual(changes, { revision: 6, changed: [a2, c2], deleted: [b.id] });
      assert.deepEqual(await store.changesSince(0), { revision: 6, changed: [a2, c2], deleted: [b.id] });
      assert.deepEqual(await store.loadEnabled(), { revision: 6, destinations: [c2] });
      await assert.rejects(store.changesSince(-1), rejectsWith(Code.INVALID_ARGUMENT, 'revision'));
    });

    test('concurrent writes take distinct revisions, all reported once', async (t) => {
      const { store } = await withStore(t);
      const made = await Promise.all(Array.from({ length: 12 }, (_, i) => store.create(webhook(`d${i}`))));
      assert.equal(new Set(made.map((d) => d.id)).size, 12);
      assert.deepEqual(
        made.map((d) => d.revision).sort((x, y) => x - y),
        Array.from({ length: 12 }, (_, i) => i + 1),
      );
      await Promise.all(made.map((d, i) => (i % 2 ? store.delete(d.id) : store.update(d.id, webhook('u')))));
      const changes = await store.changesSince(12);
      assert.equal(changes.revision, 24);
      assert.equal(changes.changed.length + changes.deleted.length, 12);
    });

    test('an id already taken makes the store draw another', async (t) => {
      const same = new Uint8Array(8).fill(7);
      const draws = [same, same, new Uint8Array(8).fill(9)];
      const { store, clock } = await withStore(t, {
        random: (n) => (n === 8 ? (draws.shift() ?? new Uint8Array(8).fill(1)) : new Uint8Array(n).fill(3)),
      });
      const a = await store.create(webhook('a'));
      clock.ms += MINUTE;
      const b = await store.create(webhook('b'));
      assert.notEqual(a.id, b.id);
      assert.equal(draws.length, 0, 'the colliding draw was used and replaced');
      assert.deepEqual(await store.list(), [a, b]);
    });
  });
}
