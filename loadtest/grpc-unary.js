/**
 * gRPC, one event per call: `tally.v1.IngestService/Publish` at RATE calls per second
 * (default 50) over one HTTP/2 connection per VU, each answered with the event id once the
 * event log acknowledged the event.
 */
import { check } from 'k6';
import grpc from 'k6/net/grpc';
import {
  arrivalScenario,
  grpcParams,
  ingestThresholds,
  loadConfig,
  SUMMARY_TREND_STATS,
} from './lib/config.js';
import { EventFactory, newRunId } from './lib/events.js';
import { connectOnce, ingestClient, PUBLISH } from './lib/grpc.js';
import { recordCall } from './lib/metrics.js';
import { summaryHandler } from './lib/summary.js';

const config = loadConfig({ rate: 50, p99Ms: 20 });
const events = new EventFactory(config, 'gu');
const client = ingestClient();
const connection = { connected: false };

export const options = {
  scenarios: { grpc_unary: arrivalScenario(config) },
  thresholds: {
    ...ingestThresholds(config),
    grpc_req_duration: [`p(99)<${config.p99Ms}`],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return { runId: config.runId || newRunId() };
}

export default function (data) {
  connectOnce(client, connection, config.grpcAddr);
  const event = events.event(events.id(data.runId));
  const response = client.invoke(PUBLISH, { event }, grpcParams(config, { timeout: '10s' }));
  const ok = check(response, {
    'status is OK': (r) => r?.status === grpc.StatusOK,
    'answers the event id': (r) => r?.status === grpc.StatusOK && r.message.id === event.id,
  });
  recordCall(1, ok ? 1 : 0, ok);
}

export const handleSummary = summaryHandler('grpc-unary', config, {
  method: PUBLISH,
  rate: `${config.rate} calls/s`,
  duration: config.duration.text,
  p99Ms: config.p99Ms,
});
