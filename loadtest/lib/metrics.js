/**
 * The custom metrics every ingest script reports, so a harness reads the same names from each
 * summary: events put on the wire, events acknowledged with their own id, and failed calls.
 */
import { Counter, Rate } from 'k6/metrics';

/** Events sent (each event of a batch or stream counts once). */
export const eventsSent = new Counter('tally_events_sent');
/** Events the service acknowledged with the id they were sent with. */
export const eventsAccepted = new Counter('tally_events_accepted');
/** Calls (a request, a batch, a stream) that failed or answered something unexpected. */
export const requestsFailed = new Rate('tally_requests_failed');

/** Records one call that carried `sent` events of which `accepted` were acknowledged. */
export function recordCall(sent, accepted, ok) {
  eventsSent.add(sent);
  eventsAccepted.add(accepted);
  requestsFailed.add(!ok);
}
