/**
 * gRPC client streams like loadtest/grpc-stream.js (`tally.v1.IngestService/PublishStream`,
 * STREAM_EVENTS events of the same mix per stream, RATE streams per second, the same settings,
 * checks and JSON summary), with the load generator's own cost cut down: each VU builds a pool of
 * events once, in its init, and each stream sends them with the iteration's ids. Generating every
 * event in k6's JavaScript costs more CPU than ingesting it costs Tally, which on one machine caps
 * what the service can be shown to do.
 */
import { check } from 'k6';
import exec from 'k6/execution';
import { Trend } from 'k6/metrics';
import { Stream } from 'k6/net/grpc';
import {
  arrivalScenario,
  envNumber,
  grpcParams,
  ingestThresholds,
  loadConfig,
  SUMMARY_TREND_STATS,
} from '../loadtest/lib/config.js';
import { EventFactory, newRunId } from '../loadtest/lib/events.js';
import { connectOnce, ingestClient, PUBLISH_STREAM } from '../loadtest/lib/grpc.js';
import { recordCall } from '../loadtest/lib/metrics.js';
import { summaryHandler } from '../loadtest/lib/summary.js';

const streamEvents = envNumber('STREAM_EVENTS', 100, { min: 1, max: 100_000, integer: true });
const config = loadConfig({ rate: 2, p99Ms: 20 + streamEvents });
const events = new EventFactory(config, 'gp');
const client = ingestClient();
const connection = { connected: false };
/** The VU's events, sent by every stream of the VU with the stream's own ids. */
const pool = Array.from({ length: streamEvents }, () => events.event(''));

const streamDuration = new Trend('tally_stream_duration', true);

export const options = {
  scenarios: { grpc_stream_prebuilt: arrivalScenario(config) },
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
  const prefix = `${data.runId}-gp-${exec.scenario.iterationInTest}`;
  const startedAt = Date.now();
  const outcome = { accepted: undefined, error: undefined };
  const stream = new Stream(client, PUBLISH_STREAM, grpcParams(config, { timeout: '30s' }));
  stream.on('data', (response) => {
    outcome.accepted = Number(response.accepted);
  });
  stream.on('error', (error) => {
    outcome.error = error;
  });
  stream.on('end', () => {
    streamDuration.add(Date.now() - startedAt);
    const ok = check(outcome, {
      'stream ends without error': (o) => o.error === undefined,
      'accepts every event': (o) => o.accepted === streamEvents,
    });
    if (outcome.error) console.warn(`stream failed: ${JSON.stringify(outcome.error)}`);
    recordCall(streamEvents, ok ? streamEvents : 0, ok);
  });
  for (let i = 0; i < streamEvents; i++) {
    const event = pool[i];
    event.id = `${prefix}-${i}`;
    stream.write({ event });
  }
  stream.end();
}

export const handleSummary = summaryHandler('grpc-stream-prebuilt', config, {
  method: PUBLISH_STREAM,
  rate: `${config.rate} streams/s`,
  streamEvents,
  eventsPerSecond: config.rate * streamEvents,
  duration: config.duration.text,
  p99Ms: config.p99Ms,
});
