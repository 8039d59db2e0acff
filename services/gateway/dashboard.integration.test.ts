/**
 * The live dashboard in a real browser (Debian's Chromium through playwright-core)
 * against `tally all` on the real servers: 300 events in bursts over REST, and
 * the page shows the exact leaderboard counts, a moving events/s tile, the
 * latest events and no console errors. Saves dashboard.png (1280×800) and
 * dashboard-phone.png (390×844): to docs/ with TALLY_UPDATE_SCREENSHOTS=1, else to a scratch directory.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { Notification } from '../infra/alerts/notification-store.ts';
import { createSqlNotificationStore } from '../infra/alerts/sql-notification-store.ts';
import { createPgDatabase } from '../infra/sql/pg-database.ts';
import { launchChromium } from '../testing/browser.ts';
import { realServers, requireRealServers, testNamespace, waitFor } from '../testing/real-servers.ts';
import { Backends, http } from '../testing/tally-client.ts';
import { startTally, type TallyProcess } from '../testing/tally-process.ts';

await requireRealServers();

// The screenshots go to a scratch directory; TALLY_UPDATE_SCREENSHOTS=1 writes docs/'s instead.
const SHOTS = process.env.TALLY_UPDATE_SCREENSHOTS
  ? join(import.meta.dirname, '..', '..', 'docs')
  : mkdtempSync(join(tmpdir(), 'tally-screenshots-'));

const LONG_URL =
  'https://shop.example.com/products/aurora-wireless-noise-cancelling-headphones?color=midnight&utm_source=newsletter&utm_campaign=autumn-sale';
/** Events per (type, target): 180 clicks and 120 views over five targets. */
const PLAN: Record<string, Record<string, number>> = {
  click: {
    [LONG_URL]: 52,
    'https://shop.example.com/': 41,
    'https://shop.example.com/cart': 33,
    'https://shop.example.com/search?q=headphones': 24,
    'https://shop.example.com/products/trail-running-shoes': 18,
    'https://shop.example.com/checkout': 12,
  },
  view: {
    'https://shop.example.com/': 38,
    'https://blog.example.com/posts/how-we-count-every-event-exactly-once': 29,
    [LONG_URL]: 21,
    'https://shop.example.com/products/trail-running-shoes': 15,
    'https://shop.example.com/cart': 10,
    'https://docs.example.com/getting-started': 7,
  },
};
const TOTAL = 300;
/** Burst sizes: a shape the sparkline can show. */
const BURSTS = [35, 80, 50, 95, 40];

interface PlannedEvent {
  id: string;
  type: string;
  target: string;
  userId: string;
  value?: number;
}

/** The planned events, interleaved deterministically. */
function plannedEvents(): PlannedEvent[] {
  const events: PlannedEvent[] = [];
  for (const [type, targets] of Object.entries(PLAN))
    for (const [target, count] of Object.entries(targets))
      for (let i = 0; i < count; i++)
        events.push({
          id: randomUUID(),
          type,
          target,
          userId: `user-${(events.length * 7) % 23}`,
          ...(type === 'click' && i % 10 === 0 ? { value: 1 + (i % 7) } : {}),
        });
  // A fixed shuffle (LCG) so that every burst holds every kind of event.
  let seed = 42;
  for (let i = events.length - 1; i > 0; i--) {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    const j = seed % (i + 1);
    [events[i], events[j]] = [events[j]!, events[i]!];
  }
  return events;
}

/** What the page shows, read in one go. */
interface Shown {
  status: string;
  /** data-value of the tiles: the exact numbers behind the animated text. */
  rate: number;
  total: number;
  /** The tiles' text as a person reads it. */
  totalText: string;
  typesText: string;
  /** The sparkline's data: events per second of the last minute. */
  history: number[];
  /** type → [target, count shown][] in display order. */
  boards: Record<string, [string, number][]>;
  latest: { type: string; target: string; title: string }[];
  boardsEmptyVisible: boolean;
  alertsEmptyVisible: boolean;
}

// Runs in the page (a string: this project type-checks without the DOM library).
const READ_PAGE = `(() => {
  const text = (el) => (el ? el.textContent : '');
  const visible = (id) => { const el = document.getElementById(id); return !!el && !el.hidden && el.offsetParent !== null; };
  const boards = {};
  for (const board of document.querySelectorAll('#boards .board')) {
    boards[board.dataset.type] = [...board.querySelectorAll('.row')].map((row) => [
      row.dataset.target,
      Number(text(row.querySelector('.count')).replace(/\\D/g, '')),
    ]);
  }
  return {
    status: document.getElementById('status').dataset.state,
    rate: Number(document.getElementById('rate-value').dataset.value ?? 0),
    total: Number(document.getElementById('total-value').dataset.value ?? 0),
    totalText: text(document.getElementById('total-value')),
    typesText: text(document.getElementById('types-value')),
    history: (document.getElementById('sparkline').dataset.history ?? '').split(',').filter(Boolean).map(Number),
    boards,
    latest: [...document.querySelectorAll('#latest .event')].map((row) => ({
      type: text(row.querySelector('.type-pill')),
      target: text(row.querySelector('.target')),
      title: row.querySelector('.target').title,
    })),
    boardsEmptyVisible: visible('boards-empty'),
    alertsEmptyVisible: visible('alerts-empty'),
  };
})()`;

const readPage = (page: Page): Promise<Shown> => page.evaluate<Shown>(READ_PAGE);

/** Polls the page until `probe` holds; fails with what the page showed. */
async function waitForPage(page: Page, what: string, probe: (shown: Shown) => boolean, timeoutMs = 60_000) {
  let last: Shown | undefined;
  await waitFor(
    async () => {
      last = await readPage(page);
      return probe(last);
    },
    () => `${what}; the page showed ${JSON.stringify(last)}`,
    timeoutMs,
    100,
  );
}

/** Counts of `events` per type and target, in the order the page ranks them (count desc, then target). */
function leaderboards(events: readonly PlannedEvent[]): Record<string, [string, number][]> {
  const counts = new Map<string, Map<string, number>>();
  for (const e of events) {
    const perTarget = counts.get(e.type) ?? new Map<string, number>();
    perTarget.set(e.target, (perTarget.get(e.target) ?? 0) + 1);
    counts.set(e.type, perTarget);
  }
  const out: Record<string, [string, number][]> = {};
  for (const [type, perTarget] of counts)
    out[type] = [...perTarget].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return out;
}

test('the dashboard shows exact live counts in a real browser', { timeout: 240_000 }, async (t) => {
  const ns = testNamespace(6);
  const backends = new Backends(ns);
  let tally: TallyProcess | undefined;
  let browser: Browser | undefined;
  // In this order: the page lets go, tally drains on its topics, then the namespace goes.
  t.after(async () => {
    await browser?.close();
    const code = await tally?.kill('SIGTERM');
    await backends.cleanup();
    assert.equal(code ?? 0, 0, 'tally drains and exits 0');
  });
  tally = await startTally(['all'], ns.env);
  const port = tally.httpPort!;

  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) =>
    problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`),
  );
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });

  await page.goto(`http://127.0.0.1:${port}/`);
  assert.equal(await page.title(), 'Tally · live');
  // The live feed has joined its consumer group: the events sent from now on are all seen.
  await waitForPage(page, 'the status turns live', (shown) => shown.status === 'live');
  assert.equal(await page.textContent('#status-text'), 'Live');
  const before = await readPage(page);
  assert.equal(before.boardsEmptyVisible, true, 'the empty state shows before any event');
  assert.equal(before.alertsEmptyVisible, true, 'the alerts panel is calm');

  const events = plannedEvents();
  assert.equal(events.length, TOTAL);
  let rateSeen = 0;
  let sent = 0;
  for (const size of BURSTS) {
    const burst = events.slice(sent, sent + size);
    sent += size;
    const response = await http(port, 'POST', '/v1/events:batch', { events: burst });
    assert.equal(response.status, 200, response.text);
    // The next burst goes once the page showed this one (in the total since the gateway started)
    // and its sparkline moved on to a new second: one bar per burst.
    let shownAll = false;
    await waitForPage(page, `the total reaches ${sent}, then a new second starts`, (shown) => {
      rateSeen = Math.max(rateSeen, shown.rate);
      shownAll ||= shown.total === sent;
      return shownAll && shown.history.at(-1) === 0;
    });
  }
  assert.ok(rateSeen > 0, 'the events/s tile moved while the bursts arrived');

  // Exact counts, in rank order, for every target of both types.
  const expected = leaderboards(events);
  await waitForPage(page, `the leaderboards show ${JSON.stringify(expected)}`, (shown) => {
    try {
      assert.deepEqual(shown.boards, expected);
      return true;
    } catch {
      return false;
    }
  });
  const shown = await readPage(page);
  assert.equal(shown.totalText, '300');
  assert.equal(shown.typesText, '2');
  assert.equal(
    shown.history.reduce((a, b) => a + b, 0),
    TOTAL,
    'the sparkline accounts for every event of the last minute',
  );
  assert.equal(shown.boardsEmptyVisible, false);
  assert.equal(shown.alertsEmptyVisible, true);

  // The latest events are ours, newest first, with the full target in the tooltip.
  assert.ok(
    shown.latest.length >= 10 && shown.latest.length <= 30,
    `${shown.latest.length} latest events shown`,
  );
  const lastBurst = events.slice(-BURSTS.at(-1)!);
  for (const row of shown.latest) {
    assert.equal(row.title, row.target);
    assert.ok(
      lastBurst.some((e) => e.type === row.type && e.target === row.target),
      `${JSON.stringify(row)} is one of the last burst's events`,
    );
  }

  // A long target is cut with an ellipsis, its full text in the tooltip.
  const longCell = page.locator(`.board[data-type="click"] .row[data-target="${LONG_URL}"] .target`);
  assert.equal(await longCell.getAttribute('title'), LONG_URL);
  assert.equal(
    await page.evaluate(`(() => {
      const el = document.querySelector('.board[data-type="click"] .row[data-target="${LONG_URL}"] .target');
      return el.scrollWidth > el.clientWidth && getComputedStyle(el).textOverflow;
    })()`),
    'ellipsis',
    'the long URL is truncated with an ellipsis',
  );

  await settle(page);
  await page.screenshot({ path: join(SHOTS, 'dashboard.png') });
  t.diagnostic(`screenshot: ${join(SHOTS, 'dashboard.png')}`);

  await page.setViewportSize({ width: 390, height: 844 });
  await untilTrue(
    page,
    "getComputedStyle(document.querySelector('.layout')).gridTemplateColumns.split(' ').length === 1",
    'the layout collapses to one column',
  );
  assert.equal(
    await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth'),
    true,
    'nothing overflows sideways at phone width',
  );
  await settle(page);
  await page.screenshot({ path: join(SHOTS, 'dashboard-phone.png') });

  assert.deepEqual(problems, [], 'no console errors, page errors or failed requests');
});

/** Polls `expression` in the page until it is true (page.waitForFunction would need 'unsafe-eval' under the page's CSP). */
async function untilTrue(page: Page, expression: string, what: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => (await page.evaluate(expression)) === true,
    () => `${what} (${expression})`,
    timeoutMs,
    100,
  );
}

/** Waits until every finite animation (count-ups, flashes, row moves) has finished. */
async function settle(page: Page): Promise<void> {
  await untilTrue(
    page,
    "document.getAnimations().every((a) => a.playState !== 'running' || a.effect.getComputedTiming().iterations === Infinity)",
    'the animations settle',
  );
}

test("the Alerts panel shows the dashboard's notifications live, and a target opens its page", {
  timeout: 240_000,
}, async (t) => {
  const ns = testNamespace(2);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], { ...ns.env, TALLY_NOTIFICATIONS_POLL_MS: '100' });
  const sql = createPgDatabase({ url: realServers.pgUrl, readUrls: [], schema: ns.pgSchema, poolSize: 2 });
  const store = createSqlNotificationStore(sql);
  let browser: Browser | undefined;
  t.after(async () => {
    await browser?.close();
    await tally.kill('SIGKILL');
    await sql.close();
    await backends.cleanup();
  });
  const port = tally.httpPort!;
  const target = `post/${randomUUID().slice(0, 8)}`;
  const likes = Array.from({ length: 12 }, (_, i) => ({
    id: randomUUID(),
    type: 'like',
    target,
    userId: `u${i % 5}`,
  }));
  assert.equal((await http(port, 'POST', '/v1/events:batch', { events: likes })).status, 200);
  const note = (threshold: number, recipients = ['dashboard']): Notification => ({
    id: `milestone:test:${target}:${threshold}`,
    ruleId: 'ar_test',
    kind: 'milestone',
    target,
    type: 'like',
    value: threshold,
    threshold,
    occurredAt: new Date(),
    recipients,
    message: `${target} reached ${threshold} likes`,
  });
  await waitFor(
    async () => {
      try {
        await store.record([note(5)]); // kept before the page opens: listed as history
        return true;
      } catch {
        return false; // the schema is still being migrated
      }
    },
    () => 'the notification store never became writable',
  );

  browser = await launchChromium();
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  await page.goto(`http://127.0.0.1:${port}/`);
  const shownAlerts = () =>
    page.evaluate(
      `[...document.querySelectorAll('#alerts .alert')].map((a) => a.querySelector('.alert-text').textContent.split(' · ')[0])`,
    ) as Promise<string[]>;
  await waitFor(
    async () => (await shownAlerts()).length === 1,
    async () => `history not shown: ${JSON.stringify(await shownAlerts())}`,
  );
  await store.record([note(10), note(11, ['user:someone'])]);
  await waitFor(
    async () => JSON.stringify(await shownAlerts()) === JSON.stringify([note(10).message, note(5).message]),
    async () => `live alert not shown: ${JSON.stringify(await shownAlerts())}`,
  );
  assert.equal(await page.isVisible('#alerts-empty'), false);

  // The alert's target opens its page: counters, unique users, today's hours, its alert history.
  await page.click('#alerts .alert-target');
  await untilTrue(
    page,
    `document.getElementById('target-view').open && document.getElementById('target-status').textContent === ''`,
    'the target page is loaded',
  );
  assert.equal(await page.textContent('#target-title'), target);
  const stats = (id: string) =>
    page.evaluate(
      `[...document.querySelectorAll('#${id} .stat-row')].map((r) => r.querySelector('.stat-name').textContent + ' = ' + r.querySelector('.stat-value').textContent)`,
    ) as Promise<string[]>;
  assert.deepEqual(await stats('target-counters'), ['like = 12']);
  assert.deepEqual(await stats('target-uniques'), ['like = 5 today · 5 all time']);
  const hours = ((await page.getAttribute('#target-hours', 'data-hours')) ?? '').split(',').map(Number);
  assert.equal(hours.length, 24);
  assert.equal(
    hours.reduce((a, b) => a + b, 0),
    12,
    "today's hours hold the 12 likes",
  );
  assert.deepEqual(
    (await stats('target-alerts')).map((s) => s.split(' = ')[0]),
    [note(11).message, note(10).message, note(5).message],
  );
  await page.click('#target-close');
  assert.equal(await page.evaluate(`document.getElementById('target-view').open`), false);
  assert.deepEqual(problems, []);
});
