/**
 * The load tests' settings, read once from the environment (k6 `__ENV`, set with `-e NAME=value`
 * or exported). A bad value stops k6 at start-up with a message naming the variable.
 */

/** Reads `name` from the environment, `fallback` when unset or empty. */
function raw(name) {
  const value = __ENV[name];
  return value === undefined || value === '' ? undefined : value;
}

/** A string setting. */
export function envString(name, fallback) {
  return raw(name) ?? fallback;
}

/** A finite number setting within [min, max]. */
export function envNumber(name, fallback, { min = -Infinity, max = Infinity, integer = false } = {}) {
  const text = raw(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    const kind = integer ? 'an integer' : 'a number';
    throw new Error(`${name}: must be ${kind} between ${min} and ${max}, not ${JSON.stringify(text)}`);
  }
  return value;
}

/** A duration setting in k6 syntax (`30s`, `2m`, `1m30s`, `500ms`), returned as text and as seconds. */
export function envDuration(name, fallback) {
  const text = raw(name) ?? fallback;
  const seconds = durationSeconds(text);
  if (seconds === undefined || seconds <= 0)
    throw new Error(`${name}: must be a duration such as 30s, 2m or 1m30s, not ${JSON.stringify(text)}`);
  return { text, seconds };
}

const UNIT_SECONDS = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** Seconds of a duration such as `1m30s`; undefined when it is not one. */
export function durationSeconds(text) {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g))
    total += Number(amount) * UNIT_SECONDS[unit];
  return total;
}

/**
 * The settings every script shares. `defaults` gives the script's own defaults:
 * `rate` (iterations per second) and `p99Ms` (its latency bound).
 */
export function loadConfig(defaults) {
  const rate = envNumber('RATE', defaults.rate, { min: 0.001, max: 100_000 });
  const duration = envDuration('DURATION', '10s');
  // Enough VUs for responses of 100 ms at the start, and of 1 s before iterations are dropped.
  const vus = envNumber('VUS', Math.max(5, Math.ceil(rate * 0.1)), { min: 1, max: 10_000, integer: true });
  const maxVUs = envNumber('MAX_VUS', Math.max(vus, 50, Math.ceil(rate)), {
    min: vus,
    max: 10_000,
    integer: true,
  });
  const httpUrl = envString('TALLY_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+$/.test(httpUrl))
    throw new Error(`TALLY_URL: must be http://host:port (no path), not ${JSON.stringify(httpUrl)}`);
  const runId = envString('RUN_ID', '');
  if (runId !== '' && !/^[A-Za-z0-9][A-Za-z0-9-]{0,31}$/.test(runId))
    throw new Error(`RUN_ID: must be 1 to 32 letters, digits and -, not ${JSON.stringify(runId)}`);
  const apiKey = envString('API_KEY', '');
  if (!/^[\x21-\x7e]*$/.test(apiKey))
    throw new Error('API_KEY: must be printable ASCII without spaces (a tly_sk_ or tly_ik_ key, or a JWT)');
  const grpcAddr = envString('TALLY_GRPC', '127.0.0.1:50051');
  if (!/^[^/]+:\d+$/.test(grpcAddr))
    throw new Error(`TALLY_GRPC: must be host:port, not ${JSON.stringify(grpcAddr)}`);
  return Object.freeze({
    rate,
    duration,
    vus,
    maxVUs,
    httpUrl,
    wsUrl: httpUrl.replace(/^http/, 'ws'),
    grpcAddr,
    /** Catalogue size of each target family (pages, posts, merchants). */
    targets: envNumber('TARGETS', 1000, { min: 1, max: 10_000_000, integer: true }),
    users: envNumber('USERS', 100_000, { min: 1, max: 100_000_000, integer: true }),
    /** Zipf exponent of target popularity. */
    zipfExponent: envNumber('ZIPF_S', 1.1, { min: 0.01, max: 10 }),
    p99Ms: envNumber('P99_MS', defaults.p99Ms, { min: 0.1 }),
    maxErrorRate: envNumber('MAX_ERROR_RATE', 0.001, { min: 0, max: 1 }),
    summaryJson: envString('SUMMARY_JSON', ''),
    runId,
    /** The credential every call sends (`Authorization: Bearer`, gRPC metadata); empty: none. */
    apiKey,
  });
}

/** HTTP headers with the credential of API_KEY added, when one is given. */
export function withCredential(config, headers) {
  return config.apiKey === '' ? headers : { ...headers, authorization: `Bearer ${config.apiKey}` };
}

/** gRPC call parameters with the credential of API_KEY as `authorization` metadata, when one is given. */
export function grpcParams(config, params) {
  return config.apiKey === ''
    ? params
    : { ...params, metadata: { authorization: `Bearer ${config.apiKey}` } };
}

/**
 * A `constant-arrival-rate` scenario: `rate` iterations per second whatever the response
 * times (an open model), with VUs added up to `maxVUs` when responses slow down.
 */
export function arrivalScenario(config, extra = {}) {
  // The executor takes an integer rate per time unit: 0.5/s is 500 per 1000 s, evenly spaced.
  const whole = Number.isInteger(config.rate);
  return {
    executor: 'constant-arrival-rate',
    rate: whole ? config.rate : Math.round(config.rate * 1000),
    timeUnit: whole ? '1s' : '1000s',
    duration: config.duration.text,
    preAllocatedVUs: config.vus,
    maxVUs: config.maxVUs,
    gracefulStop: '10s',
    ...extra,
  };
}

/** Iterations an arrival scenario plans: the base of the dropped-iterations budget. */
export function plannedIterations(config) {
  return Math.floor(config.rate * config.duration.seconds);
}

/**
 * Thresholds every ingest script shares: failed calls and failed checks within the error budget
 * (MAX_ERROR_RATE, default 0.1%), and iterations the executor could not start (every VU busy:
 * the service fell behind the offered rate) within the same budget of the planned ones.
 */
export function ingestThresholds(config) {
  const dropped = Math.floor(plannedIterations(config) * config.maxErrorRate);
  return {
    checks: [`rate>=${1 - config.maxErrorRate}`],
    tally_requests_failed: [`rate<=${config.maxErrorRate}`],
    dropped_iterations: [`count<=${dropped}`],
  };
}

/** The trend columns of the summaries (k6's default lacks p(99)). */
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];
