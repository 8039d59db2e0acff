/**
 * Test support for the alerter end to end: a milestone rule with every kind of recipient, a
 * stream of events that crosses its thresholds on some targets (with events it must not count),
 * the notifications that stream must raise, a reader of the notifications topic, and the check
 * of what the notification store and the topic hold against them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Notification as NotificationMessage } from '../gen/tally/v1/notifications_pb.js';
import type { ConsumedRecord, EventLog } from '../infra/log/event-log.ts';
import { decodeNotification } from '../pipeline/notification-codec.ts';
import { waitFor } from './real-servers.ts';
import { http } from './tally-client.ts';

const THRESHOLDS = [10, 50, 100, 200] as const;

/** Views per watched target: the first crosses every threshold, the others fewer. */
const VIEWS = [230, 120, 60] as const;

/** An event as the REST API takes it. */
export interface RestEvent {
  id: string;
  type: string;
  target: string;
  userId: string;
  attributes?: Record<string, string>;
}

export interface MilestonePlan {
  /** The body of `POST /v1/alert-rules`. */
  rule: Record<string, unknown>;
  /** Every event to send, in sending order (the watched ones interleaved with the others). */
  events: RestEvent[];
  /** The watched targets and how many of their events the rule counts. */
  counted: Map<string, number>;
  /** One per notification the events must raise: the target and the threshold. */
  expected: { target: string; threshold: number }[];
  /** The recipients of a target's notifications, sorted. */
  recipientsOf(target: string): string[];
}

/**
 * `view` events on three targets under a prefix (230, 120 and 60 of them, each target's owner in
 * its `owner` attribute), and events the rule must not count: `like`s on a watched target and
 * `view`s on a target outside the prefix. The rule tells a user, a group, the dashboard and the
 * target's owner at 10, 50, 100 and 200 views.
 */
export function milestonePlan(runId: string): MilestonePlan {
  const prefix = `post/${runId}/`;
  const targets = VIEWS.map((_, k) => `${prefix}${k}`);
  const events: RestEvent[] = [];
  const add = (type: string, target: string, owner?: string) =>
    events.push({
      id: `${runId}-${events.length}`,
      type,
      target,
      userId: `u${events.length % 13}`,
      ...(owner ? { attributes: { owner } } : {}),
    });
  VIEWS.forEach((views, k) => {
    for (let i = 0; i < views; i++) add('view', targets[k]!, `o${k}`);
  });
  for (let i = 0; i < 50; i++) add('like', targets[0]!, 'o0');
  for (let i = 0; i < 40; i++) add('view', `other/${runId}`);
  shuffle(events);
  return {
    rule: {
      name: `milestones ${runId}`,
      eventType: 'view',
      recipients: { userIds: ['alice'], groups: ['ops'], targetOwner: true, dashboard: true },
      milestone: { subject: { targetPrefix: prefix }, thresholds: [...THRESHOLDS] },
    },
    events,
    counted: new Map(targets.map((target, k) => [target, VIEWS[k]!])),
    expected: targets.flatMap((target, k) =>
      THRESHOLDS.filter((threshold) => threshold <= VIEWS[k]!).map((threshold) => ({ target, threshold })),
    ),
    recipientsOf: (target) =>
      ['dashboard', 'group:ops', 'user:alice', `user:o${targets.indexOf(target)}`].sort(),
  };
}

/** A fixed shuffle (a small linear congruential generator): the same plan every run. */
function shuffle<T>(items: T[]): void {
  let state = 20261206;
  for (let i = items.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const j = state % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

/** Creates the rule through the gateway's REST API; answers its id. */
export async function createRule(httpPort: number, rule: Record<string, unknown>): Promise<string> {
  const created = await http(httpPort, 'POST', '/v1/alert-rules', rule);
  assert.equal(created.status, 200, created.text);
  return (created.body as { rule: { id: string } }).rule.id;
}

/** Sends `events` through the gateway's REST API, `size` per batch, each batch acknowledged. */
export async function sendBatches(httpPort: number, events: readonly RestEvent[], size = 20): Promise<void> {
  for (let i = 0; i < events.length; i += size) {
    const sent = await http(httpPort, 'POST', '/v1/events:batch', { events: events.slice(i, i + size) });
    assert.equal(sent.status, 200, sent.text);
  }
}

/** True once a process logged that its alert rules changed (it holds a rule created after it started). */
export function loadedRuleChange(lines: readonly string[]): boolean {
  return lines.some((line) => line.includes('"msg":"alert rules changed"'));
}

/** A notification as the store keeps it (`SELECT … FROM notification`). */
export interface NotificationRow {
  id: string;
  seq: string;
  rule_id: string;
  target: string;
  threshold: number;
  value: number;
  recipients: string[];
}

export const NOTIFICATION_ROWS =
  'SELECT id, seq::text AS seq, rule_id, target, threshold, value, recipients FROM notification ORDER BY seq';

/** Every record of `topic` up to its end now, through a consumer group of its own. */
export async function readTopic(log: EventLog, topic: string, groupPrefix = ''): Promise<ConsumedRecord[]> {
  let total = 0n;
  for (const end of (await log.endOffsets(topic)).values()) total += end;
  const records: ConsumedRecord[] = [];
  if (total === 0n) return records;
  const consumer = log.consumer({
    groupId: `${groupPrefix}reader-${randomUUID()}`,
    topics: [topic],
    fromBeginning: true,
    maxWaitMs: 100,
  });
  await consumer.run(async (batch) => {
    records.push(...batch.records);
  });
  try {
    await waitFor(
      () => BigInt(records.length) >= total,
      () => `read ${records.length} of the ${total} records of ${topic}`,
      30_000,
    );
  } finally {
    await consumer.stop();
  }
  return records;
}

/** What a check of the notifications found beyond its assertions. */
export interface NotificationsSeen {
  /** Records on the topic that repeat one already there (same notification id, seq and recipient). */
  repeatedRecords: number;
}

/**
 * The store holds exactly one notification per threshold crossed (of the rule, for the right
 * recipients, with the count reached), and the topic one record per notification and recipient,
 * keyed by the recipient, carrying the store's `seq`: a record written again after a crash is the
 * same notification (same id and seq), which readers keep once.
 */
export function assertNotifications(
  plan: MilestonePlan,
  ruleId: string,
  rows: readonly NotificationRow[],
  records: readonly ConsumedRecord[],
): NotificationsSeen {
  assert.deepEqual(
    rows.map((r) => `${r.target} @ ${r.threshold}`).sort(),
    plan.expected.map((e) => `${e.target} @ ${e.threshold}`).sort(),
    'the store holds one notification per threshold crossed, no other',
  );
  for (const row of rows) {
    assert.equal(row.rule_id, ruleId, `${row.id}: its rule`);
    assert.deepEqual([...row.recipients].sort(), plan.recipientsOf(row.target), `${row.id}: recipients`);
    assert.ok(row.value >= row.threshold, `${row.id}: the count reached (${row.value}) is the threshold's`);
  }

  const seqOf = new Map(rows.map((r) => [r.id, r.seq]));
  const published = new Set<string>();
  for (const record of records) {
    const message: NotificationMessage = decodeNotification(record.value);
    assert.equal(record.key, message.recipient, `${message.id}: keyed by its recipient`);
    assert.equal(String(message.seq), seqOf.get(message.id), `${message.id}: the seq the store gave it`);
    published.add(`${message.id} → ${message.recipient}`);
  }
  assert.deepEqual(
    [...published].sort(),
    rows.flatMap((r) => r.recipients.map((recipient) => `${r.id} → ${recipient}`)).sort(),
    'the topic holds each notification once per recipient, no other',
  );
  return { repeatedRecords: records.length - published.size };
}
