import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  activeSecrets,
  DEFAULT_RETRY_DELAYS_SECONDS,
  type DestinationInput,
  formatDestinationId,
  formatSigningSecret,
  isDestinationId,
  redactHeaders,
  rotateSecrets,
  secretHint,
  signingSecretProblem,
  validateDestination,
  validateSigningSecrets,
} from './destinations.ts';

const webhook = (over: Partial<DestinationInput> = {}): DestinationInput => ({
  name: 'orders hook',
  endpoint: { kind: 'webhook', url: 'https://hooks.example.com/tally' },
  ...over,
});

function faults(input: DestinationInput): string[] {
  const result = validateDestination(input);
  assert.equal(result.ok, false, 'expected the destination to be refused');
  return result.ok ? [] : result.violations.map((v) => v.field);
}

function valid(input: DestinationInput) {
  const result = validateDestination(input);
  assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.violations));
  return result.spec;
}

test('a webhook with only a name and a URL gets every default', () => {
  assert.deepEqual(valid(webhook()), {
    name: 'orders hook',
    enabled: true,
    disabledReason: '',
    endpoint: {
      kind: 'webhook',
      url: 'https://hooks.example.com/tally',
      allowPlainHttp: false,
      headers: {},
      timeoutMs: 10_000,
    },
    filter: { eventTypes: [], targetPrefixes: [], attributes: {} },
    transform: { fields: [] },
    ordering: 'per_user',
    retryDelaysSeconds: [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000],
    rateLimitPerSecond: undefined,
    concurrency: 10,
  });
  assert.deepEqual(DEFAULT_RETRY_DELAYS_SECONDS, [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
});

test('a webhook URL: https, or http only when allowed; no credentials, no fragment', () => {
  const url = (u: string, allowPlainHttp?: boolean) =>
    webhook({
      endpoint: { kind: 'webhook', url: u, ...(allowPlainHttp === undefined ? {} : { allowPlainHttp }) },
    });
  assert.deepEqual(faults(url('http://hooks.example.com/')), ['webhook.url']);
  assert.equal(valid(url('http://127.0.0.1:9000/hook', true)).endpoint.kind, 'webhook');
  assert.deepEqual(faults(url('ftp://hooks.example.com/')), ['webhook.url']);
  assert.deepEqual(faults(url('https://user:pw@hooks.example.com/')), ['webhook.url']);
  assert.deepEqual(faults(url('https://hooks.example.com/#x')), ['webhook.url']);
  assert.deepEqual(faults(url('not a url')), ['webhook.url']);
  assert.deepEqual(faults(url('')), ['webhook.url']);
  assert.deepEqual(faults(url(`https://h.example.com/${'a'.repeat(2048)}`)), ['webhook.url']);
});

test('headers: valid names, lower-cased, none the sender sets, no line breaks in values', () => {
  const spec = valid(
    webhook({ endpoint: { kind: 'webhook', url: 'https://h.example.com', headers: { 'X-Team': 'a' } } }),
  );
  assert.deepEqual(spec.endpoint.kind === 'webhook' && spec.endpoint.headers, { 'x-team': 'a' });
  assert.deepEqual(
    faults(
      webhook({
        endpoint: {
          kind: 'webhook',
          url: 'https://h.example.com',
          headers: {
            'bad name': 'x',
            'Content-Type': 'text/plain',
            'webhook-signature': 'v1,x',
            'X-A': 'ok',
            'x-a': 'again',
            'x-split': 'a\r\nx-evil: 1',
          },
          timeoutMs: 99,
        },
      }),
    ),
    [
      'webhook.headers["bad name"]',
      'webhook.headers["Content-Type"]',
      'webhook.headers["webhook-signature"]',
      'webhook.headers["x-a"]',
      'webhook.headers["x-split"]',
      'webhook.timeout_ms',
    ],
  );
  assert.deepEqual(redactHeaders({ authorization: 'Bearer x', 'x-api-key': 'k', 'x-team': 'a' }), {
    authorization: '***',
    'x-api-key': '***',
    'x-team': 'a',
  });
});

test('a kafka destination: a topic name Kafka accepts, brokers host:port, not a delivery topic here', () => {
  assert.deepEqual(valid({ name: 'k', endpoint: { kind: 'kafka', topic: 'audit.events' } }).endpoint, {
    kind: 'kafka',
    topic: 'audit.events',
    brokers: [],
  });
  assert.deepEqual(
    faults({ name: 'k', endpoint: { kind: 'kafka', topic: 'a b', brokers: ['k1:9092', 'nope', 'k1:9092'] } }),
    ['kafka.topic', 'kafka.brokers[1]', 'kafka.brokers[2]'],
  );
  assert.deepEqual(faults({ name: 'k', endpoint: { kind: 'kafka', topic: 'deliveries.ds_0000000000' } }), [
    'kafka.topic',
  ]);
  assert.ok(
    validateDestination({
      name: 'k',
      endpoint: { kind: 'kafka', topic: 'deliveries.x', brokers: ['other:9092'] },
    }).ok,
    'another cluster may have any topic',
  );
});

test('every field at fault is named at once, as the proto names it', () => {
  assert.deepEqual(
    faults({
      name: ' ',
      enabled: false,
      disabledReason: 'x'.repeat(501),
      filter: { eventTypes: ['ok', '1bad', 'ok'], targetPrefixes: [''], attributes: { '9x': 'v' } },
      transform: { fields: [{ to: 'a', source: { kind: 'field', path: 'nope' } }] },
      ordering: 'random',
      retryDelaysSeconds: [0, -1, 1.5, 86_401],
      rateLimitPerSecond: 0,
      concurrency: 1001,
    }),
    [
      'name',
      'disabled_reason',
      'endpoint',
      'filter.event_types[1]',
      'filter.event_types[2]',
      'filter.target_prefixes[0]',
      'filter.attributes["9x"]',
      'transform.fields[0].from',
      'ordering',
      'retry.delays_seconds[1]',
      'retry.delays_seconds[2]',
      'retry.delays_seconds[3]',
      'rate_limit_per_second',
      'concurrency',
    ],
  );
  assert.deepEqual(faults(webhook({ retryDelaysSeconds: Array(21).fill(1) })), ['retry.delays_seconds']);
});

test('a disabled destination keeps its reason; an enabled one has none', () => {
  const off = valid(webhook({ enabled: false, disabledReason: ' receiver answered 410 ' }));
  assert.equal(off.enabled, false);
  assert.equal(off.disabledReason, 'receiver answered 410');
  assert.equal(valid(webhook({ enabled: true, disabledReason: 'stale' })).disabledReason, '');
});

test('ids: ds_ and 10 base62 characters from 8 random bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (bytes) => {
      assert.ok(isDestinationId(formatDestinationId(bytes)));
    }),
  );
  assert.equal(formatDestinationId(new Uint8Array(8)), 'ds_0000000000');
  assert.throws(() => formatDestinationId(new Uint8Array(7)), RangeError);
  assert.equal(isDestinationId('ar_0000000000'), false);
});

test('signing secrets: whsec_ and base64 of 24 to 64 bytes; made ones pass; hints hide them', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 24, maxLength: 64 }), (bytes) => {
      const secret = formatSigningSecret(bytes);
      assert.equal(signingSecretProblem(secret), undefined);
      assert.equal(Buffer.from(secret.slice(6), 'base64').length, bytes.length);
      assert.ok(!secretHint(secret).includes(secret.slice(11)));
    }),
  );
  assert.ok(signingSecretProblem('whsec_'));
  assert.ok(signingSecretProblem(`whsec_${Buffer.alloc(16).toString('base64')}`), '16 bytes is too short');
  assert.ok(signingSecretProblem(`sk_${Buffer.alloc(32).toString('base64')}`));
  const a = formatSigningSecret(new Uint8Array(32).fill(1));
  assert.deepEqual(
    validateSigningSecrets([a, a, 'x', a], 'signing_secrets').map((v) => v.field),
    ['signing_secrets', 'signing_secrets[1]', 'signing_secrets[2]', 'signing_secrets[3]'],
  );
});

test('rotation: the new secret first, the old ones sign for the grace period, at most 3 at once', () => {
  const s = (n: number) => formatSigningSecret(new Uint8Array(32).fill(n));
  const T = 1_000_000;
  const start = [{ secret: s(1), createdAtMs: 0, expiresAtMs: undefined }];
  const once = rotateSecrets(start, s(2), T, 3600);
  assert.ok(once.ok);
  assert.deepEqual(once.secrets, [
    { secret: s(2), createdAtMs: T, expiresAtMs: undefined },
    { secret: s(1), createdAtMs: 0, expiresAtMs: T + 3_600_000 },
  ]);
  assert.deepEqual(
    activeSecrets(once.secrets, T + 3_600_000).map((x) => x.secret),
    [s(2)],
    'the old one stops at the end of its grace',
  );
  const twice = rotateSecrets(once.secrets, s(3), T + 1000, 86_400);
  assert.ok(twice.ok);
  assert.equal(twice.secrets[2]!.expiresAtMs, T + 3_600_000, 'an earlier expiry is kept');
  const thrice = rotateSecrets(twice.secrets, s(4), T + 2000);
  assert.ok(!thrice.ok && thrice.precondition && thrice.violation.field === 'grace_seconds');
  const now = rotateSecrets(twice.secrets, s(4), T + 2000, 0);
  assert.ok(now.ok);
  assert.deepEqual(
    now.secrets.map((x) => x.secret),
    [s(4)],
    'grace 0 drops the old secrets at once',
  );
  const later = rotateSecrets(twice.secrets, s(4), T + 3_600_000);
  assert.ok(later.ok, 'an expired secret no longer counts');
  assert.equal(later.secrets.length, 3);
  const again = rotateSecrets(start, s(1), T);
  assert.ok(!again.ok && again.violation.field === 'secret');
  const badGrace = rotateSecrets(start, s(2), T, -1);
  assert.ok(!badGrace.ok && !badGrace.precondition && badGrace.violation.field === 'grace_seconds');
});
