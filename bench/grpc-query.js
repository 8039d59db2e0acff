/**
 * The query path under an open-model load: `tally.v1.QueryService/GetCounters` (QUERY=counters,
 * the default), `GetReport` (QUERY=report) or `GetWindows` (QUERY=windows) at RATE calls per
 * second, one HTTP/2 connection per VU, to TALLY_GRPC (the query role). Settings and the JSON summary are the load tests' own
 * (loadtest/lib: RATE, DURATION, VUS, MAX_VUS, TARGETS, ZIPF_S, P99_MS, SUMMARY_JSON, …), plus:
 *
 *   QUERY              counters | report | windows
 *   REPORT_FIRST_DATE  first seeded date, YYYY-MM-DD (report)
 *   REPORT_DAYS        seeded days from it (report; default 1)
 *   WINDOW_USERS       users with aggregates, `<WINDOW_USER_PREFIX><k>` for k = 1…N (windows)
 *   WINDOW_USER_PREFIX their ids' prefix (windows; default win-user-)
 *   WINDOW_TYPE        the event type (windows; default transaction)
 *   WINDOWS            the windows of each call, comma-separated (windows; default 1h,6h,24h)
 *
 * GetCounters asks for the mix's targets with their Zipf popularity (as dashboards would);
 * GetReport for a target of the seeded ones (TARGETS per family, uniformly) and a seeded day;
 * GetWindows for a user of the WINDOW_USERS, uniformly (every user active, none cached by
 * popularity), all the windows in one call.
 */
import { check } from 'k6';
import grpc from 'k6/net/grpc';
import {
  arrivalScenario,
  envNumber,
  envString,
  grpcParams,
  ingestThresholds,
  loadConfig,
  SUMMARY_TREND_STATS,
} from '../loadtest/lib/config.js';
import { Zipf } from '../loadtest/lib/events.js';
import { recordCall } from '../loadtest/lib/metrics.js';
import { summaryHandler } from '../loadtest/lib/summary.js';

const query = envString('QUERY', 'counters');
if (query !== 'counters' && query !== 'report' && query !== 'windows')
  throw new Error(`QUERY: must be counters, report or windows, not ${JSON.stringify(query)}`);
const config = loadConfig({ rate: 1000, p99Ms: query === 'report' ? 10 : 5 });
const firstDate = envString('REPORT_FIRST_DATE', new Date().toISOString().slice(0, 10));
if (!/^\d{4}-\d{2}-\d{2}$/.test(firstDate))
  throw new Error(`REPORT_FIRST_DATE: must be YYYY-MM-DD, not ${JSON.stringify(firstDate)}`);
const reportDays = envNumber('REPORT_DAYS', 1, { min: 1, max: 3660, integer: true });
const firstDayMs = Date.parse(`${firstDate}T00:00:00Z`);

const windowUsers = envNumber('WINDOW_USERS', 100_000, { min: 1, max: 100_000_000, integer: true });
const windowUserPrefix = envString('WINDOW_USER_PREFIX', 'win-user-');
const windowType = envString('WINDOW_TYPE', 'transaction');
const windows = envString('WINDOWS', '1h,6h,24h').split(',');

const METHOD = {
  counters: 'tally.v1.QueryService/GetCounters',
  report: 'tally.v1.QueryService/GetReport',
  windows: 'tally.v1.QueryService/GetWindows',
}[query];
const FAMILIES = ['https://shop.example/p/', 'post/', 'merchant/'];
const ranks = new Zipf(config.targets, config.zipfExponent);

const client = new grpc.Client();
client.load(
  [import.meta.resolve('../proto'), import.meta.resolve('../node_modules/google-proto-files')],
  'tally/v1/query.proto',
);
const connection = { connected: false };

export const options = {
  scenarios: { [`grpc_${query}`]: arrivalScenario(config) },
  thresholds: {
    ...ingestThresholds(config),
    grpc_req_duration: [`p(99)<${config.p99Ms}`],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

export default function () {
  if (!connection.connected) {
    client.connect(config.grpcAddr, { plaintext: true, timeout: '10s' });
    connection.connected = true;
  }
  let request;
  if (query === 'counters') {
    request = { target: `${pick(FAMILIES)}${ranks.sample()}` };
  } else if (query === 'windows') {
    request = {
      userId: `${windowUserPrefix}${1 + Math.floor(Math.random() * windowUsers)}`,
      type: windowType,
      windows,
    };
  } else {
    const day = new Date(firstDayMs + Math.floor(Math.random() * reportDays) * 86_400_000);
    const k = 1 + Math.floor(Math.random() * config.targets);
    request = { target: `${pick(FAMILIES)}${k}`, date: day.toISOString().slice(0, 10) };
  }
  const response = client.invoke(METHOD, request, grpcParams(config, { timeout: '10s' }));
  const ok = check(response, {
    'status is OK': (r) => r?.status === grpc.StatusOK,
    'answers for the target': (r) =>
      r?.status === grpc.StatusOK &&
      (query === 'windows'
        ? r.message.userId === request.userId && r.message.windows.length === windows.length
        : r.message.target === request.target && (query === 'counters' || r.message.hours.length === 24)),
  });
  recordCall(0, 0, ok);
}

export const handleSummary = summaryHandler(`grpc-${query}`, config, {
  method: METHOD,
  rate: `${config.rate} calls/s`,
  duration: config.duration.text,
  p99Ms: config.p99Ms,
  ...(query === 'report' ? { firstDate, reportDays } : {}),
  ...(query === 'windows' ? { windowUsers, windowType, windows: windows.join(',') } : {}),
});
