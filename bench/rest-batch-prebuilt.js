/**
 * REST batches like loadtest/rest-batch.js (`POST /v1/events:batch`, BATCH_SIZE events of the
 * same mix, RATE batches per second, the same settings and JSON summary), but with the load
 * generator's own cost cut down: each VU builds a few batch bodies once, in its init, and each
 * iteration only stamps the iteration's ids into one of them. Generating and serialising every
 * event in k6's JavaScript costs about as much CPU as the service spends ingesting it, which on
 * one machine caps what the service can be shown to do.
 *
 * Ids stay unique per event (`<run id>-rp-<iteration>-<index>`); event times are those of the
 * VU's start (a few seconds old, within the service's lateness bound).
 */
import { check } from 'k6';
import exec from 'k6/execution';
import http from 'k6/http';
import {
  arrivalScenario,
  envNumber,
  ingestThresholds,
  loadConfig,
  SUMMARY_TREND_STATS,
  withCredential,
} from '../loadtest/lib/config.js';
import { EventFactory, newRunId } from '../loadtest/lib/events.js';
import { recordCall } from '../loadtest/lib/metrics.js';
import { summaryHandler } from '../loadtest/lib/summary.js';

const batchSize = envNumber('BATCH_SIZE', 100, { min: 1, max: 1000, integer: true });
const config = loadConfig({ rate: 5, p99Ms: 20 + batchSize });
const events = new EventFactory(config, 'rp');
const url = `${config.httpUrl}/v1/events:batch`;
const params = {
  headers: withCredential(config, { 'content-type': 'application/json' }),
  tags: { name: 'POST /v1/events:batch' },
  timeout: '10s',
};

/** A few bodies per VU, each event's id a placeholder the iteration replaces. */
const TEMPLATES = 8;
const PLACEHOLDER = '@@ID@@';
const templates = Array.from({ length: TEMPLATES }, () =>
  JSON.stringify({
    events: Array.from({ length: batchSize }, (_, i) => events.event(`${PLACEHOLDER}-${i}`)),
  }),
);

export const options = {
  scenarios: { rest_batch_prebuilt: arrivalScenario(config) },
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
  const iteration = exec.scenario.iterationInTest;
  const prefix = `${data.runId}-rp-${iteration}`;
  const body = templates[iteration % TEMPLATES].replaceAll(PLACEHOLDER, prefix);
  const response = http.post(url, body, params);
  const ok = check(response, {
    'status is 200': (r) => r.status === 200,
    'answers every id in order': (r) => r.status === 200 && sameIds(r.json('ids'), prefix),
  });
  recordCall(batchSize, ok ? batchSize : 0, ok);
}

function sameIds(ids, prefix) {
  if (!Array.isArray(ids) || ids.length !== batchSize) return false;
  for (let i = 0; i < batchSize; i++) if (ids[i] !== `${prefix}-${i}`) return false;
  return true;
}

export const handleSummary = summaryHandler('rest-batch-prebuilt', config, {
  endpoint: 'POST /v1/events:batch',
  rate: `${config.rate} batches/s`,
  batchSize,
  eventsPerSecond: config.rate * batchSize,
  duration: config.duration.text,
  p99Ms: config.p99Ms,
});
