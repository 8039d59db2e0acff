/**
 * The chaos run behind `make chaos`: real servers of its own, each consumer role as several
 * processes, the simulator sending events while processes are killed with SIGKILL, consumers
 * are added and removed, and Kafka, Redis and PostgreSQL are each restarted once. At the end,
 * once every consumer group has caught up, each sink is compared with exactly what Tally
 * acknowledged: events missing, events counted twice, sums, and per-user order (probe users
 * whose events must appear in every sink as a prefix of their sequence at every moment); and the
 * alerter's notifications of a milestone rule on the probes' targets with the thresholds their
 * acknowledged events crossed, one each in PostgreSQL and once per recipient on the topic; and a
 * webhook destination (`ordering: per_user`) whose filter takes the probes' events, routed and
 * sent by `router` and `sender` processes to a signed-webhook receiver in this process: each
 * acknowledged probe event there at least once (again only under its own `webhook-id`), none
 * else, and no user's events out of order.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import pg from 'pg';
import { ORDER_PROJECTION } from '../domain/projections.ts';
import { hourStart } from '../domain/report.ts';
import { type AppError, Code } from '../infra/app-error.ts';
import type { CounterStore } from '../infra/counters/counter-store.ts';
import { createRedisCounterStore } from '../infra/counters/redis-counter-store.ts';
import { generateSecret } from '../infra/delivery/webhook-signature.ts';
import type { EventLog } from '../infra/log/event-log.ts';
import { createKafkaEventLog } from '../infra/log/kafka-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { messageIdOf } from '../pipeline/delivery-record.ts';
import { decodeNotification } from '../pipeline/notification-codec.ts';
import { readTopic } from './milestone-run.ts';
import { createPrivateKafka, type PrivateKafka } from './private-kafka.ts';
import { createPrivatePostgres, type PrivatePostgres } from './private-postgres.ts';
import { createPrivateRedis, type PrivateRedis } from './private-redis.ts';
import { checkProjection } from './projection-check.ts';
import { CONSUMER_GROUPS, ingestClient } from './tally-client.ts';
import { freePort, startTally, type TallyProcess } from './tally-process.ts';

const TALLY = join(import.meta.dirname, '..', '..', 'bin', 'tally');
export const CONSUMER_ROLES = [
  'persister',
  'counter',
  'aggregator',
  'alerter',
  'router',
  'projector',
  'sender',
] as const;
type ConsumerRole = (typeof CONSUMER_ROLES)[number];

export type FaultKind = 'kill' | 'add' | 'remove' | 'restart-kafka' | 'restart-redis' | 'restart-postgres';

export interface ChaosOptions {
  /** Events the simulator sends (the order probes send more, counted too). */
  events: number;
  /** Events per second the simulator offers. */
  rate: number;
  /** Processes per consumer role. */
  replicas: number;
  /** SIGKILLs of a random consumer process, each followed by a restart. */
  kills: number;
  scenario: 'clickstream' | 'social' | 'transactions' | 'orders';
  /** Users whose events carry a sequence, checked for order in every sink while the run goes on. */
  probeUsers: number;
  partitions: number;
  seed: number;
  /** The Kafka client library of every process (TALLY_KAFKA_CLIENT); default kafkajs. */
  kafkaClient?: 'kafkajs' | 'platformatic';
  /** Starts the webhook receiver the run's destination delivers to (receiver/receiver.ts's `startReceiver`). */
  startReceiver: StartWebhookReceiver;
  /** Receives progress lines. */
  log: (line: string) => void;
}

export const CHAOS_DEFAULTS: Omit<ChaosOptions, 'log' | 'seed' | 'startReceiver'> = Object.freeze({
  events: 100_000,
  rate: 1500,
  replicas: 3,
  kills: 5,
  scenario: 'transactions',
  probeUsers: 12,
  partitions: 12,
});

/**
 * A signed-webhook receiver on loopback, as receiver/receiver.ts's `startReceiver` makes one (handed
 * in: test support imports no role): it verifies each delivery with `secrets` and tells
 * `onDelivery` what came of it.
 */
export type StartWebhookReceiver = (options: {
  port: number;
  host: string;
  secrets: readonly string[];
  failRate: number;
  failStatus: number;
  latencyMs: number;
  seed: number;
  toleranceSeconds: number;
  onDelivery?: (delivery: WebhookDelivery) => void;
}) => Promise<{ readonly url: string; close(): Promise<void> }>;

/** One delivery the receiver took (status 200) or refused. */
export interface WebhookDelivery {
  status: number;
  webhookId?: string;
  user?: string;
  /** The body's `seq`: the probe event's place in its user's order. */
  place?: number;
  /** Its `webhook-id` came before. */
  duplicate: boolean;
  /** Set when a higher place of its user came first. */
  outOfOrderAfter?: number;
}

/**
 * One sink's figures: every key (event id, counter, summary; notification, and notification and
 * recipient) compared with what was acknowledged.
 */
export interface SinkRow {
  sink: string;
  /**
   * What the figures count: events, the alerter's notifications (or their topic records), the
   * probe events delivered to the webhook receiver, or the projector's order entities (an entity
   * counts as missing when its stored state, attributes or last event differ from the fold of its
   * acknowledged events, or a live count differs from the stored entities').
   */
  unit: 'events' | 'notifications' | 'deliveries' | 'entities';
  /** Events acknowledged by Tally, or the notifications they must raise (what the sink should hold). */
  sent: number;
  /** What the sink holds (rows, or the sum of its counts). */
  counted: number;
  /** What the sink should hold and does not. */
  missing: number;
  /** What the sink holds more than once, or should not hold at all. */
  duplicated: number;
  /** Keys whose sum of values differs (undefined where the sink keeps no sums). */
  sumsDiffering: number | undefined;
}

export interface OrderRow {
  sink: string;
  users: number;
  /** Observations of one user's state in this sink. */
  samples: number;
  /** Observations that were not a prefix of the user's sequence. */
  outOfOrder: number;
  /** Observations that failed because the backend was away. */
  unavailable: number;
}

export interface FaultRecord {
  /** Seconds since the events started flowing. */
  atSeconds: number;
  kind: FaultKind;
  detail: string;
  /** Events the simulator had had acknowledged when the fault began. */
  acknowledgedBefore: number;
}

export interface ChaosResult {
  ok: boolean;
  rows: SinkRow[];
  order: OrderRow[];
  faults: FaultRecord[];
  /** Everything that went wrong, one line each; empty when ok. */
  problems: string[];
  /**
   * Records of the notifications topic that repeat one already there (the same notification, id
   * and seq, for the same recipient): a batch redelivered after its notifications were published.
   */
  repeatedNotificationRecords: number;
  /** Webhook deliveries the receiver took again under a `webhook-id` it already held (at least once). */
  repeatedDeliveries: number;
  /** The simulator's summary. */
  simulatorSummary: string;
  sendSeconds: number;
  catchUpSeconds: number;
  totalSeconds: number;
  processes: { started: number; killed: number; removed: number };
}

/** The faults of a run, in order: each kind at least once, `kills` SIGKILLs spread among them. */
export function faultPlan(kills: number): FaultKind[] {
  const others: FaultKind[] = ['add', 'restart-redis', 'restart-kafka', 'remove', 'restart-postgres'];
  const plan: FaultKind[] = [];
  const slots = others.length + 1;
  let killsLeft = kills;
  for (let i = 0; i < slots; i++) {
    const here = Math.ceil(killsLeft / (slots - i));
    for (let k = 0; k < here; k++) plan.push('kill');
    killsLeft -= here;
    if (i < others.length) plan.push(others[i]!);
  }
  return plan;
}

/** A small seeded generator (mulberry32): the same seed picks the same processes. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What Tally acknowledged, as the sinks should hold it. */
interface AcknowledgedEvent {
  id: string;
  type: string;
  target: string;
  userId: string;
  value: number;
  occurredAtMs: number;
  /** The event's attributes when it has some (an order's id, city and position). */
  attributes?: Record<string, string>;
}

interface Member {
  name: string;
  role: ConsumerRole | 'ingest';
  proc: TallyProcess;
  /** Set when the run itself stops the process. */
  expectedExit: boolean;
}

/** The role processes, started and stopped as the faults require; an exit nobody asked for is a problem. */
class Fleet {
  readonly members: Member[] = [];
  started = 0;
  killed = 0;
  removed = 0;
  readonly #env: Record<string, string>;
  readonly #problems: string[];
  readonly #say: (line: string) => void;
  readonly #serial = new Map<string, number>();
  readonly #pending = new Set<Promise<void>>();
  #closing = false;

  constructor(env: Record<string, string>, problems: string[], say: (line: string) => void) {
    this.#env = env;
    this.#problems = problems;
    this.#say = say;
  }

  async start(role: Member['role'], extraEnv: Record<string, string> = {}, name?: string): Promise<Member> {
    const serial = (this.#serial.get(role) ?? 0) + 1;
    if (!name) this.#serial.set(role, serial);
    const proc = await startTally([role], { ...this.#env, ...extraEnv }, 120_000);
    const member: Member = { name: name ?? `${role}#${serial}`, role, proc, expectedExit: false };
    this.members.push(member);
    this.started++;
    proc.exited.then((code) => {
      if (member.expectedExit || this.#closing) return;
      this.#problems.push(
        `${member.name} (pid ${proc.child.pid}) exited on its own with ${code ?? proc.child.signalCode}; last lines:\n    ${proc.lines.slice(-8).join('\n    ')}`,
      );
      this.#say(`${member.name} exited on its own; restarting it, as an orchestrator would`);
      this.#drop(member);
      this.#restart(role, extraEnv, member.name);
    });
    return member;
  }

  /**
   * Starts `name` again in the background, as an orchestrator would: a second later, and again
   * every 2 s while it fails to start (a backend it needs at start-up may be away), for 3 minutes.
   */
  #restart(role: Member['role'], extraEnv: Record<string, string>, name: string): void {
    if (this.#closing) return;
    const restart = (async () => {
      const deadline = performance.now() + 180_000;
      await sleep(1000);
      for (;;) {
        if (this.#closing) return;
        try {
          await this.start(role, extraEnv, name);
          return;
        } catch (error) {
          const why = String(error).split('\n')[0];
          if (performance.now() > deadline) {
            this.#problems.push(`${name} could not be started again for 3 minutes: ${why}`);
            return;
          }
          this.#say(`${name} failed to start (${why}); trying again in 2 s`);
          await sleep(2000);
        }
      }
    })();
    this.#pending.add(restart);
    restart.finally(() => this.#pending.delete(restart));
  }

  consumers(role?: ConsumerRole): Member[] {
    return this.members.filter((m) => m.role !== 'ingest' && (role === undefined || m.role === role));
  }

  /**
   * SIGKILL, then the same role again under the same name, a second later, in the background:
   * the new process joins its group only once the group gave up on the dead one (its session
   * timeout), and the run goes on meanwhile.
   */
  async kill(member: Member): Promise<void> {
    member.expectedExit = true;
    member.proc.child.kill('SIGKILL');
    await member.proc.exited;
    this.#drop(member);
    this.killed++;
    this.#restart(member.role, {}, member.name);
  }

  /** Resolves once every restart under way is done. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }

  /** SIGTERM: the process drains and leaves its group; a non-zero exit is a problem. */
  async remove(member: Member): Promise<number | null> {
    member.expectedExit = true;
    this.#drop(member);
    const code = await member.proc.kill('SIGTERM');
    this.removed++;
    if (code !== 0)
      this.#problems.push(
        `${member.name} exited with ${code} after SIGTERM; last lines:\n    ${member.proc.lines.slice(-8).join('\n    ')}`,
      );
    return code;
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.allSettled(this.#pending);
    await Promise.all(
      this.members.map((m) => {
        m.expectedExit = true;
        return m.proc.kill('SIGKILL');
      }),
    );
  }

  #drop(member: Member): void {
    const i = this.members.indexOf(member);
    if (i !== -1) this.members.splice(i, 1);
  }
}

/** The simulator as a child process: `tally simulate … --retry-for … --ledger …`. */
function startSimulator(args: string[], say: (line: string) => void) {
  const child: ChildProcess = spawn(TALLY, ['simulate', ...args], {
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let acknowledged = 0;
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    const acked = /acked ([\d,]+)/.exec(line);
    if (acked) acknowledged = Number(acked[1]!.replaceAll(',', ''));
    say(`simulate  ${line}`);
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    child,
    exited,
    output: () => stdout,
    acknowledged: () => acknowledged,
  };
}

/**
 * Users sending one event at a time (the next only once the previous is acknowledged, retried
 * with the same id and time on a transient failure), each to a target of its own, value = its
 * sequence number from 1: a sink holds a prefix of a user's events exactly when its count c and
 * sum s satisfy s = c(c+1)/2 (c distinct positive integers sum to at least that, and only 1..c reach it).
 */
class OrderProbes {
  readonly sent: AcknowledgedEvent[] = [];
  readonly #stop = new AbortController();
  readonly #done: Promise<void>;

  constructor(grpcPort: number, users: number, runId: string, problems: string[]) {
    const client = ingestClient(grpcPort);
    const user = async (u: number) => {
      for (let seq = 1; !this.#stop.signal.aborted; seq++) {
        const occurredAtMs = Date.now();
        const event = {
          id: `${runId}-order-${u}-${seq}`,
          type: 'order_probe',
          target: probeTarget(runId, u),
          userId: `${runId}-order-user-${u}`,
          value: seq,
          occurredAt: timestampFromMs(occurredAtMs),
        };
        for (;;) {
          try {
            await client.publish({ event }, { timeoutMs: 10_000 });
            break;
          } catch (error) {
            const code = (error as AppError).code;
            if (code !== Code.UNAVAILABLE && code !== Code.DEADLINE_EXCEEDED) {
              problems.push(`order probe ${u}: event ${seq} refused: ${(error as Error).message}`);
              return;
            }
            await sleep(200);
          }
        }
        this.sent.push({
          id: event.id,
          type: event.type,
          target: event.target,
          userId: event.userId,
          value: seq,
          occurredAtMs,
        });
        await sleep(100);
      }
    };
    this.#done = Promise.all(Array.from({ length: users }, (_, u) => user(u))).then(() => client.close());
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#done;
  }
}

/** What every probe's target starts with: the alert rule's prefix. */
function probePrefix(runId: string): string {
  return `chaos-order-${runId}-`;
}

function probeTarget(runId: string, u: number): string {
  return `${probePrefix(runId)}${u}`;
}

/** The milestones of the run's alert rule: the probes' event counts each target crosses. */
export const PROBE_MILESTONES = [10, 25, 50, 100, 250, 500, 1000] as const;
/** Who the rule tells: its notifications' recipients, sorted. */
const PROBE_RECIPIENTS = ['dashboard', 'group:chaos'] as const;

/**
 * Makes the run's milestone rule with `tally alerts create`, as an operator would, before any
 * alerter starts (each loads it at start): the order probes' events on each probe's target.
 */
async function createProbeRule(env: Record<string, string>, runId: string): Promise<void> {
  const child = spawn(
    TALLY,
    [
      'alerts',
      'create',
      '--name',
      'chaos order probes',
      '--type',
      'order_probe',
      '--milestone',
      PROBE_MILESTONES.join(','),
      '--prefix',
      probePrefix(runId),
      '--notify-groups',
      'chaos',
      '--dashboard',
    ],
    {
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  for (const stream of [child.stdout!, child.stderr!])
    stream.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`tally alerts create exited with ${code}:\n${output}`);
}

/**
 * Makes the run's webhook destination with `tally destinations create`, as an operator would,
 * before any router or sender starts: the probes' events, each user's in order, to `url` (plain
 * HTTP on 127.0.0.1, which TALLY_DELIVERY_ALLOW_CIDRS lets the senders reach), signed with
 * `secret`, as `{ id, user_id, seq }` (seq: the probe's sequence number). Returns its id.
 */
async function createProbeDestination(
  env: Record<string, string>,
  runId: string,
  url: string,
  secret: string,
): Promise<string> {
  // biome-ignore format: the flags read best in pairs
  const args = [
    'destinations', 'create',
    '--name', 'chaos order probes',
    '--url', url, '--allow-http',
    '--secret', secret,
    '--types', 'order_probe',
    '--prefixes', probePrefix(runId),
    '--ordering', 'per_user',
    '--retry', '0,1,1,2,2,5,5,10,10,30',
    '--field', 'id=from:id',
    '--field', 'user_id=from:user_id',
    '--field', 'seq=from:value',
  ];
  const child = spawn(TALLY, args, {
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  for (const stream of [child.stdout!, child.stderr!])
    stream.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
  const [code] = (await once(child, 'exit')) as [number | null];
  const id = /^id:\s+(ds_\S+)$/m.exec(output)?.[1];
  if (code !== 0 || !id) throw new Error(`tally destinations create exited with ${code}:\n${output}`);
  return id;
}

/**
 * What the run's webhook receiver took, by probe event (its user and seq): the `webhook-id`s that
 * carried each, deliveries taken again under one it held, and the order of each user's first
 * deliveries (the receiver judges it: a seq lower than one its user had is out of order).
 */
class WebhookLedger {
  readonly #byEvent = new Map<string, Set<string>>();
  readonly order: OrderRow;
  readonly violations: string[] = [];
  repeated = 0;
  refused = 0;

  constructor(users: number) {
    this.order = {
      sink: 'webhook receiver (router, sender)',
      users,
      samples: 0,
      outOfOrder: 0,
      unavailable: 0,
    };
  }

  readonly take = (d: WebhookDelivery): void => {
    if (d.status !== 200) {
      this.refused++;
      if (this.violations.length < 10) this.violations.push(`a delivery refused with ${d.status}`);
      return;
    }
    if (d.duplicate) {
      this.repeated++;
      return;
    }
    const key = `${d.user}\u0000${d.place}`;
    let ids = this.#byEvent.get(key);
    if (!ids) {
      ids = new Set();
      this.#byEvent.set(key, ids);
    }
    ids.add(d.webhookId ?? '');
    this.order.samples++;
    if (d.outOfOrderAfter !== undefined) {
      this.order.outOfOrder++;
      if (this.violations.length < 10)
        this.violations.push(`${d.user} got seq ${d.place} after seq ${d.outOfOrderAfter}`);
    }
  };

  /** Probe events acknowledged and not yet taken. */
  missing(probes: readonly AcknowledgedEvent[]): number {
    return probes.filter((e) => !this.#byEvent.has(`${e.userId}\u0000${e.value}`)).length;
  }

  /**
   * The row: every acknowledged probe event once, under its own `webhook-id` (a second id for one
   * event, or an event never acknowledged, is a duplicate).
   */
  compare(probes: readonly AcknowledgedEvent[], destinationId: string): { row: SinkRow; problems: string[] } {
    const expected = new Map<string, Tally>();
    const idOf = new Map<string, string>();
    for (const e of probes) {
      const key = `${e.userId}\u0000${e.value}`;
      add(expected, key, 1, 0);
      idOf.set(key, messageIdOf(destinationId, e.id));
    }
    const held = new Map<string, Tally>();
    const problems: string[] = [];
    for (const [key, ids] of this.#byEvent) {
      add(held, key, ids.size, 0);
      const want = idOf.get(key);
      if (want !== undefined && !ids.has(want) && problems.length < 10)
        problems.push(
          `webhook receiver: ${key.replace('\u0000', ' seq ')} came under ${[...ids].join(', ')}, not its webhook-id ${want}`,
        );
    }
    return { row: compare(this.order.sink, expected, held, false, 'deliveries'), problems };
  }
}

/** Reads each probe user's (count, sum) in each sink every few hundred milliseconds and checks it is a prefix. */
class OrderSampler {
  readonly rows: OrderRow[];
  readonly violations: string[] = [];
  readonly #stop = new AbortController();
  readonly #done: Promise<void>;

  constructor(targets: string[], pool: pg.Pool, counters: CounterStore) {
    const row = (sink: string): OrderRow => ({
      sink,
      users: targets.length,
      samples: 0,
      outOfOrder: 0,
      unavailable: 0,
    });
    const events = row('event table (persister)');
    const counts = row('counters (counter)');
    const summaries = row('hourly summaries (aggregator)');
    this.rows = [events, counts, summaries];
    const check = (into: OrderRow, target: string, count: number, sum: number) => {
      into.samples++;
      if (sum !== (count * (count + 1)) / 2) {
        into.outOfOrder++;
        if (this.violations.length < 10)
          this.violations.push(
            `${into.sink}: ${target} held ${count} events summing to ${sum}, not a prefix`,
          );
      }
    };
    const sqlSample = async (into: OrderRow, sql: string) => {
      try {
        const { rows } = await pool.query<{ target: string; n: string; s: string }>(sql, [targets]);
        const seen = new Map(rows.map((r) => [r.target, r]));
        for (const target of targets) {
          const r = seen.get(target);
          check(into, target, Number(r?.n ?? 0), Number(r?.s ?? 0));
        }
      } catch {
        into.unavailable++;
      }
    };
    const redisSample = async () => {
      try {
        const states = await Promise.all(targets.map((target) => counters.read(target)));
        states.forEach((types, i) => {
          const probe = types.find((t) => t.type === 'order_probe');
          check(counts, targets[i]!, probe?.count ?? 0, probe?.sum ?? 0);
        });
      } catch {
        counts.unavailable++;
      }
    };
    this.#done = (async () => {
      while (!this.#stop.signal.aborted) {
        await Promise.all([
          sqlSample(
            events,
            'SELECT target, count(*) AS n, coalesce(sum(value), 0) AS s FROM event WHERE target = ANY($1) GROUP BY target',
          ),
          sqlSample(
            summaries,
            'SELECT target, sum(count) AS n, sum(sum_value) AS s FROM event_summary WHERE target = ANY($1) GROUP BY target',
          ),
          redisSample(),
        ]);
        await sleep(250).catch(() => {});
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#done;
  }
}

/** Runs the whole chaos run and returns its figures; never throws for a difference, only for a broken harness. */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const runStarted = performance.now();
  const seconds = (from: number) => (performance.now() - from) / 1000;
  const say = (line: string) => options.log(`[${seconds(runStarted).toFixed(1).padStart(6)}s] ${line}`);
  const random = seeded(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const problems: string[] = [];
  const work = mkdtempSync(join(tmpdir(), 'tally-chaos-'));
  const runId = `c${options.seed.toString(36)}`.slice(0, 16);
  let kafka: PrivateKafka | undefined;
  let redis: PrivateRedis | undefined;
  let postgres: PrivatePostgres | undefined;
  let fleet: Fleet | undefined;
  let pool: pg.Pool | undefined;
  let counters: CounterStore | undefined;
  let receiver: { close(): Promise<void> } | undefined;
  const log = { current: undefined as ReturnType<typeof createKafkaEventLog> | undefined };
  try {
    say('starting Kafka, Redis and PostgreSQL of this run on free loopback ports');
    [kafka, redis, postgres] = await Promise.all([
      createPrivateKafka(),
      createPrivateRedis(),
      createPrivatePostgres(),
    ]);
    await Promise.all([kafka.start(), redis.start(), postgres.start()]);
    const grpcPort = await freePort();
    const env = {
      TALLY_KAFKA_BROKERS: kafka.brokers,
      TALLY_REDIS_URL: redis.url,
      TALLY_PG_URL: postgres.url,
      TALLY_EVENTS_PARTITIONS: String(options.partitions),
      TALLY_KAFKA_CLIENT: options.kafkaClient ?? 'kafkajs',
      TALLY_HTTP_PORT: '0',
      TALLY_GRPC_PORT: '0',
      TALLY_BIND_HOST: '127.0.0.1',
      TALLY_DELIVERY_ALLOW_CIDRS: '127.0.0.1/32',
    };
    say('making the alert rule of the run: milestones of the order probes');
    await createProbeRule(env, runId);
    const webhooks = new WebhookLedger(options.probeUsers);
    const secret = generateSecret();
    const started = await options.startReceiver({
      port: 0,
      host: '127.0.0.1',
      secrets: [secret],
      failRate: 0,
      failStatus: 503,
      latencyMs: 0,
      seed: options.seed,
      toleranceSeconds: 300,
      onDelivery: webhooks.take,
    });
    receiver = started;
    const destinationId = await createProbeDestination(env, runId, `${started.url}/hook`, secret);
    say(`made webhook destination ${destinationId} of the order probes, delivered to ${started.url}/hook`);
    fleet = new Fleet(env, problems, say);
    say('starting ingest, then each consumer role as separate processes');
    await fleet.start('ingest', { TALLY_GRPC_PORT: String(grpcPort) });
    for (const role of CONSUMER_ROLES)
      await Promise.all(Array.from({ length: options.replicas }, () => fleet!.start(role)));
    say(
      `${fleet.members.length} processes up: ${fleet.members.map((m) => `${m.name} (pid ${m.proc.child.pid})`).join(', ')}`,
    );

    pool = new pg.Pool({ connectionString: postgres.url, max: 3 });
    pool.on('error', () => {}); // a query made while PostgreSQL restarts fails on its own
    counters = createRedisCounterStore({ url: redis.url, keyPrefix: 'tally' });
    const targets = Array.from({ length: options.probeUsers }, (_, u) => probeTarget(runId, u));
    const sampler = new OrderSampler(targets, pool, counters);
    const probes = new OrderProbes(grpcPort, options.probeUsers, runId, problems);

    const ledgerPath = join(work, 'acknowledged.ndjson');
    const sendStarted = performance.now();
    say(`sending ${options.events.toLocaleString('en-US')} ${options.scenario} events at ${options.rate}/s`);
    const simulator = startSimulator(
      [
        `--scenario=${options.scenario}`,
        `--total=${options.events}`,
        `--rate=${options.rate}`,
        '--batch=100',
        '--concurrency=8',
        `--target=grpc://127.0.0.1:${grpcPort}`,
        `--seed=${options.seed}`,
        `--run-id=${runId}`,
        '--timeout=15s',
        '--retry-for=15m',
        `--ledger=${ledgerPath}`,
      ],
      say,
    );

    // The faults, one after another, spread over the time the events take to send.
    const plan = faultPlan(options.kills);
    const faults: FaultRecord[] = [];
    const expectedSendMs = (options.events / options.rate) * 1000;
    const runFaults = async () => {
      let addedRole: ConsumerRole | undefined;
      for (const [i, kind] of plan.entries()) {
        const dueMs = (expectedSendMs * (i + 1)) / (plan.length + 1);
        const wait = dueMs - (performance.now() - sendStarted);
        if (wait > 0) await sleep(wait);
        const record: FaultRecord = {
          atSeconds: seconds(sendStarted),
          kind,
          detail: '',
          acknowledgedBefore: simulator.acknowledged(),
        };
        const began = performance.now();
        switch (kind) {
          case 'kill': {
            const victim = pick(fleet!.consumers());
            record.detail = `kill -9 ${victim.name} (pid ${victim.proc.child.pid}), restarted`;
            say(`fault: ${record.detail}`);
            await fleet!.kill(victim);
            break;
          }
          case 'add': {
            addedRole = pick(CONSUMER_ROLES);
            const added = await fleet!.start(addedRole);
            record.detail = `added ${added.name} (pid ${added.proc.child.pid}): ${fleet!.consumers(addedRole).length} ${addedRole} processes`;
            say(`fault: ${record.detail}`);
            break;
          }
          case 'remove': {
            const role = addedRole ?? pick(CONSUMER_ROLES);
            const leaving = pick(fleet!.consumers(role));
            say(`fault: SIGTERM ${leaving.name} (pid ${leaving.proc.child.pid})`);
            const code = await fleet!.remove(leaving);
            record.detail = `removed ${leaving.name} (SIGTERM, exit ${code}): ${fleet!.consumers(role).length} ${role} processes`;
            break;
          }
          case 'restart-kafka':
          case 'restart-redis':
          case 'restart-postgres': {
            const server = kind === 'restart-kafka' ? kafka! : kind === 'restart-redis' ? redis! : postgres!;
            const name =
              kind === 'restart-kafka' ? 'Kafka' : kind === 'restart-redis' ? 'Redis' : 'PostgreSQL';
            // PostgreSQL crashes rather than stops (no checkpoint, crash recovery at start): what a
            // sink was told is committed must survive that, not only a polite shutdown.
            const crash = kind === 'restart-postgres';
            say(`fault: ${crash ? 'crashing' : 'stopping'} ${name}`);
            await (crash ? postgres!.crash() : server.stop());
            await sleep(3000);
            await server.start();
            record.detail = `${name} ${crash ? 'crashed (immediate stop, no checkpoint)' : 'stopped'}, down 3 s, started again`;
            say(`fault: ${name} is back`);
            break;
          }
        }
        record.detail += ` (${seconds(began).toFixed(1)} s)`;
        faults.push(record);
      }
    };
    const faultsDone = runFaults().catch((error: unknown) => {
      problems.push(`the fault injection failed: ${(error as Error).stack ?? String(error)}`);
    });

    const simulatorCode = await simulator.exited;
    const sendSeconds = seconds(sendStarted);
    await probes.stop();
    say(`sending done in ${sendSeconds.toFixed(1)} s (simulator exit ${simulatorCode})`);
    if (simulatorCode !== 0)
      problems.push(`the simulator exited with ${simulatorCode}: not every event was acknowledged`);
    await faultsDone;
    await fleet.settled();
    for (const role of CONSUMER_ROLES)
      if (fleet.consumers(role).length !== options.replicas)
        problems.push(
          `${fleet.consumers(role).length} ${role} processes at the end, not ${options.replicas}`,
        );
    if (faults.length < plan.length)
      problems.push(`only ${faults.length} of ${plan.length} faults were carried out`);
    if (faults.length > 0 && faults[faults.length - 1]!.atSeconds > sendSeconds)
      say('note: some faults came after the last event was sent (the consumers were still catching up)');

    // Wait until every group has committed up to the end of the topic it reads, the persister's
    // first: once it is caught up, the accepted topic the others read is complete.
    const catchUpStarted = performance.now();
    log.current = createKafkaEventLog({
      brokers: [kafka.brokers],
      clientId: 'tally-chaos',
      produceTimeoutMs: 10_000,
      logger: createLogger('error'),
    });
    const lag = async () => {
      const behind: Record<string, bigint> = {};
      for (const group of CONSUMER_GROUPS) {
        const topic = group === 'group_persistence' ? 'events' : 'events.accepted';
        const end = await log.current!.endOffsets(topic);
        const committed = await log.current!.committedOffsets(group, topic);
        let total = 0n;
        for (const [partition, offset] of end) total += offset - (committed.get(partition) ?? 0n);
        behind[group] = total;
      }
      return behind;
    };
    const deadline = performance.now() + 15 * 60_000;
    let lastReport = 0;
    for (;;) {
      const behind = await lag().catch(() => undefined);
      if (behind && Object.values(behind).every((n) => n === 0n)) break;
      if (performance.now() > deadline) {
        problems.push(
          `consumer groups still behind after 15 minutes: ${JSON.stringify(behind, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`,
        );
        break;
      }
      if (performance.now() - lastReport > 5000) {
        lastReport = performance.now();
        say(
          `catching up: ${
            behind
              ? Object.entries(behind)
                  .map(([g, n]) => `${g} ${n} behind`)
                  .join(', ')
              : 'lag unknown'
          }`,
        );
      }
      await sleep(500);
    }
    // The senders deliver from topics of their own: done when the receiver has every probe event.
    const deliveryDeadline = performance.now() + 5 * 60_000;
    for (let missing = webhooks.missing(probes.sent); missing > 0; missing = webhooks.missing(probes.sent)) {
      if (performance.now() > deliveryDeadline) {
        problems.push(`the webhook receiver still lacks ${missing} probe events after 5 minutes`);
        break;
      }
      if (performance.now() - lastReport > 5000) {
        lastReport = performance.now();
        say(`catching up: the webhook receiver lacks ${missing} of ${probes.sent.length} probe events`);
      }
      await sleep(250);
    }
    const catchUpSeconds = seconds(catchUpStarted);
    await sampler.stop();
    say(
      `every group caught up (${catchUpSeconds.toFixed(1)} s after sending and the faults had ended); checking the sinks`,
    );

    const dlqEnd = await log.current.endOffsets('events.dlq').catch(() => new Map<number, bigint>());
    const dlqRecords = [...dlqEnd.values()].reduce((a, b) => a + b, 0n);
    if (dlqRecords > 0n)
      problems.push(`${dlqRecords} records in events.dlq: good events must never go there`);

    const acknowledged = [
      ...readFileSync(ledgerPath, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as AcknowledgedEvent),
      ...probes.sent,
    ];
    const rows = await compareSinks(acknowledged, pool, counters);
    const alerts = await compareNotifications(probes.sent, pool, log.current);
    rows.push(...alerts.rows);
    problems.push(...alerts.problems);
    if (options.scenario === 'orders') {
      // The simulator's events in the ledger's order (which the same-millisecond rule needs).
      const projected = await checkProjection({
        projection: ORDER_PROJECTION,
        acknowledged: acknowledged.slice(0, acknowledged.length - probes.sent.length),
        pg: pool,
      });
      rows.push({
        sink: 'order entities (projector)',
        unit: 'entities',
        sent: projected.checked,
        counted: projected.checked - projected.mismatches.length,
        missing: projected.mismatches.length,
        duplicated: 0,
        sumsDiffering: undefined,
      });
      for (const mismatch of projected.mismatches.slice(0, 20)) problems.push(`projector: ${mismatch}`);
    }
    const delivered = webhooks.compare(probes.sent, destinationId);
    rows.push(delivered.row);
    problems.push(...delivered.problems);
    for (const violation of webhooks.violations) problems.push(`webhook receiver: ${violation}`);
    const finalOrder = new OrderSampler(targets, pool, counters);
    await sleep(300);
    await finalOrder.stop();
    for (const [i, row] of sampler.rows.entries()) {
      row.samples += finalOrder.rows[i]!.samples;
      row.outOfOrder += finalOrder.rows[i]!.outOfOrder;
    }
    for (const violation of [...sampler.violations, ...finalOrder.violations])
      problems.push(`order: ${violation}`);
    for (const row of rows) {
      if (row.missing > 0 || row.duplicated > 0)
        problems.push(`${row.sink}: ${row.missing} missing, ${row.duplicated} duplicated`);
      if (row.sent === 0) problems.push(`${row.sink}: nothing to compare`);
      if (row.sumsDiffering) problems.push(`${row.sink}: ${row.sumsDiffering} sums differ`);
    }
    const result: ChaosResult = {
      ok: problems.length === 0,
      rows,
      order: [...sampler.rows, webhooks.order],
      faults,
      problems,
      repeatedNotificationRecords: alerts.repeatedRecords,
      repeatedDeliveries: webhooks.repeated,
      simulatorSummary: simulator.output(),
      sendSeconds,
      catchUpSeconds,
      totalSeconds: seconds(runStarted),
      processes: { started: fleet.started, killed: fleet.killed, removed: fleet.removed },
    };
    return result;
  } finally {
    await fleet?.close();
    await Promise.allSettled([pool?.end(), counters?.close(), log.current?.close(), receiver?.close()]);
    await Promise.allSettled([kafka?.cleanup(), redis?.cleanup(), postgres?.cleanup()]);
    rmSync(work, { recursive: true, force: true });
  }
}

interface Tally {
  count: number;
  sum: number;
}

/** Per key, expected against held: missing and duplicated events, and keys whose sums differ. */
function compare(
  sink: string,
  expected: Map<string, Tally>,
  held: Map<string, Tally>,
  withSums: boolean,
  unit: SinkRow['unit'] = 'events',
): SinkRow {
  let sent = 0;
  let counted = 0;
  let missing = 0;
  let duplicated = 0;
  let sumsDiffering = 0;
  for (const [key, want] of expected) {
    const have = held.get(key) ?? { count: 0, sum: 0 };
    sent += want.count;
    missing += Math.max(0, want.count - have.count);
    duplicated += Math.max(0, have.count - want.count);
    if (withSums && Math.abs(have.sum - want.sum) > 1e-6 * Math.max(1, Math.abs(want.sum))) sumsDiffering++;
  }
  for (const [key, have] of held) {
    counted += have.count;
    if (!expected.has(key)) duplicated += have.count;
  }
  return {
    sink,
    unit,
    sent,
    counted,
    missing,
    duplicated,
    sumsDiffering: withSums ? sumsDiffering : undefined,
  };
}

function add(into: Map<string, Tally>, key: string, count: number, sum: number): void {
  const t = into.get(key);
  if (t) {
    t.count += count;
    t.sum += sum;
  } else into.set(key, { count, sum });
}

async function compareSinks(
  acknowledged: readonly AcknowledgedEvent[],
  pool: pg.Pool,
  counters: CounterStore,
): Promise<SinkRow[]> {
  const byId = new Map<string, Tally>();
  const byCounter = new Map<string, Tally>();
  const byHour = new Map<string, Tally>();
  for (const e of acknowledged) {
    if (byId.has(e.id)) throw new Error(`the ledger lists ${e.id} twice`);
    add(byId, e.id, 1, e.value);
    add(byCounter, `${e.target}\u0000${e.type}`, 1, e.value);
    add(byHour, `${e.target}\u0000${hourStart(e.occurredAtMs)}\u0000${e.type}`, 1, e.value);
  }

  const heldIds = new Map<string, Tally>();
  for (const r of (await pool.query<{ id: string; value: number | null }>('SELECT id, value FROM event'))
    .rows)
    add(heldIds, r.id, 1, r.value ?? 0);

  const heldCounters = new Map<string, Tally>();
  const targets = [...new Set(acknowledged.map((e) => e.target))];
  for (let i = 0; i < targets.length; i += 200) {
    const chunk = targets.slice(i, i + 200);
    const states = await Promise.all(chunk.map((target) => counters.read(target)));
    states.forEach((types, j) => {
      for (const t of types) add(heldCounters, `${chunk[j]}\u0000${t.type}`, t.count, t.sum);
    });
  }
  const heldLeaders = new Map<string, Tally>();
  for (const board of await counters.top([], targets.length + 1000))
    for (const leader of board.targets)
      add(heldLeaders, `${leader.target}\u0000${board.type}`, leader.count, 0);

  const heldHours = new Map<string, Tally>();
  for (const r of (
    await pool.query<{ target: string; hour: Date; type: string; count: string; sum_value: number }>(
      'SELECT target, hour, type, count, sum_value FROM event_summary',
    )
  ).rows)
    add(heldHours, `${r.target}\u0000${r.hour.getTime()}\u0000${r.type}`, Number(r.count), r.sum_value);

  return [
    compare('event table (persister)', byId, heldIds, true),
    compare('counters (counter)', byCounter, heldCounters, true),
    compare('leaderboards (counter)', byCounter, heldLeaders, false),
    compare('hourly summaries (aggregator)', byHour, heldHours, true),
  ];
}

/**
 * The alerter's notifications against the probes' acknowledged events: per probe target, one
 * notification per milestone its events reached — in PostgreSQL, and on the notifications topic
 * once per recipient, each record carrying the seq the store gave its notification. A record
 * repeated after a redelivery (the same id, seq and recipient) is counted apart, not as a
 * duplicate: readers keep one.
 */
async function compareNotifications(
  probes: readonly AcknowledgedEvent[],
  pool: pg.Pool,
  log: EventLog,
): Promise<{ rows: SinkRow[]; problems: string[]; repeatedRecords: number }> {
  const sent = new Map<string, number>();
  for (const e of probes) sent.set(e.target, (sent.get(e.target) ?? 0) + 1);
  const expected = new Map<string, Tally>();
  const expectedRecords = new Map<string, Tally>();
  for (const [target, count] of sent)
    for (const threshold of PROBE_MILESTONES.filter((m) => m <= count)) {
      add(expected, `${target}\u0000${threshold}`, 1, 0);
      for (const recipient of PROBE_RECIPIENTS)
        add(expectedRecords, `${target}\u0000${threshold}\u0000${recipient}`, 1, 0);
    }

  const problems: string[] = [];
  const kept = (
    await pool.query<{ id: string; seq: string; target: string; threshold: number; recipients: string[] }>(
      'SELECT id, seq::text AS seq, target, threshold, recipients FROM notification',
    )
  ).rows;
  const held = new Map<string, Tally>();
  const seqOf = new Map<string, string>();
  for (const r of kept) {
    add(held, `${r.target}\u0000${r.threshold}`, 1, 0);
    seqOf.set(r.id, r.seq);
    if ([...r.recipients].sort().join(',') !== PROBE_RECIPIENTS.join(','))
      problems.push(
        `notification ${r.id} is for ${r.recipients.join(', ')}, not ${PROBE_RECIPIENTS.join(', ')}`,
      );
  }

  const heldRecords = new Map<string, Tally>();
  const seen = new Set<string>();
  let repeatedRecords = 0;
  for (const record of await readTopic(log, 'notifications')) {
    const m = decodeNotification(record.value);
    if (String(m.seq) !== seqOf.get(m.id))
      problems.push(
        `a record of notification ${m.id} carries seq ${m.seq}, the store's is ${seqOf.get(m.id)}`,
      );
    const pair = `${m.id}\u0000${m.recipient}`;
    if (seen.has(pair)) {
      repeatedRecords++;
      continue;
    }
    seen.add(pair);
    add(heldRecords, `${m.target}\u0000${m.threshold}\u0000${m.recipient}`, 1, 0);
  }
  return {
    rows: [
      compare('notifications (alerter)', expected, held, false, 'notifications'),
      compare(
        'notifications topic, per recipient (alerter)',
        expectedRecords,
        heldRecords,
        false,
        'notifications',
      ),
    ],
    problems,
    repeatedRecords,
  };
}

const n = (v: number) => v.toLocaleString('en-US');

/** The report: the faults, the per-sink table, the order table and the verdict, as Markdown. */
export function formatChaosReport(result: ChaosResult, options: Omit<ChaosOptions, 'log'>): string {
  const lines: string[] = [];
  lines.push(
    `Chaos run: ${n(options.events)} ${options.scenario} events at ${n(options.rate)}/s offered, ` +
      `${options.replicas} processes per consumer role, ${options.partitions} partitions, Kafka client ${options.kafkaClient ?? 'kafkajs'}, seed ${options.seed}.`,
    '',
    `Sending took ${result.sendSeconds.toFixed(1)} s; the consumer groups caught up ${result.catchUpSeconds.toFixed(1)} s after sending and the faults had ended; ` +
      `${result.processes.started} processes started, ${result.processes.killed} killed with SIGKILL, ${result.processes.removed} removed with SIGTERM.`,
    '',
    '| at (s) | fault | acknowledged before |',
    '|---:|---|---:|',
  );
  for (const f of result.faults)
    lines.push(`| ${f.atSeconds.toFixed(1)} | ${f.detail} | ${n(f.acknowledgedBefore)} |`);
  lines.push('', '| sink | sent | counted | missing | duplicated | sums |', '|---|---:|---:|---:|---:|---|');
  for (const r of result.rows)
    lines.push(
      `| ${r.sink} | ${n(r.sent)} | ${n(r.counted)} | ${n(r.missing)} | ${n(r.duplicated)} | ${
        r.sumsDiffering === undefined ? '—' : r.sumsDiffering === 0 ? 'equal' : `${n(r.sumsDiffering)} differ`
      } |`,
    );
  lines.push(
    '',
    `Notifications topic: ${n(result.repeatedNotificationRecords)} records written again after a redelivery (the same notification, id and seq, for the same recipient; readers keep one).`,
    '',
    `Webhook receiver: ${n(result.repeatedDeliveries)} deliveries taken again under a webhook-id it held (at least once; receivers drop them by it).`,
  );
  lines.push(
    '',
    '| per-user order, sampled while the run went on | users | samples | out of order | backend away |',
    '|---|---:|---:|---:|---:|',
  );
  for (const r of result.order)
    lines.push(`| ${r.sink} | ${r.users} | ${n(r.samples)} | ${n(r.outOfOrder)} | ${n(r.unavailable)} |`);
  lines.push('');
  if (result.ok)
    lines.push(
      'Result: every sink holds exactly the acknowledged events, each once, in per-user order; one notification per milestone crossed, once per recipient; every probe event delivered to the webhook, under its own webhook-id, in per-user order.',
    );
  else {
    lines.push(`Result: FAILED (${result.problems.length} problems)`);
    for (const p of result.problems) lines.push(`- ${p}`);
  }
  return `${lines.join('\n')}\n`;
}
