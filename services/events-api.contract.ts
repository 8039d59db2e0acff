/**
 * Test support: the event log API's contract (docs/events-api.md), run on the real PostgreSQL
 * (events-api.integration.test.ts) and on PGlite (events-api-embedded.test.ts). The query role's
 * EventLogService on a gRPC server and the gateway in front of it, over one migrated database;
 * events are stored by the persister's own insert (`persistBatches`), which also signals them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, type TestContext, test } from 'node:test';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { type GatewayDeps, start as startGateway } from './gateway/gateway.ts';
import { EventLogService } from './gen/tally/v1/event_log_pb.js';
import { type AppError, Code } from './infra/app-error.ts';
import { createAppendWaits } from './infra/events/event-appends.ts';
import { GrpcRegistry } from './infra/grpc/grpc-registry.ts';
import { createGrpcClient, type ServiceClient } from './infra/grpc/grpc-service.ts';
import type { ConsumedRecord } from './infra/log/event-log.ts';
import { createLogger } from './infra/logger.ts';
import { persistBatches } from './persister/persister.ts';
import { encodeEvent, newEvent } from './pipeline/event-codec.ts';
import type { EventBatch } from './pipeline/event-consumer.ts';
import { registerEventLogService } from './query/event-log-service.ts';
import type { MigratedSql } from './testing/migrated-sql.ts';

/** Events may arrive up to a minute late here: a range whose `to` is older is closed. */
const LATENESS_MS = 60_000;

interface Spec {
  user: string;
  target?: string;
  type?: string;
  atMs: number;
  id?: string;
}

interface HalEvent {
  id: string;
  type: string;
  target: string;
  userId: string;
  occurredAt: string;
  _links: Record<string, { href: string; templated?: boolean }>;
}

interface HalPage {
  _links: Record<string, { href: string; templated?: boolean }>;
  _embedded: { events: HalEvent[] };
  closed: boolean;
  estimatedTotal?: string;
  error?: { field?: string; status?: string };
}

interface Answer {
  status: number;
  headers: Headers;
  body: HalPage;
  ms: number;
}

interface Rig {
  /** Stores events as the persister does; resolves once committed and signalled. */
  append(specs: Spec[]): Promise<string[]>;
  get(path: string, headers?: Record<string, string>): Promise<Answer>;
  grpc: ServiceClient<(typeof EventLogService)['method']>;
}

async function rig(t: TestContext, makeSql: () => Promise<MigratedSql>): Promise<Rig> {
  const { sql, cleanup } = await makeSql();
  const logger = createLogger('error');
  const appends = createAppendWaits(sql, logger);
  await appends.listening;
  const registry = new GrpcRegistry(logger);
  registerEventLogService(
    { sql, appends, grpc: registry, logger },
    { maxLatenessMs: LATENESS_MS, settleMs: 0, maxUserIdChars: 128, maxTargetChars: 2048, maxTypeChars: 64 },
  );
  const server = await registry.listen({ host: '127.0.0.1', port: 0, maxMessageBytes: 4 * 1024 * 1024 });
  const grpc = createGrpcClient(EventLogService, `127.0.0.1:${server.port}`, { defaultTimeoutMs: 30_000 });
  const unused = {} as unknown as ServiceClient<never>;
  const gateway = await startGateway({ ingest: unused, query: unused, events: grpc, logger } as GatewayDeps, {
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1024 * 1024,
    requestTimeoutMs: 10_000,
    drainTimeoutMs: 1_000,
  });
  t.after(async () => {
    await gateway.stop();
    grpc.close();
    await server.shutdown(1_000);
    await appends.stop();
    await cleanup();
  });
  let offset = 0n;
  return {
    async append(specs) {
      const events = specs.map((s) => {
        const event = newEvent({
          id: s.id ?? randomUUID(),
          type: s.type ?? 'like',
          target: s.target ?? 'post/1',
          userId: s.user,
          occurredAt: timestampFromMs(s.atMs),
          receivedAt: timestampFromMs(Date.now()),
        });
        offset++;
        const record: ConsumedRecord = {
          key: s.user,
          value: encodeEvent(event),
          headers: {},
          offset,
          timestampMs: 0,
        };
        return { event, partition: 0, offset, position: offset, record };
      });
      const batch: EventBatch = { topic: 'events', partition: 0, lastOffset: offset, events };
      await persistBatches(sql, [batch]);
      return events.map((e) => e.event.id);
    },
    async get(path, headers = {}) {
      const started = performance.now();
      const response = await fetch(`http://127.0.0.1:${gateway.port}${path}`, { headers });
      const text = await response.text();
      return {
        status: response.status,
        headers: response.headers,
        body: text === '' ? ({} as HalPage) : JSON.parse(text),
        ms: performance.now() - started,
      };
    },
    grpc,
  };
}

/** The ids of every page from `path` on, following `rel` until a page is empty or has no such link. */
async function follow(r: Rig, path: string, rel: 'next' | 'prev'): Promise<{ ids: string[]; last: string }> {
  const ids: string[] = [];
  let href: string | undefined = path;
  let last = path;
  while (href) {
    const page = await r.get(href);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    last = href;
    ids.push(...page.body._embedded.events.map((e) => e.id));
    if (page.body._embedded.events.length === 0) break;
    href = page.body._links[rel]?.href;
  }
  return { ids, last };
}

const fieldOf = (a: Answer) => a.body.error?.field;

export function eventsApiContract(adapter: string, makeSql: () => Promise<MigratedSql>): void {
  describe(`event log API: ${adapter}`, () => {
    test('HAL pages with links in the body and the Link header, newest first and oldest first', async (t) => {
      const r = await rig(t, makeSql);
      const base = Date.now() - 10 * 60_000;
      // Two pairs share their time: (occurred_at, id) orders them.
      const times = [0, 1_000, 1_000, 2_000, 3_000, 3_000, 4_000];
      const ids = await r.append(
        times.map((dt, i) => ({ user: 'ann', target: i % 2 ? 'post/2' : 'post/1', atMs: base + dt })),
      );
      await r.append([{ user: 'bob', atMs: base }]);
      const byTime = ids
        .map((id, i) => ({ id, at: times[i]! }))
        .sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1))
        .map((e) => e.id);

      const first = await r.get('/v1/events?user=ann&pageSize=3');
      assert.equal(first.status, 200);
      assert.equal(first.headers.get('content-type'), 'application/hal+json; charset=utf-8');
      const top = first.body._embedded.events[0]!;
      assert.deepEqual(
        { ...top, _links: undefined },
        {
          id: byTime.at(-1),
          type: 'like',
          target: 'post/1',
          userId: 'ann',
          ip: '',
          occurredAt: new Date(base + 4_000).toISOString(),
          receivedAt: top.occurredAt === '' ? '' : (top as unknown as { receivedAt: string }).receivedAt,
          attributes: {},
          _links: undefined,
        },
      );
      assert.deepEqual(top._links, {
        target: { href: '/v1/counters?target=post%2F1' },
        report: { href: '/v1/report?target=post%2F1{&date}', templated: true },
        'target-events': { href: '/v1/events?target=post%2F1' },
        user: { href: '/v1/events?user=ann' },
      });
      const links = first.body._links;
      assert.equal(links.self?.href, '/v1/events?user=ann&pageSize=3');
      assert.equal(links.user?.href, '/v1/events?user=ann');
      assert.match(links.next?.href ?? '', /^\/v1\/events\?user=ann&pageSize=3&pageToken=[\w-]+$/);
      assert.ok(links.prev, 'the head of an open range links to newer events');
      const header = first.headers.get('link') ?? '';
      for (const rel of ['self', 'next', 'prev', 'first', 'user'])
        assert.ok(header.includes(`<${links[rel]!.href}>; rel="${rel}"`), `${rel} in ${header}`);
      assert.equal(first.body.closed, false);

      assert.deepEqual((await follow(r, '/v1/events?user=ann&pageSize=3', 'next')).ids, byTime.toReversed());
      assert.deepEqual((await follow(r, '/v1/events?user=ann&order=oldest&pageSize=2', 'next')).ids, byTime);
      // prev goes back the way next came.
      const third = await r.get(
        (await r.get((await r.get('/v1/events?user=ann&pageSize=3')).body._links.next!.href)).body._links
          .next!.href,
      );
      assert.deepEqual(
        third.body._embedded.events.map((e) => e.id),
        [byTime[0]],
      );
      const back = await r.get(third.body._links.prev!.href);
      assert.deepEqual(
        back.body._embedded.events.map((e) => e.id),
        byTime.slice(1, 4).toReversed(),
      );
      // A target's events, of one type, with its resources linked.
      await r.append([{ user: 'cy', target: 'post/2', type: 'view', atMs: base }]);
      const target = await r.get('/v1/events?target=post%2F2&type=view');
      assert.equal(target.body._embedded.events.length, 1);
      assert.equal(target.body._links.target?.href, '/v1/counters?target=post%2F2');
      assert.equal(target.body._links.report?.templated, true);
      const estimated = await r.get('/v1/events?user=ann&estimate=true');
      assert.match(estimated.body.estimatedTotal ?? '', /^\d+$/, JSON.stringify(estimated.body));
    });

    test('paging while events are appended returns every event exactly once, both orders', async (t) => {
      const r = await rig(t, makeSql);
      const base = Date.now() - 5 * 60_000;
      const seeded = await r.append(
        Array.from({ length: 60 }, (_, i) => ({ user: 'ann', atMs: base + Math.floor(i / 3) * 10 })),
      );
      let appended: string[] = [];
      let at = base + 60_000;
      const appender = (async () => {
        for (let round = 0; round < 20; round++) {
          const ids = await r.append([
            { user: 'ann', atMs: at },
            { user: 'ann', atMs: at },
            { user: 'bob', atMs: at },
          ]);
          appended = appended.concat(ids.slice(0, 2));
          at += 7;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      // Newest first: down from the head, then the newer ones through the head's prev link.
      const head = await r.get('/v1/events?user=ann&pageSize=7');
      const down = await follow(r, head.body._links.next!.href, 'next');
      // Oldest first: up to the tail while events arrive, then the tail polled again once they stopped.
      const up = await follow(r, '/v1/events?user=ann&order=oldest&pageSize=7', 'next');
      await appender;
      const newer = await follow(r, head.body._links.prev!.href, 'prev');
      const tail = await follow(r, up.last, 'next');
      const all = [...seeded, ...appended].sort();
      const newestFirst = [...head.body._embedded.events.map((e) => e.id), ...down.ids, ...newer.ids];
      const once = (list: string[]) => [...new Set(list)].sort();
      assert.deepEqual(once(newestFirst), all, 'newest first: every event');
      assert.equal(newestFirst.length, all.length, 'newest first: none twice');
      // `up` ended on an empty page at the tail: its token, polled again, gives what came since.
      const oldest = [...up.ids, ...tail.ids];
      assert.deepEqual(once(oldest), all, 'oldest first: every event');
      assert.equal(oldest.length, all.length, 'oldest first: none twice');
    });

    test('a token is refused for another filter, and every bad parameter is a 400 naming it', async (t) => {
      const r = await rig(t, makeSql);
      await r.append([0, 1, 2].map((i) => ({ user: 'ann', atMs: Date.now() - 1_000 + i })));
      const token = new URL(
        `http://x${(await r.get('/v1/events?user=ann&pageSize=1')).body._links.next!.href}`,
      ).searchParams.get('pageToken')!;
      for (const [path, field] of [
        [`/v1/events?user=bob&pageToken=${token}`, 'pageToken'],
        [`/v1/events?user=ann&order=oldest&page_token=${token}`, 'page_token'],
        [`/v1/events?user=ann&type=like&pageToken=${token}`, 'pageToken'],
        ['/v1/events?user=ann&pageToken=bm9wZQ', 'pageToken'],
        ['/v1/events', 'user'],
        ['/v1/events?user=ann&target=post%2F1', 'target'],
        ['/v1/events?user=ann&order=sideways', 'order'],
        ['/v1/events?user=ann&pageSize=5000', 'pageSize'],
        ['/v1/events?user=ann&page_size=-1', 'page_size'],
        ['/v1/events?user=ann&from=yesterday', 'from'],
        ['/v1/events?user=ann&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', 'to'],
        [`/v1/events?user=${'u'.repeat(129)}`, 'user'],
        ['/v1/events?user=me', 'user'],
        ['/v1/events?user=ann&colour=red', 'colour'],
      ] as const) {
        const answer = await r.get(path);
        assert.equal(answer.status, 400, `${path}: ${JSON.stringify(answer.body)}`);
        assert.equal(fieldOf(answer), field, `${path}: ${JSON.stringify(answer.body)}`);
      }
      await assert.rejects(
        r.grpc.listEvents({ user: 'bob', pageToken: token }),
        (error: AppError) => error.code === Code.INVALID_ARGUMENT && error.field === 'page_token',
      );
      await assert.rejects(
        r.grpc.listEvents({ user: 'ann', waitSeconds: 31 }),
        (error: AppError) => error.code === Code.INVALID_ARGUMENT && error.field === 'wait_seconds',
      );
    });

    test('ETags and caching: a closed range is immutable, the head revalidates and answers 304', async (t) => {
      const r = await rig(t, makeSql);
      const old = Date.now() - 10 * 60_000;
      await r.append([0, 1, 2].map((i) => ({ user: 'ann', atMs: old + i })));
      const closedPath = `/v1/events?user=ann&from=${new Date(old).toISOString()}&to=${new Date(old + 60_000).toISOString()}`;
      const closed = await r.get(closedPath, { prefer: 'wait=5' });
      assert.equal(closed.status, 200);
      assert.equal(closed.body.closed, true);
      assert.equal(closed.headers.get('cache-control'), 'public, max-age=86400, immutable');
      assert.equal(closed.headers.get('preference-applied'), null, 'a closed range is not waited on');
      assert.ok(closed.ms < 2_000, `answered at once (${closed.ms} ms)`);
      const etag = closed.headers.get('etag')!;
      assert.match(etag, /^"[\w-]+"$/, 'a strong ETag');
      assert.ok(closed.body._links.prev === undefined, 'a closed range has no head to poll');
      const again = await r.get(closedPath, { 'if-none-match': etag });
      assert.equal(again.status, 304);
      assert.equal(again.headers.get('etag'), etag);
      const withKey = await r.get(closedPath, { authorization: 'Bearer anything' });
      assert.equal(withKey.headers.get('cache-control'), 'private, max-age=86400, immutable');

      const head = await r.get('/v1/events?user=ann');
      assert.equal(head.headers.get('cache-control'), 'no-cache');
      const headTag = head.headers.get('etag')!;
      assert.equal((await r.get('/v1/events?user=ann', { 'if-none-match': headTag })).status, 304);
      assert.equal((await r.get('/v1/events?user=ann', { 'if-none-match': `W/${headTag}` })).status, 304);
      await r.append([{ user: 'ann', atMs: Date.now() }]);
      const changed = await r.get('/v1/events?user=ann', { 'if-none-match': headTag });
      assert.equal(changed.status, 200);
      assert.notEqual(changed.headers.get('etag'), headTag);
      assert.equal(changed.body._embedded.events.length, 4);
      // The closed range did not change.
      assert.equal((await r.get(closedPath)).headers.get('etag'), etag);
    });

    test('Prefer: wait long-polls the head: woken by an append for the filter, else the same page after the wait', async (t) => {
      const r = await rig(t, makeSql);
      await r.append([{ user: 'ann', atMs: Date.now() - 1_000 }]);
      const head = await r.get('/v1/events?user=ann');
      const etag = head.headers.get('etag')!;

      // Woken: another user's event does not wake it, ann's does.
      const polled = r.get('/v1/events?user=ann', { prefer: 'wait=20', 'if-none-match': etag });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await r.append([{ user: 'bob', atMs: Date.now() }]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [id] = await r.append([{ user: 'ann', atMs: Date.now() }]);
      const appendedAt = performance.now();
      const woken = await polled;
      const wokeAfterMs = performance.now() - appendedAt;
      t.diagnostic(
        `${adapter}: the long-poll answered ${wokeAfterMs.toFixed(1)} ms after the append resolved`,
      );
      assert.equal(woken.status, 200);
      assert.equal(woken.headers.get('preference-applied'), 'wait=20');
      assert.equal(woken.body._embedded.events[0]?.id, id);
      assert.ok(wokeAfterMs < 1_000, `woken ${wokeAfterMs} ms after the append`);

      // Not woken: the same page after the wait, 304 when the client named it.
      const tag = woken.headers.get('etag')!;
      const [unchanged, plain] = await Promise.all([
        r.get('/v1/events?user=ann', { prefer: 'wait=1', 'if-none-match': tag }),
        r.get('/v1/events?user=ann', { prefer: 'wait=1' }),
      ]);
      for (const answer of [unchanged, plain]) {
        assert.ok(answer.ms >= 900, `waited ${answer.ms} ms`);
        assert.equal(answer.headers.get('preference-applied'), 'wait=1');
        assert.equal(answer.headers.get('etag'), tag);
      }
      assert.equal(unchanged.status, 304);
      assert.equal(plain.status, 200);
      assert.deepEqual(plain.body._embedded.events, woken.body._embedded.events);
      // A wait over the limit is capped, not refused.
      const capped = r.get('/v1/events?user=ann', { prefer: 'wait=600' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      await r.append([{ user: 'ann', atMs: Date.now() }]);
      assert.equal((await capped).headers.get('preference-applied'), 'wait=30');
    });
  });
}
