/**
 * REST batches: `POST /v1/events:batch` at RATE requests per second (default 5), each carrying
 * BATCH_SIZE events (default 100) and answered `{"ids":[…]}` in request order once the event log
 * acknowledged all of them.
 */
import { check } from 'k6';
import http from 'k6/http';
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

const batchSize = envNumber('BATCH_SIZE', 100, { min: 1, max: 1000, integer: true });
// The single-event bound plus 1 ms per event carried: 120 ms for 100 events.
const config = loadConfig({ rate: 5, p99Ms: 20 + batchSize });
const events = new EventFactory(config, 'rb');
const url = `${config.httpUrl}/v1/events:batch`;
const params = {
  headers: withCredential(config, { 'content-type': 'application/json' }),
  tags: { name: 'POST /v1/events:batch' },
  timeout: '10s',
};

export const options = {
  scenarios: { rest_batch: arrivalScenario(config) },
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
  const batch = Array.from({ length: batchSize }, (_, i) => events.event(events.id(data.runId, i)));
  const response = http.post(url, JSON.stringify({ events: batch }), params);
  const ok = check(response, {
    'status is 200': (r) => r.status === 200,
    'answers every id in order': (r) => r.status === 200 && sameIds(r.json('ids'), batch),
  });
  recordCall(batchSize, ok ? batchSize : 0, ok);
}

function sameIds(ids, batch) {
  return Array.isArray(ids) && ids.length === batch.length && batch.every((e, i) => ids[i] === e.id);
}

export const handleSummary = summaryHandler('rest-batch', config, {
  endpoint: 'POST /v1/events:batch',
  rate: `${config.rate} batches/s`,
  batchSize,
  eventsPerSecond: config.rate * batchSize,
  duration: config.duration.text,
  p99Ms: config.p99Ms,
});
