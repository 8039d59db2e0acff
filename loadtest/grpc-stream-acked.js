/**
 * gRPC bidirectional streams with acknowledgements: `tally.v1.IngestService/PublishStreamAcked` at
 * RATE streams per second (default 2), each writing STREAM_EVENTS events (default 100) in messages
 * of MESSAGE_EVENTS (default 10), and ending once every event was answered. Events are numbered by
 * their position in the stream; the server answers `acked` ranges as the log acknowledges them.
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
import { connectOnce, ingestClient, PUBLISH_STREAM_ACKED } from './lib/grpc.js';
import { recordCall } from './lib/metrics.js';
import { summaryHandler } from './lib/summary.js';

const streamEvents = envNumber('STREAM_EVENTS', 100, { min: 1, max: 100_000, integer: true });
const messageEvents = envNumber('MESSAGE_EVENTS', 10, { min: 1, max: 1000, integer: true });
// Each message is acked on its own: the single-event bound plus 1 ms per event of a message.
const config = loadConfig({ rate: 2, p99Ms: 20 + messageEvents });
const events = new EventFactory(config, 'ga');
const client = ingestClient();
const connection = { connected: false };

/** From writing a message to the answer that acknowledges its last event. */
const ackDelay = new Trend('tally_ack_delay', true);

export const options = {
  scenarios: { grpc_stream_acked: arrivalScenario(config) },
  thresholds: {
    ...ingestThresholds(config),
    tally_ack_delay: [`p(99)<${config.p99Ms}`],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return { runId: config.runId || newRunId() };
}

/** A uint64 of the JSON mapping (a string) as a number. */
const num = (value) => Number(value ?? 0);

export default function (data) {
  connectOnce(client, connection, config.grpcAddr);
  /** Per message: its last sequence number and when it was written. */
  const messages = [];
  const answered = new Set();
  const outcome = { acked: 0, refused: 0, failed: 0, twice: 0, error: undefined };
  const stream = new Stream(client, PUBLISH_STREAM_ACKED, grpcParams(config, { timeout: '30s' }));
  const mark = (first, last) => {
    for (let seq = first; seq <= last; seq++) {
      if (answered.has(seq)) outcome.twice++;
      answered.add(seq);
    }
  };
  stream.on('data', (response) => {
    const acked = response.acked;
    if (acked) {
      const first = num(acked.firstSeq ?? acked.first_seq);
      const last = num(acked.lastSeq ?? acked.last_seq);
      mark(first, last);
      outcome.acked += last - first + 1;
      const now = Date.now();
      for (const m of messages)
        if (!m.done && m.last <= last && m.last >= first) {
          m.done = true;
          ackDelay.add(now - m.writtenAt);
        }
    } else if (response.refused) {
      mark(num(response.refused.seq), num(response.refused.seq));
      outcome.refused++;
    } else if (response.failed) {
      const first = num(response.failed.firstSeq ?? response.failed.first_seq);
      const last = num(response.failed.lastSeq ?? response.failed.last_seq);
      mark(first, last);
      outcome.failed += last - first + 1;
    }
  });
  stream.on('error', (error) => {
    outcome.error = error;
  });
  // 'end' comes once the server answered every event and ended the call (or the error).
  stream.on('end', () => {
    const ok = check(outcome, {
      'stream ends without error': (o) => o.error === undefined,
      'acks every event': (o) => o.acked === streamEvents,
      'answers each event once': (o) => o.twice === 0 && answered.size === streamEvents,
    });
    if (outcome.error) console.warn(`stream failed: ${JSON.stringify(outcome.error)}`);
    recordCall(streamEvents, outcome.acked, ok);
  });
  let seq = 0;
  while (seq < streamEvents) {
    const count = Math.min(messageEvents, streamEvents - seq);
    const batch = [];
    for (let i = 0; i < count; i++) batch.push(events.event(events.id(data.runId, seq + i)));
    seq += count;
    messages.push({ last: seq, writtenAt: Date.now(), done: false });
    stream.write({ events: batch });
  }
  stream.end();
}

export const handleSummary = summaryHandler('grpc-stream-acked', config, {
  method: PUBLISH_STREAM_ACKED,
  rate: `${config.rate} streams/s`,
  streamEvents,
  messageEvents,
  eventsPerSecond: config.rate * streamEvents,
  duration: config.duration.text,
  p99Ms: config.p99Ms,
});
