/**
 * Phase `auth`: what access control costs the ingest path. Ingest, query and the gateway run with
 * access control off (TALLY_AUTH=off), then on (TALLY_AUTH=on with a bootstrap admin key, and a
 * key with the ingest scope made for the load through KeysService, which the k6 scripts send as
 * API_KEY), through the same REST single, REST batch and gRPC stream searches. The stage with
 * access control on also gets the harness's TALLY_RATE_LIMIT* variables, so that it measures the
 * rate limits too whenever those are set. Then paired rounds: each load a step below the highest rate both
 * searches passed, access control off then on (on then off every other round), the processes
 * restarted for each, so that the cost is read from steps run side by side in time rather than
 * from two searches minutes apart.
 */
import { randomBytes } from 'node:crypto';
import { API_KEY_RANDOM_BYTES, formatApiKey } from '../../services/domain/api-keys.ts';
import { CONSUMER_ROLES } from '../lib/deployment.ts';
import { type Bench, expectLogged } from '../lib/harness.ts';
import { below, ingestLoads, type K6SeriesOptions, k6Series, k6Step } from '../lib/k6-series.ts';
import type { AuthPaired, AuthResult, AuthStage, Series } from '../lib/results.ts';
import type { Stepping } from '../plan.ts';

/** Where both stages' searches start. */
interface AuthSteppings {
  restSingle: Stepping;
  restBatch: Stepping;
  grpcStream: Stepping;
}

/** The prefix of the rate limits' variables: passed through to the stage with access control on. */
export const RATE_LIMIT_PREFIX = 'TALLY_RATE_LIMIT';

/** The scopes of the load's key: what writing events needs, and nothing more. */
const LOAD_SCOPES = ['ingest'];

export async function runAuth(b: Bench): Promise<void> {
  const { plan, results, deployment } = b;
  const a = plan.auth;
  // Only the ingest path runs: consumers would take CPU from it.
  await Promise.all(CONSUMER_ROLES.map((role) => deployment.stop(role)));
  // Both stages start a step below the maxima this run found (else the plan's): a step at the
  // same rate that both pass compares their CPU per event.
  const steppings: AuthSteppings = {
    restSingle: below(a.restSingle, results.restSingle?.best),
    restBatch: below(a.restBatch, results.restBatch?.best),
    grpcStream: below(a.grpcStream, results.grpcStream?.best),
  };
  const rateLimitEnv = Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => e[0].startsWith(RATE_LIMIT_PREFIX) && e[1] !== undefined,
    ),
  );
  const offEnv = { TALLY_AUTH: 'off' };
  const off = await authStage(b, false, offEnv, undefined, steppings);
  const auth: AuthResult = {
    stepSeconds: a.stepSeconds,
    off,
    rateLimitEnv,
    key: { kind: 'secret', scopes: LOAD_SCOPES, id: '' },
  };
  results.auth = auth;
  // A fresh bootstrap key each run: it is stored (hashed) in the run's schema, dropped with it.
  const adminKey = formatApiKey('secret', new Uint8Array(randomBytes(API_KEY_RANDOM_BYTES)));
  const onEnv = { TALLY_AUTH: 'on', TALLY_BOOTSTRAP_ADMIN_KEY: adminKey, ...rateLimitEnv };
  let loadKey: string | undefined;
  auth.on = await authStage(
    b,
    true,
    onEnv,
    async () => {
      const made = await createLoadKey(b, adminKey);
      auth.key.id = made.id;
      loadKey = made.key;
      return made.key;
    },
    steppings,
  );
  auth.pairedStepSeconds = plan.auth.pairedStepSeconds;
  auth.paired = await pairedRounds(b, auth, { off: offEnv, on: onEnv }, loadKey);
}

/**
 * Each load a step below the highest rate both stages passed, in `plan.auth.pairedRounds` rounds of a step
 * with access control off and one with it on, alternating which goes first.
 */
async function pairedRounds(
  b: Bench,
  auth: AuthResult,
  envs: { off: Record<string, string>; on: Record<string, string> },
  apiKey: string | undefined,
): Promise<AuthPaired[]> {
  const { plan, progress } = b;
  const loads = ingestLoads(b);
  const loadOf = {
    restSingle: loads.restSingleLoad,
    restBatch: loads.restBatchLoad,
    grpcStream: loads.grpcStreamLoad,
  };
  const paired: AuthPaired[] = [];
  for (const load of ['restSingle', 'restBatch', 'grpcStream'] as const) {
    const rate = pairedRate(auth.off[load], auth.on?.[load]);
    if (rate !== undefined) paired.push({ load, rate, off: [], on: [] });
  }
  if (paired.length === 0) return paired;
  for (let round = 0; round < plan.auth.pairedRounds; round++)
    for (const on of round % 2 === 0 ? [false, true] : [true, false]) {
      progress(`paired round ${round + 1} of ${plan.auth.pairedRounds}: access control ${on ? 'on' : 'off'}`);
      await restart(b, on, on ? envs.on : envs.off);
      if (on) await checkCredential(b, apiKey);
      for (const p of paired) {
        const load = loadOf[p.load];
        const step = await k6Step(b, {
          ...load,
          name: `auth-paired-${round + 1}-${on ? 'on' : 'off'}-${p.load}-${p.rate}`,
          rate: p.rate,
          seconds: plan.auth.pairedStepSeconds,
          env: (rate) => ({ ...load.env(rate), ...(on && apiKey ? { API_KEY: apiKey } : {}) }),
        });
        progress(
          `  ${p.load} at ${p.rate}/s: ${Math.round(step.achievedEvents)} events/s, ${step.passed ? 'pass' : `FAIL (${step.why})`}`,
        );
        (on ? p.on : p.off).push(step);
      }
    }
  return paired;
}

/**
 * The rate of the paired rounds: the second highest at which both searches passed a step (the
 * highest when there is one; else the lower of the two searches' highest passes): a step at the
 * edge of saturation fails in some rounds and not in others.
 */
function pairedRate(a: Series | undefined, b: Series | undefined): number | undefined {
  const passed = (s: Series | undefined) => (s?.steps ?? []).filter((x) => x.passed).map((x) => x.rate);
  const other = new Set(passed(b));
  const both = passed(a)
    .filter((rate) => other.has(rate))
    .sort((x, y) => y - x);
  if (both.length > 0) return both[1] ?? both[0];
  const highest = [passed(a), passed(b)].map((rates) => Math.max(...rates));
  return highest.every(Number.isFinite) ? Math.min(...highest) : undefined;
}

/** Restarts ingest, query and the gateway with `env`, and checks they say access control is as asked. */
async function restart(b: Bench, on: boolean, env: Record<string, string>): Promise<void> {
  const { deployment } = b;
  await Promise.all((['gateway', 'ingest', 'query'] as const).map((role) => deployment.stop(role)));
  await Promise.all([deployment.start('ingest', env), deployment.start('query', env)]);
  await deployment.start('gateway', env);
  for (const role of ['ingest', 'query'] as const)
    expectLogged(
      b,
      role,
      [on ? '"msg":"access control on"' : '"msg":"access control off'],
      `that access control is ${on ? 'on' : 'off'}`,
    );
}

/**
 * Restarts ingest, query and the gateway with `env`, makes the load's credential when
 * `credential` is given, and runs the three searches with it.
 */
async function authStage(
  b: Bench,
  on: boolean,
  env: Record<string, string>,
  credential: (() => Promise<string>) | undefined,
  steppings: AuthSteppings,
): Promise<AuthStage> {
  const { plan, progress } = b;
  const name = `auth-${on ? 'on' : 'off'}`;
  const limits = Object.keys(env).filter((k) => k.startsWith(RATE_LIMIT_PREFIX));
  progress(
    `access control ${on ? `on (a bootstrap admin key, a key with the ingest scope for the load${limits.length > 0 ? `; ${limits.join(', ')}` : ''})` : 'off'}: restarting ingest, query and the gateway`,
  );
  await restart(b, on, env);
  const apiKey = credential ? await credential() : undefined;
  if (on) await checkCredential(b, apiKey);
  const { restSingleLoad, restBatchLoad, grpcStreamLoad } = ingestLoads(b);
  const series = (
    label: string,
    stepping: Stepping,
    load: Omit<K6SeriesOptions, 'label' | 'stepping' | 'seconds'>,
  ) =>
    k6Series(b, {
      ...load,
      label: `${name}-${label}`,
      stepping,
      seconds: plan.auth.stepSeconds,
      env: (rate) => ({ ...load.env(rate), ...(apiKey ? { API_KEY: apiKey } : {}) }),
      // The key store reads PostgreSQL (a key's record is cached for 2 s).
      columns: [...load.columns.filter((c) => c !== 'k6'), 'postgres', 'k6'],
    });
  return {
    on,
    restSingle: await series('rest-single', steppings.restSingle, restSingleLoad),
    restBatch: await series('rest-batch', steppings.restBatch, restBatchLoad),
    grpcStream: await series('grpc-stream', steppings.grpcStream, grpcStreamLoad),
  };
}

/** The load's key, made as an operator would: `POST /v1/keys` with the bootstrap admin key. */
async function createLoadKey(b: Bench, adminKey: string): Promise<{ key: string; id: string }> {
  const { deployment, ns, progress } = b;
  const response = await fetch(`http://127.0.0.1:${deployment.httpPort}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: `bench load ${ns.id}`, kind: 'secret', scopes: LOAD_SCOPES }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`POST /v1/keys answered ${response.status}: ${text.slice(0, 500)}`);
  const { key, record } = JSON.parse(text) as { key?: string; record?: { id?: string } };
  if (!key || !record?.id) throw new Error(`POST /v1/keys answered no key: ${text.slice(0, 200)}`);
  progress(`made the load's key ${record.id} (scopes ${LOAD_SCOPES.join(',')}) through KeysService`);
  return { key, id: record.id };
}

/**
 * With access control on, an event sent without a credential is refused (the stage really checks)
 * and one sent with the load's key is accepted (which also warms the key's cache in ingest).
 */
async function checkCredential({ deployment }: Bench, apiKey: string | undefined): Promise<void> {
  const send = async (headers: Record<string, string>) => {
    const response = await fetch(`http://127.0.0.1:${deployment.httpPort}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ type: 'bench', target: 'bench/auth', userId: 'bench' }),
    });
    return { status: response.status, text: await response.text() };
  };
  const without = await send({});
  if (without.status !== 401)
    throw new Error(
      `an event without a credential was answered ${without.status}, not 401: access control is not on`,
    );
  if (apiKey === undefined) return;
  const withKey = await send({ authorization: `Bearer ${apiKey}` });
  if (withKey.status !== 200)
    throw new Error(
      `an event with the load's key was answered ${withKey.status}: ${withKey.text.slice(0, 300)}`,
    );
}
