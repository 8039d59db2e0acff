/**
 * Test support: the rate limit contract every deployment shape passes (real servers and embedded
 * mode run it alike), on running `tally` processes over REST and gRPC: per-event cost, reads,
 * RetryInfo over gRPC, a key's own limits and monthly quota from its record, the limit per client
 * address with trusted proxies (and with access control off), a limiter whose Redis is down
 * failing open or closed and never answering 500, and several gateways hammering one key together
 * admitting the limit within 1 %.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { newSecretKey } from './access-control.contract.ts';
import { QueryService } from './gen/tally/v1/query_pb.js';
import { AppError, Code, Reason } from './infra/app-error.ts';
import { createGrpcClient } from './infra/grpc/grpc-service.ts';
import { startTally, type TallyProcess } from './testing/tally-process.ts';

const TALLY = join(import.meta.dirname, '..', 'bin', 'tally');

export interface LimitDeployment {
  /** The variables of a fresh, isolated place (a namespace on the servers, or a data directory). */
  place(): Promise<Record<string, string>>;
  /** The roles of one process serving REST and gRPC there. */
  roles: string[];
  /** How many gateway processes may share one place (embedded: 1). */
  gateways: number;
  /** Variables pointing the limiter at a Redis that cannot be reached, for the failure tests. */
  unreachableRedis(): Promise<Record<string, string>>;
}

/** REST answer: status, JSON body, headers. */
export interface Answer {
  status: number;
  json: { error?: { status?: string; message?: string; details?: Record<string, unknown>[] } } & Record<
    string,
    unknown
  >;
  headers: Headers;
}

let nextAddress = 1;
/** A client address of the documentation range, different for each call (so no two tests share one). */
export function someAddress(): string {
  const n = nextAddress++;
  return `198.18.${(n >> 8) & 255}.${n & 255}`;
}

export async function call(
  port: number,
  method: string,
  path: string,
  options: { body?: unknown; key?: string; forwardedFor?: string | null } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  const forwardedFor = options.forwardedFor === undefined ? someAddress() : options.forwardedFor;
  if (forwardedFor !== null) headers['x-forwarded-for'] = forwardedFor;
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let json = {};
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: response.status, json, headers: response.headers };
}

/** The ErrorInfo reason of a REST error. */
export function reasonOf(answer: Answer): string | undefined {
  return answer.json.error?.details?.find((d) => typeof d.reason === 'string')?.reason as string | undefined;
}

/** Events of a batch. */
export function events(n: number, target = 'limits/1'): { events: { type: string; target: string }[] } {
  return { events: Array.from({ length: n }, () => ({ type: 'like', target })) };
}

/** A key made with `tally keys create` in `place` (before a process holds an embedded database). */
export async function createKey(
  place: Record<string, string>,
  args: string[],
): Promise<{ key: string; id: string }> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_')));
  const { stdout } = await promisify(execFile)(
    TALLY,
    ['keys', 'create', '--name', 'limits', '--scopes', 'ingest,read', ...args],
    { env: { ...inherited, ...place } },
  );
  const key = /tly_sk_[0-9A-Za-z]{49}/.exec(stdout)?.[0];
  assert.ok(key, stdout);
  return { key, id: key.slice(7, 15) };
}

/** Asserts a 429 of a rate limit with its fields: Retry-After and well-formed RateLimit fields naming `policy`. */
export function assertLimited(answer: Answer, policy: string, limit: number): void {
  assert.equal(answer.status, 429, JSON.stringify(answer.json));
  assert.equal(reasonOf(answer), Reason.RATE_LIMITED);
  const retryAfter = Number(answer.headers.get('retry-after'));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  const policies = answer.headers.get('ratelimit-policy') ?? '';
  assert.match(policies, new RegExp(`(^|, )"${policy}";q=${limit};w=60($|, )`), policies);
  const current = answer.headers.get('ratelimit') ?? '';
  const item = new RegExp(`(^|, )"${policy}";r=(\\d+);t=(\\d+)($|, )`).exec(current);
  assert.ok(item, current);
  assert.ok(Number(item[3]) >= 1 && Number(item[3]) <= retryAfter, `${current} vs Retry-After ${retryAfter}`);
  const quota = answer.json.error?.details?.find((d) =>
    String(d['@type']).endsWith('google.rpc.QuotaFailure'),
  );
  assert.ok(quota, 'a QuotaFailure detail');
  const retry = answer.json.error?.details?.find((d) => String(d['@type']).endsWith('google.rpc.RetryInfo'));
  assert.ok(retry, 'a RetryInfo detail');
}

/** The sum of a counter's samples (with `labels` in them) on a process's /metrics. */
export async function metricSum(port: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (
      line.startsWith(name) &&
      (line[name.length] === '{' || line[name.length] === ' ') &&
      line.includes(labels)
    )
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

export function rateLimitContract(deployment: string, d: LimitDeployment): void {
  describe(`rate limit contract: ${deployment}`, () => {
    const processes: TallyProcess[] = [];
    after(async () => {
      await Promise.all(processes.map((p) => p.kill('SIGTERM')));
    });
    const start = async (env: Record<string, string>, roles = d.roles) => {
      const tally = await startTally(roles, env, 90_000, { untilServing: true });
      processes.push(tally);
      return tally;
    };

    test('per credential: events cost one each, reads one each; a key’s own limits and quota; gRPC RESOURCE_EXHAUSTED with RetryInfo; per address behind a trusted proxy', async () => {
      const place = await d.place();
      const plain = await createKey(place, []);
      const own = await createKey(place, ['--ingest-rate', '5', '--read-rate', '3']);
      const quota = await createKey(place, ['--quota', '10']);
      const fresh = await createKey(place, []);
      const byAddress = await createKey(place, []);
      const adminKey = newSecretKey();
      const tally = await start({
        ...place,
        TALLY_AUTH: 'on',
        TALLY_BOOTSTRAP_ADMIN_KEY: adminKey,
        TALLY_MAX_BATCH_EVENTS: '2000',
        TALLY_RATE_LIMIT_INGEST_PER_MIN: '1000',
        TALLY_RATE_LIMIT_READ_PER_MIN: '4',
        TALLY_RATE_LIMIT_IP_PER_MIN: '30',
        TALLY_TRUSTED_PROXIES: '127.0.0.1/32, ::1',
      });
      const port = tally.httpPort!;

      // A batch of 500 costs 500: two pass, the third is refused, and names the limit.
      for (const i of [1, 2]) {
        const ok = await call(port, 'POST', '/v1/events:batch', { body: events(500), key: plain.key });
        assert.equal(ok.status, 200, `batch ${i}: ${JSON.stringify(ok.json)}`);
      }
      const third = await call(port, 'POST', '/v1/events:batch', { body: events(500), key: plain.key });
      assertLimited(third, 'ingest', 1000);
      assert.match(third.json.error!.message!, /ingest, 1000 events per minute/);
      // More than the whole burst never passes: no Retry-After, and a message saying so.
      const huge = await call(port, 'POST', '/v1/events:batch', {
        body: events(1001),
        key: fresh.key,
      });
      assert.equal(huge.status, 429);
      assert.equal(reasonOf(huge), Reason.COST_EXCEEDS_LIMIT);
      assert.equal(huge.headers.get('retry-after'), null);
      assert.match(
        huge.json.error!.message!,
        /costs 1001 events, more than the ingest limit of 1000 events per minute/,
      );

      // Reads: 4 a minute for this key, over REST and gRPC alike; gRPC says when to retry.
      const grpc = createGrpcClient(QueryService, `127.0.0.1:${tally.grpcPort}`);
      try {
        const metadata = { authorization: `Bearer ${plain.key}` };
        for (let i = 0; i < 2; i++)
          assert.equal(
            (await call(port, 'GET', '/v1/counters?target=limits/1', { key: plain.key })).status,
            200,
          );
        for (let i = 0; i < 2; i++) await grpc.getCounters({ target: 'limits/1' }, { metadata });
        const refused = await grpc.getCounters({ target: 'limits/1' }, { metadata }).then(
          () => assert.fail('admitted past the read limit'),
          (error: unknown) => error as AppError,
        );
        assert.ok(refused instanceof AppError, String(refused));
        assert.equal(refused.code, Code.RESOURCE_EXHAUSTED);
        assert.equal(refused.reason, Reason.RATE_LIMITED);
        assert.ok(refused.retryable, 'RetryInfo sent');
        assert.ok(refused.retryAfterMs! > 0 && refused.retryAfterMs! <= 15_000, `${refused.retryAfterMs}`);
        assert.deepEqual(refused.quotaViolations, [
          { subject: `api_key:${plain.id}`, description: 'read: 4 reads per minute' },
        ]);
        assertLimited(await call(port, 'GET', '/v1/counters?target=limits/1', { key: plain.key }), 'read', 4);
      } finally {
        grpc.close();
      }

      // A key's own limits, from its record: 5 events and 3 reads a minute.
      assert.equal(
        (await call(port, 'POST', '/v1/events:batch', { body: events(5), key: own.key })).status,
        200,
      );
      assertLimited(
        await call(port, 'POST', '/v1/events', { body: events(1).events[0], key: own.key }),
        'ingest',
        5,
      );
      for (let i = 0; i < 3; i++)
        assert.equal((await call(port, 'GET', '/v1/counters?target=limits/1', { key: own.key })).status, 200);
      assertLimited(await call(port, 'GET', '/v1/counters?target=limits/1', { key: own.key }), 'read', 3);

      // The same limits given through the admin API (POST /v1/keys), shown by listings and WhoAmI,
      // and a stream's subscriptions count against the key's own read limit: 2 a minute, not 4.
      const made = await call(port, 'POST', '/v1/keys', {
        body: { name: 'stream limits', scopes: ['read'], readsPerMinute: '2', ingestEventsPerMinute: '7' },
        key: adminKey,
      });
      assert.equal(made.status, 200, JSON.stringify(made.json));
      const streamKey = (made.json as { key: string }).key;
      const record = (made.json as { record: Record<string, unknown> }).record;
      assert.equal(record.readsPerMinute, '2');
      assert.equal(record.ingestEventsPerMinute, '7');
      assert.equal(record.monthlyQuota, undefined);
      const zero = await call(port, 'POST', '/v1/keys', {
        body: { name: 'zero', scopes: ['read'], readsPerMinute: '0' },
        key: adminKey,
      });
      assert.equal(zero.status, 400);
      assert.match(JSON.stringify(zero.json), /reads_per_minute/);
      const me = await call(port, 'GET', '/v1/whoami', { key: streamKey });
      assert.equal(me.status, 200, JSON.stringify(me.json));
      assert.equal((me.json as { readsPerMinute?: string }).readsPerMinute, '2');
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream`, ['tally.v1', `bearer.${streamKey}`]);
      const messages: Record<string, unknown>[] = [];
      ws.on('message', (data) => messages.push(JSON.parse(String(data))));
      await once(ws, 'open');
      for (let id = 1; id <= 3; id++)
        ws.send(JSON.stringify({ op: 'subscribe', channel: 'counters', targets: [`limits/ws${id}`], id }));
      const until = Date.now() + 5_000;
      while (!messages.some((m) => m.channel === 'error') && Date.now() < until)
        await new Promise((r) => setTimeout(r, 20));
      const refusal = messages.find((m) => m.channel === 'error');
      assert.ok(refusal, JSON.stringify(messages));
      assert.equal(refusal.id, 3, JSON.stringify(messages));
      assert.equal(refusal.reason, Reason.RATE_LIMITED);
      assert.match(String(refusal.message), /2 reads per minute/);
      ws.close();

      // A monthly quota of 10 events: 6, then 5 is refused (nothing counted), then 4, then nothing.
      assert.equal(
        (await call(port, 'POST', '/v1/events:batch', { body: events(6), key: quota.key })).status,
        200,
      );
      const over = await call(port, 'POST', '/v1/events:batch', { body: events(5), key: quota.key });
      assert.equal(over.status, 429);
      assert.equal(reasonOf(over), Reason.QUOTA_EXCEEDED);
      const untilMonthEnd = Number(over.headers.get('retry-after'));
      const now = new Date();
      const monthEnd = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
      assert.ok(
        Math.abs(untilMonthEnd - (monthEnd - Date.now()) / 1000) < 60,
        `Retry-After ${untilMonthEnd}`,
      );
      assert.equal(
        (await call(port, 'POST', '/v1/events:batch', { body: events(4), key: quota.key })).status,
        200,
      );
      assert.equal(
        reasonOf(await call(port, 'POST', '/v1/events', { body: events(1).events[0], key: quota.key })),
        Reason.QUOTA_EXCEEDED,
      );

      // Per address: the proxy (loopback) is trusted, so the client is the rightmost untrusted
      // hop; what the client wrote left of it changes nothing.
      for (let i = 0; i < 30; i++) {
        const ok = await call(port, 'POST', '/v1/events', {
          body: events(1).events[0],
          key: byAddress.key,
          forwardedFor: `203.0.113.${i}, 198.51.100.50`,
        });
        assert.equal(ok.status, 200, `request ${i}: ${JSON.stringify(ok.json)}`);
      }
      assertLimited(
        await call(port, 'POST', '/v1/events', {
          body: events(1).events[0],
          key: byAddress.key,
          forwardedFor: '203.0.113.200, 198.51.100.50',
        }),
        'ip',
        30,
      );
      const other = await call(port, 'POST', '/v1/events', {
        body: events(1).events[0],
        key: byAddress.key,
        forwardedFor: '198.51.100.51',
      });
      assert.equal(other.status, 200);

      // Every refusal counted by limit.
      for (const limit of ['ingest', 'read', 'monthly', 'ip'])
        assert.ok(
          (await metricSum(port, 'tally_rate_limited_total', `limit="${limit}"`)) >= 1,
          `tally_rate_limited_total{limit="${limit}"}`,
        );
      assert.equal(await metricSum(port, 'tally_rate_limit_backend_errors_total'), 0);
    });

    test('with access control off, the limit per address still applies, and an X-Forwarded-For from an untrusted peer is ignored', async () => {
      const tally = await start({
        ...(await d.place()),
        TALLY_AUTH: 'off',
        TALLY_RATE_LIMIT_IP_PER_MIN: '5',
      });
      const port = tally.httpPort!;
      // Every request comes from loopback, which is not a trusted proxy here: one address, whatever the header says.
      for (let i = 0; i < 3; i++)
        assert.equal((await call(port, 'POST', '/v1/events', { body: events(1).events[0] })).status, 200);
      for (let i = 0; i < 2; i++)
        assert.equal((await call(port, 'GET', '/v1/counters?target=limits/1')).status, 200);
      assertLimited(await call(port, 'POST', '/v1/events', { body: events(1).events[0] }), 'ip', 5);
      assertLimited(await call(port, 'GET', '/v1/counters?target=limits/1', { forwardedFor: null }), 'ip', 5);
      // A client cannot pass for a gateway reading for its stream (tally-requests 0): loopback is
      // no trusted proxy here, so the read is charged, and refused.
      const grpc = createGrpcClient(QueryService, `127.0.0.1:${tally.grpcPort}`);
      try {
        const spoofed = await grpc
          .getCounters({ target: 'limits/1' }, { metadata: { 'tally-requests': '0' } })
          .then(
            () => undefined,
            (error: unknown) => error,
          );
        assert.ok(spoofed instanceof AppError, 'a read claiming to carry no request was admitted');
        assert.equal(spoofed.code, Code.RESOURCE_EXHAUSTED);
      } finally {
        grpc.close();
      }

      // A stream subscription is a read: answered with an error, and the socket stays open.
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream`);
      const messages: Record<string, unknown>[] = [];
      ws.on('message', (data) => messages.push(JSON.parse(String(data))));
      await once(ws, 'open');
      ws.send(JSON.stringify({ op: 'subscribe', channel: 'counters', targets: ['limits/1'], id: 7 }));
      const deadline = Date.now() + 5_000;
      while (!messages.some((m) => m.channel === 'error') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const error = messages.find((m) => m.channel === 'error');
      assert.ok(error, JSON.stringify(messages));
      assert.equal(error.code, 'RESOURCE_EXHAUSTED');
      assert.equal(error.reason, Reason.RATE_LIMITED);
      assert.equal(error.id, 7);
      assert.ok(Number(error.retryAfterMs) > 0);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(ws.readyState, WebSocket.OPEN, 'the socket stays open');
      ws.close();
    });

    test('Redis out of reach: failing open admits (counted, logged), failing closed refuses with 429; never a 500', async () => {
      const unreachable = await d.unreachableRedis();
      const [open, closed] = await Promise.all([
        start({ ...(await d.place()), ...unreachable, TALLY_AUTH: 'off', TALLY_RATE_LIMIT_IP_PER_MIN: '5' }),
        start({
          ...(await d.place()),
          ...unreachable,
          TALLY_AUTH: 'off',
          TALLY_RATE_LIMIT_IP_PER_MIN: '5',
          TALLY_RATE_LIMIT_FAILURE: 'closed',
        }),
      ]);
      for (let i = 0; i < 10; i++) {
        assert.equal(
          (await call(open.httpPort!, 'POST', '/v1/events', { body: events(1).events[0] })).status,
          200,
        );
        assert.equal((await call(open.httpPort!, 'GET', '/v1/counters?target=limits/1')).status, 200);
      }
      assert.ok((await metricSum(open.httpPort!, 'tally_rate_limit_backend_errors_total')) >= 20);
      assert.equal(await metricSum(open.httpPort!, 'tally_rate_limited_total'), 0);
      assert.ok(open.lines.some((l) => l.includes('rate limit backend failed: admitting without limits')));

      for (const [method, path, body] of [
        ['POST', '/v1/events', events(1).events[0]],
        ['POST', '/v1/events:batch', events(3)],
        ['GET', '/v1/counters?target=limits/1', undefined],
        ['GET', '/v1/top?types=like', undefined],
      ] as const) {
        const refused = await call(closed.httpPort!, method, path, { body });
        assert.equal(refused.status, 429, `${method} ${path}: ${JSON.stringify(refused.json)}`);
        assert.equal(reasonOf(refused), Reason.LIMITS_UNAVAILABLE);
        assert.equal(refused.headers.get('retry-after'), '5');
        assert.equal(refused.headers.get('ratelimit'), null);
      }
      assert.ok((await metricSum(closed.httpPort!, 'tally_rate_limit_backend_errors_total')) >= 4);
      assert.ok((await metricSum(closed.httpPort!, 'tally_rate_limited_total', 'limit="ip"')) >= 4);
      assert.ok(closed.lines.some((l) => l.includes('rate limit backend failed: refusing')));
    });

    test(`${d.gateways} gateway process(es) hammering one key admit the limit within 1 %, the rest 429 with Retry-After`, async () => {
      const place = await d.place();
      const { key } = await createKey(place, []);
      const env = {
        ...place,
        TALLY_AUTH: 'on',
        TALLY_BOOTSTRAP_ADMIN_KEY: newSecretKey(),
        TALLY_RATE_LIMIT_INGEST_PER_MIN: '1000',
      };
      const gateways = await Promise.all(
        Array.from({ length: d.gateways }, async () => (await start(env)).httpPort!),
      );
      // Connected, and the limiter's script known: the run measures checks, not set-up.
      for (const port of gateways) await call(port, 'GET', '/v1/whoami', { key });
      const attempts = 3000;
      const concurrency = 32;
      const answers: Answer[] = [];
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async (_, worker) => {
          const port = gateways[worker % gateways.length]!;
          while (next < attempts) {
            next++;
            answers.push(
              await call(port, 'POST', '/v1/events', { body: { type: 'like', target: 'hammer' }, key }),
            );
          }
        }),
      );
      const elapsedMs = performance.now() - started;
      const admitted = answers.filter((a) => a.status === 200).length;
      const refused = answers.filter((a) => a.status !== 200);
      // The full bucket, plus a unit per 60 ms the run lasted (GCRA refills continuously).
      const allowance = 1000 + elapsedMs / 60;
      assert.ok(
        Math.abs(admitted - allowance) <= allowance / 100,
        `${admitted} admitted in ${Math.round(elapsedMs)} ms: not within 1 % of ${Math.round(allowance)}`,
      );
      assert.ok(admitted <= allowance + 1, `${admitted} admitted, more than ${allowance}`);
      assert.equal(refused.length, attempts - admitted);
      for (const answer of refused) assertLimited(answer, 'ingest', 1000);
    });
  });
}
