/**
 * The live stream under fan-out: SUBSCRIBERS WebSocket clients (default 50) connect over the
 * first second and hold `/v1/stream` open, subscribed to the dashboard and to the counters of
 * the WATCH_TARGETS most popular targets of each family (default 5), counting what they receive,
 * while events arrive over REST at RATE per second (default 20). Measures how long an event takes
 * from its send to a dashboard snapshot (`tally_live_delay`), and how fast the gateway answers
 * handshakes and subscriptions.
 */
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';
import {
  arrivalScenario,
  envNumber,
  ingestThresholds,
  loadConfig,
  SUMMARY_TREND_STATS,
  withCredential,
} from './lib/config.js';
import { EventFactory, newRunId } from './lib/events.js';
import { recordCall } from './lib/metrics.js';
import { summaryHandler } from './lib/summary.js';

const config = loadConfig({ rate: 20, p99Ms: 100 });
const subscribers = envNumber('SUBSCRIBERS', 50, { min: 1, max: 1000, integer: true });
const watchTargets = envNumber('WATCH_TARGETS', 5, { min: 0, max: 33, integer: true });
const liveP95Ms = envNumber('LIVE_P95_MS', 1500, { min: 1 });
/** The dashboard's tick (docs/stream.md). */
const TICK_MS = 500;
/**
 * Subscribers connect spread over the first LEAD_SECONDS (as dashboards open, not all in the same
 * millisecond); events start after them, and each socket stays open TAIL_SECONDS after the last.
 */
const LEAD_SECONDS = 1;
const TAIL_SECONDS = 2;
const holdMs = (LEAD_SECONDS + config.duration.seconds + TAIL_SECONDS) * 1000;

const events = new EventFactory(config, 'ws');
const watched = events.popularTargets(watchTargets);
const publishUrl = `${config.httpUrl}/v1/events`;
const publishParams = {
  headers: withCredential(config, { 'content-type': 'application/json' }),
  tags: { name: 'POST /v1/events' },
  timeout: '10s',
};

const dashboardMessages = new Counter('tally_ws_dashboard_messages');
const counterMessages = new Counter('tally_ws_counters_messages');
/** `error` messages from the server and socket errors. */
const wsErrors = new Counter('tally_ws_errors');
/** From sending a subscription to its `subscribed` reply. */
const subscribeDuration = new Trend('tally_ws_subscribe_duration', true);
/** From an event's send (its event time) to the first dashboard snapshot that lists it. */
const liveDelay = new Trend('tally_live_delay', true);

export const options = {
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations',
      exec: 'subscriber',
      vus: subscribers,
      iterations: 1,
      maxDuration: `${Math.ceil(holdMs / 1000) + 30}s`,
    },
    events: arrivalScenario(config, { exec: 'publish', startTime: `${LEAD_SECONDS}s` }),
  },
  thresholds: {
    ...ingestThresholds(config),
    http_req_failed: [`rate<=${config.maxErrorRate}`],
    http_req_duration: [`p(99)<${config.p99Ms}`],
    ws_connecting: [`p(99)<${config.p99Ms}`],
    tally_ws_subscribe_duration: [`p(99)<${config.p99Ms}`],
    tally_live_delay: [`p(95)<${liveP95Ms}`],
    tally_ws_errors: ['count==0'],
    tally_ws_dashboard_messages: ['count>0'],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return { runId: config.runId || newRunId() };
}

/** One event over REST, its time now so the live delay starts at the send. */
export function publish(data) {
  const event = events.event(events.id(data.runId), 0);
  const response = http.post(publishUrl, JSON.stringify(event), publishParams);
  const ok = check(response, {
    'publish answers the event id': (r) => r.status === 200 && r.json('id') === event.id,
  });
  recordCall(1, ok ? 1 : 0, ok);
}

/** One subscriber: holds a socket for the whole run, then checks what it received. */
export function subscriber(data) {
  sleep((LEAD_SECONDS * exec.scenario.iterationInTest) / subscribers);
  const ourPrefix = `${data.runId}-`;
  const seen = { hello: undefined, subscribed: {}, dashboards: 0, counters: 0, ours: 0, closed: false };
  let previousLatest = new Set();
  const sentAt = {};
  const ws = new WebSocket(`${config.wsUrl}/v1/stream`);

  const subscribe = (message) => {
    sentAt[message.id] = Date.now();
    ws.send(JSON.stringify(message));
  };

  const subscribeAll = () => {
    subscribe({ op: 'subscribe', channel: 'dashboard', id: 'dashboard' });
    if (watched.length > 0)
      subscribe({ op: 'subscribe', channel: 'counters', targets: watched, id: 'counters' });
  };

  ws.onopen = () => {
    // With API_KEY (a credential with the read scope): authenticate first, subscribe on `hello`.
    if (config.apiKey === '') subscribeAll();
    else ws.send(JSON.stringify({ channel: 'auth', token: config.apiKey }));
    setTimeout(() => ws.close(), holdMs);
  };

  ws.onmessage = (e) => {
    const message = JSON.parse(e.data);
    switch (message.channel) {
      case 'hello':
        if (seen.hello === undefined && config.apiKey !== '') subscribeAll();
        seen.hello ??= message;
        break;
      case 'subscribed':
        if (message.id in sentAt && !(message.id in seen.subscribed)) {
          seen.subscribed[message.id] = true;
          subscribeDuration.add(Date.now() - sentAt[message.id]);
        }
        break;
      case 'dashboard': {
        seen.dashboards++;
        dashboardMessages.add(1);
        const latest = new Set();
        const now = Date.now();
        for (const event of message.latest ?? []) {
          if (typeof event.id !== 'string' || !event.id.startsWith(ourPrefix)) continue;
          latest.add(event.id);
          if (previousLatest.has(event.id)) continue;
          seen.ours++;
          liveDelay.add(now - Date.parse(event.time));
        }
        previousLatest = latest;
        break;
      }
      case 'counters':
        seen.counters++;
        counterMessages.add(1);
        break;
      case 'error':
        wsErrors.add(1);
        console.warn(`stream error: ${e.data}`);
        break;
    }
  };

  ws.onerror = (e) => {
    wsErrors.add(1);
    console.warn(`socket error: ${e.error}`);
  };

  ws.onclose = () => {
    seen.closed = true;
    // A snapshot now and then one a tick: ask for at least half of them (ticks are "about" 500 ms).
    const expectedTicks = Math.floor(holdMs / TICK_MS);
    check(seen, {
      'hello first, protocol 1': (s) => s.hello?.protocol === 1,
      'every subscription confirmed': (s) =>
        s.subscribed.dashboard === true && (watched.length === 0 || s.subscribed.counters === true),
      'dashboard ticks arrive': (s) => s.dashboards >= expectedTicks / 2,
      'our events reach the dashboard': (s) => s.ours > 0,
    });
  };
}

export const handleSummary = summaryHandler('ws-subscribers', config, {
  endpoint: 'GET /v1/stream (WebSocket)',
  subscribers,
  watchedTargets: watched.length,
  rate: `${config.rate} events/s`,
  duration: config.duration.text,
  p99Ms: config.p99Ms,
  liveP95Ms,
});
