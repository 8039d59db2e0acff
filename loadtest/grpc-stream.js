/**
 * gRPC client streams: `tally.v1.IngestService/PublishStream` at RATE streams per second
 * (default 2), each writing STREAM_EVENTS events (default 100) and answered `{accepted}` once the
 * stream ended and the event log acknowledged every event.
 */
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { Stream } from 'k6/net/grpc';
import {
  arrivalScenario,
  envNumber,
  grpcParams,
  ingestThresholds,
  loadConfig,
  SUMMARY_TREND_STATS,
} from './lib/config.js';
import { EventFactory, newRunId } from './lib/events.js';
import { connectOnce, ingestClient, PUBLISH_STREAM } from './lib/grpc.js';
import { recordCall } from './lib/metrics.js';
import { summaryHandler } from './lib/summary.js';

const streamEvents = envNumber('STREAM_EVENTS', 100, { min: 1, max: 100_000, integer: true });
// The single-event bound plus 1 ms per event carried: 120 ms for 100 events.
const config = loadConfig({ rate: 2, p99Ms: 20 + streamEvents });
const events = new EventFactory(config, 'gs');
const client = ingestClient();
const connection = { connected: false };

/** From opening the stream to its answer: the whole call, as the client waits for it. */
const streamDuration = new Trend('tally_stream_duration', true);

export const options = {
  scenarios: { grpc_stream: arrivalScenario(config) },
  thresholds: {
    ...ingestThresholds(config),
    tally_stream_duration: [`p(99)<${config.p99Ms}`],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return { runId: config.runId || newRunId() };
}

export default function (data) {
  connectOnce(client, connection, config.grpcAddr);
  const startedAt = Date.now();
  const outcome = { accepted: undefined, error: undefined };
  const stream = new Stream(client, PUBLISH_STREAM, grpcParams(config, { timeout: '30s' }));
  stream.on('data', (response) => {
    outcome.accepted = Number(response.accepted);
  });
  stream.on('error', (error) => {
    outcome.error = error;
  });
  // 'end' comes after the answer (or the error): the iteration ends with the call.
  stream.on('end', () => {
    streamDuration.add(Date.now() - startedAt);
    const ok = check(outcome, {
      'stream ends without error': (o) => o.error === undefined,
      'accepts every event': (o) => o.accepted === streamEvents,
    });
    if (outcome.error) console.warn(`stream failed: ${JSON.stringify(outcome.error)}`);
    recordCall(streamEvents, ok ? streamEvents : 0, ok);
  });
  for (let i = 0; i < streamEvents; i++) stream.write({ event: events.event(events.id(data.runId, i)) });
  stream.end();
}

export const handleSummary = summaryHandler('grpc-stream', config, {
  method: PUBLISH_STREAM,
  rate: `${config.rate} streams/s`,
  streamEvents,
  eventsPerSecond: config.rate * streamEvents,
  duration: config.duration.text,
  p99Ms: config.p99Ms,
});
