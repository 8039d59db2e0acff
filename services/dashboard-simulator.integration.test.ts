/**
 * The newcomer's path in a real browser: open the dashboard, run the simulator,
 * and watch the page's leaderboards reach exactly what the simulator had
 * acknowledged, and its Alerts panel show the milestones the social scenario's demo rules
 * reached (Debian's Chromium through playwright-core, `tally all` on the real servers).
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { DEMO_RULES, ensureDemoRules } from './simulator/demo-rules.ts';
import { parseSimulateArgs } from './simulator/simulate-args.ts';
import { runSimulation } from './simulator/simulator.ts';
import { launchChromium } from './testing/browser.ts';
import { requireRealServers, testNamespace, waitFor } from './testing/real-servers.ts';
import { Backends } from './testing/tally-client.ts';
import { startTally } from './testing/tally-process.ts';

await requireRealServers();

const READ_BOARDS = `(() => {
  const boards = {};
  for (const board of document.querySelectorAll('#boards .board')) {
    boards[board.dataset.type] = [...board.querySelectorAll('.row')].map((row) => [
      row.dataset.target,
      Number((row.querySelector('.count')?.textContent ?? '').replace(/\\D/g, '')),
    ]);
  }
  return { status: document.getElementById('status').dataset.state, boards };
})()`;

test('the simulator runs and the dashboard counters reach what it sent', { timeout: 240_000 }, async (t) => {
  const ns = testNamespace(6);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], ns.env);
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    await tally.kill('SIGTERM');
    await backends.cleanup();
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`http://127.0.0.1:${tally.httpPort}/`);
  const read = () =>
    page.evaluate<{ status: string; boards: Record<string, [string, number][]> }>(READ_BOARDS);
  await waitFor(
    async () => (await read()).status === 'live',
    async () => `status ${(await read()).status}`,
  );

  const options = parseSimulateArgs([
    '--scenario',
    'clickstream',
    '--total',
    '1500',
    '--rate',
    '500',
    '--seed',
    '7',
    '--targets',
    '40',
    '--target',
    `http://127.0.0.1:${tally.httpPort}`,
  ]);
  const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
  const summary = await runSimulation(options, { out: quiet, err: quiet });
  assert.equal(summary.acknowledged, 1500, JSON.stringify(summary.errors));

  // The page shows each type's top 10: every shown count is the simulator's, and they are its 10 highest.
  const want = new Map<string, Map<string, number>>();
  for (const [target, byType] of Object.entries(summary.acknowledgedByTarget)) {
    for (const [type, { count }] of Object.entries(byType)) {
      if (!want.has(type)) want.set(type, new Map());
      want.get(type)!.set(target, count);
    }
  }
  const matches = (boards: Record<string, [string, number][]>) =>
    [...want].every(([type, counts]) => {
      const shown = boards[type] ?? [];
      const top = [...counts.values()].sort((a, b) => b - a).slice(0, 10);
      return (
        shown.length === top.length &&
        shown.every(([target, count]) => counts.get(target) === count) &&
        JSON.stringify(shown.map(([, c]) => c)) === JSON.stringify(top)
      );
    });
  await waitFor(
    async () => matches((await read()).boards),
    async () => `the page shows ${JSON.stringify((await read()).boards)}`,
    60_000,
  );
  assert.deepEqual([...want.keys()].sort(), ['CLICK', 'VIEW']);
  assert.deepEqual(errors, []);
  const screenshot = join(tmpdir(), `tally-dashboard-simulated-${ns.id}.png`);
  await page.screenshot({ path: screenshot });
  t.diagnostic(`screenshot: ${screenshot}`);
});

test('the social scenario with its demo rules: the Alerts panel shows each milestone its likes reached, once', {
  timeout: 240_000,
}, async (t) => {
  const ns = testNamespace(6);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], { ...ns.env, TALLY_ALERT_RULES_REFRESH_MS: '200' });
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    await tally.kill('SIGTERM');
    await backends.cleanup();
  });
  const origin = `http://127.0.0.1:${tally.httpPort}`;
  // The rules first (as `--demo-rules` makes them), and the alerter has them before the events flow.
  const made = await ensureDemoRules(origin, 'social');
  assert.ok(
    made.every((line) => line.includes(': created')),
    made.join('\n'),
  );
  assert.ok((await ensureDemoRules(origin, 'social')).every((line) => line.endsWith(': already there')));
  await waitFor(
    () => tally.lines.some((l) => l.includes('"msg":"alert rules changed"')),
    () => 'the alerter never took the rules in',
    10_000,
  );

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${origin}/`);
  const options = parseSimulateArgs([
    '--scenario',
    'social',
    '--total',
    '1500',
    '--rate',
    '500',
    '--seed',
    '11',
    '--targets',
    '40',
    '--target',
    origin,
  ]);
  const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
  const summary = await runSimulation(options, { out: quiet, err: quiet });
  assert.equal(summary.acknowledged, 1500, JSON.stringify(summary.errors));

  // Every milestone the acknowledged likes reached on a post, by the rule's thresholds.
  const thresholds = DEMO_RULES.social![0]!.milestone!.thresholds;
  const expected = new Set<string>();
  for (const [target, byType] of Object.entries(summary.acknowledgedByTarget)) {
    const likes = byType.like?.count ?? 0;
    if (!target.startsWith('post/')) continue;
    for (const threshold of thresholds)
      if (likes >= threshold)
        expected.add(`${target} reached ${threshold.toLocaleString('en-US')} like events`);
  }
  assert.ok(expected.size >= 3, `the run reaches a few milestones: ${[...expected]}`);
  const shown = () =>
    page.evaluate(
      `[...document.querySelectorAll('#alerts .alert .alert-text')].map((e) => e.textContent.split(' · ')[0])`,
    ) as Promise<string[]>;
  await waitFor(
    async () => (await shown()).length === Math.min(30, expected.size),
    async () => `the panel shows ${JSON.stringify(await shown())}, expected ${expected.size}`,
    60_000,
  );
  const messages = await shown();
  assert.equal(new Set(messages).size, messages.length, 'each milestone once');
  for (const message of messages) assert.ok(expected.has(message), `${message} was not reached`);
  assert.deepEqual(errors, []);
});

test('the social scenario with a spike: the Alerts panel shows the spike alert on the spiked post, and no other', {
  timeout: 420_000,
}, async (t) => {
  const ns = testNamespace(6);
  const backends = new Backends(ns);
  // One process, every partition read within a second of the others: a few seconds of lateness
  // close a minute soon after its end, so the spike rule warms up in about two minutes.
  const tally = await startTally(['all'], {
    ...ns.env,
    TALLY_ALERT_RULES_REFRESH_MS: '200',
    TALLY_ALERT_LATENESS_MS: '5000',
  });
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    await tally.kill('SIGTERM');
    await backends.cleanup();
  });
  const origin = `http://127.0.0.1:${tally.httpPort}`;
  await ensureDemoRules(origin, 'social');
  await waitFor(
    () => tally.lines.some((l) => l.includes('"msg":"alert rules changed"')),
    () => 'the alerter never took the rules in',
    10_000,
  );
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${origin}/`);
  // 100 events a second over 40 posts for 3 minutes; post/3 (about 300 likes a minute) takes
  // ten times its rate for 30 s from 135 s in, once its baseline has a full minute behind it.
  const options = parseSimulateArgs([
    '--scenario',
    'social',
    '--duration',
    '180s',
    '--rate',
    '100',
    '--seed',
    '5',
    '--targets',
    '40',
    '--spike',
    'post/3:at=135s:x=10:for=30s',
    '--target',
    origin,
  ]);
  const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
  const started = Date.now();
  const spikes = () =>
    page.evaluate(
      `[...document.querySelectorAll('#alerts .alert .alert-text')].map((e) => e.textContent).filter((text) => / like events in a minute, usually /.test(text))`,
    ) as Promise<string[]>;
  let seenAtMs: number | undefined;
  // Watched until it shows, or two minutes after the run (a loaded machine's alerter may lag).
  let watchUntilMs = Number.POSITIVE_INFINITY;
  const watching = (async () => {
    while (Date.now() < watchUntilMs && seenAtMs === undefined) {
      if ((await spikes()).length > 0) seenAtMs = Date.now() - started;
      else await new Promise((r) => setTimeout(r, 500));
    }
  })();
  const summary = await runSimulation(options, { out: quiet, err: quiet });
  watchUntilMs = Date.now() + 120_000;
  await watching;
  assert.ok(summary.acknowledged > 15_000, `acknowledged ${summary.acknowledged}`);
  const shown = await spikes();
  assert.ok(seenAtMs !== undefined, 'no spike alert appeared');
  assert.ok(seenAtMs >= 135_000, `a spike alert ${seenAtMs} ms in, before the spike`);
  t.diagnostic(
    `the spike alert appeared ${((seenAtMs - 135_000) / 1000).toFixed(1)} s after the spike began`,
  );
  assert.equal(shown.length, 1, `one spike alert: ${JSON.stringify(shown)}`);
  assert.match(shown[0]!, /^post\/3: /);
  // The store holds the same: one spike notification, on post/3.
  const listed = (await (
    await fetch(`${origin}/v1/notifications?recipient=dashboard&pageSize=1000`)
  ).json()) as {
    notifications: { kind: string; target: string }[];
  };
  assert.deepEqual(
    listed.notifications.filter((n) => n.kind === 'spike').map((n) => n.target),
    ['post/3'],
  );
  assert.deepEqual(errors, []);
});

test('the transactions scenario: the top spenders view shows the holders with the highest 6-hour spend, live', {
  timeout: 240_000,
}, async (t) => {
  const ns = testNamespace(6);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], ns.env);
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    await tally.kill('SIGTERM');
    await backends.cleanup();
  });
  const origin = `http://127.0.0.1:${tally.httpPort}`;
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${origin}/`);
  const shown = () =>
    page.evaluate(
      `[...document.querySelectorAll('#spenders .row')].map((r) => [r.dataset.user, Number(r.querySelector('.count').dataset.sum)])`,
    ) as Promise<[string, number][]>;
  assert.equal(
    await page.evaluate(`document.getElementById('views').hidden`),
    true,
    'no view before any payment',
  );
  const run = (seed: string) =>
    runSimulation(
      parseSimulateArgs([
        '--scenario',
        'transactions',
        '--total',
        '800',
        '--rate',
        '400',
        '--seed',
        seed,
        '--users',
        '30',
        '--target',
        origin,
      ]),
      {
        out: new Writable({ write: (_chunk, _encoding, done) => done() }),
        err: new Writable({ write: (_chunk, _encoding, done) => done() }),
      },
    );
  const api = async () => {
    const response = await fetch(`${origin}/v1/aggregates/top?type=transaction&window=6h&limit=8`);
    const body = (await response.json()) as { entries: { userId: string; sum: number }[] };
    return body.entries.map((e) => [e.userId, e.sum] as [string, number]);
  };
  // The page agrees with the ranking the API gives, and changes as more payments come in.
  const agrees = async () => {
    const [page, ranked] = await Promise.all([shown(), api()]);
    return ranked.length === 8 && JSON.stringify(page) === JSON.stringify(ranked) ? page : undefined;
  };
  assert.equal((await run('5')).acknowledged, 800);
  let first: [string, number][] | undefined;
  await waitFor(
    async () => {
      first = await agrees();
      return first !== undefined;
    },
    async () => `the view shows ${JSON.stringify(await shown())}, the API ${JSON.stringify(await api())}`,
    60_000,
  );
  assert.equal((await run('6')).acknowledged, 800);
  let second: [string, number][] | undefined;
  await waitFor(
    async () => {
      second = await agrees();
      return second !== undefined && second[0]![1] > first![0]![1];
    },
    async () => `the view shows ${JSON.stringify(await shown())}, first ${JSON.stringify(first)}`,
    60_000,
  );
  // The SQL over the stored rows ranks the same sums.
  const rows = await backends.rows<{ sum: number }>(
    `SELECT sum(value)::float8 AS sum FROM event WHERE type = 'transaction' AND occurred_at > now() - interval '6 hours'
      GROUP BY user_id ORDER BY 1 DESC LIMIT 8`,
  );
  assert.deepEqual(
    second!.map(([, sum]) => Math.round(sum * 100)),
    rows.map((r) => Math.round(r.sum * 100)),
  );
  assert.deepEqual(errors, []);
});

test('the orders scenario: the orders view shows deliveries in progress by city changing while the simulator runs, and couriers on the map', {
  timeout: 240_000,
}, async (t) => {
  const ns = testNamespace(6);
  const backends = new Backends(ns);
  const tally = await startTally(['all'], { ...ns.env, TALLY_PROJECTIONS_REFRESH_MS: '500' });
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    await tally.kill('SIGTERM');
    await backends.cleanup();
  });
  const origin = `http://127.0.0.1:${tally.httpPort}`;
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${origin}/`);
  const cities = () =>
    page.evaluate(
      `[...document.querySelectorAll('#orders-city-rows .row')].map((r) => [r.dataset.target, Number(r.querySelector('.count').textContent.replace(/\\D/g, ''))])`,
    ) as Promise<[string, number][]>;
  const couriers = () =>
    page.evaluate(`document.querySelectorAll('#orders-maps circle.courier').length`) as Promise<number>;
  assert.equal(
    await page.evaluate(`document.getElementById('orders').hidden`),
    true,
    'no orders view before any order',
  );
  // One minute of an order's life is a second of the run: orders go from created to delivered in it.
  const run = runSimulation(
    parseSimulateArgs([
      '--scenario',
      'orders',
      '--duration',
      '40s',
      '--rate',
      '150',
      '--seed',
      '9',
      '--target',
      origin,
    ]),
    {
      out: new Writable({ write: (_chunk, _encoding, done) => done() }),
      err: new Writable({ write: (_chunk, _encoding, done) => done() }),
    },
  );
  const seen = new Set<string>();
  let maxCouriers = 0;
  await waitFor(
    async () => {
      const shown = await cities();
      if (shown.length > 0) seen.add(JSON.stringify(shown));
      maxCouriers = Math.max(maxCouriers, await couriers());
      return seen.size >= 3 && maxCouriers > 0;
    },
    async () => `the view showed ${[...seen].join(' | ')}; couriers at most ${maxCouriers}`,
    60_000,
    500,
  );
  const summary = await run;
  assert.ok(summary.acknowledged > 1000, JSON.stringify(summary.errors));
  // Once the projector has caught up, the page shows what the API counts.
  const api = async () => {
    const response = await fetch(`${origin}/v1/entities/order/counts?by=city`);
    const body = (await response.json()) as { totals: Record<string, string | number> };
    return Object.entries(body.totals)
      .map(([city, n]) => [city, Number(n)] as [string, number])
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  };
  await waitFor(
    async () => (await backends.caughtUp()) && JSON.stringify(await cities()) === JSON.stringify(await api()),
    async () => `the view shows ${JSON.stringify(await cities())}, the API ${JSON.stringify(await api())}`,
    60_000,
  );
  assert.ok((await cities()).length >= 2, 'orders in several cities');
  assert.deepEqual(errors, []);
});
