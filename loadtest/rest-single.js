/**
 * REST, one event per request: `POST /v1/events` at RATE requests per second (default 50),
 * each answered `{"id"}` once the event log acknowledged the event.
 */
import { check } from 'k6';
import http from 'k6/http';
import {
  arrivalScenario,
  ingestThresholds,
  loadConfig,
  SUMMARY_TREND_STATS,
  withCredential,
} from './lib/config.js';
import { EventFactory, newRunId } from './lib/events.js';
import { recordCall } from './lib/metrics.js';
import { summaryHandler } from './lib/summary.js';

const config = loadConfig({ rate: 50, p99Ms: 20 });
const events = new EventFactory(config, 'rs');
const url = `${config.httpUrl}/v1/events`;
const params = {
  headers: withCredential(config, { 'content-type': 'application/json' }),
  tags: { name: 'POST /v1/events' },
  timeout: '10s',
};

export const options = {
  scenarios: { rest_single: arrivalScenario(config) },
  thresholds: {
    ...ingestThresholds(config),
    http_req_failed: [`rate<=${config.maxErrorRate}`],
    http_req_duration: [`p(99)<${config.p99Ms}`],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return { runId: config.runId || newRunId() };
}

export default function (data) {
  const event = events.event(events.id(data.runId));
  const response = http.post(url, JSON.stringify(event), params);
  const ok = check(response, {
    'status is 200': (r) => r.status === 200,
    'answers the event id': (r) => r.status === 200 && r.json('id') === event.id,
  });
  recordCall(1, ok ? 1 : 0, ok);
}

export const handleSummary = summaryHandler('rest-single', config, {
  endpoint: 'POST /v1/events',
  rate: `${config.rate} requests/s`,
  duration: config.duration.text,
  p99Ms: config.p99Ms,
});
