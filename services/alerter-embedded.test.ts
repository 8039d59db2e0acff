/**
 * The alerter in embedded mode: `tally all` with no servers configured, a milestone rule made
 * through `POST /v1/alert-rules`, events crossing its thresholds, `kill -9` of the whole process
 * mid-stream and a restart on the same data directory. Read back from the data directory once the
 * process has drained: PGlite holds exactly one notification per threshold crossed, the embedded
 * log's notifications topic each once per recipient (repeats only of the same id and seq), and
 * the embedded milestone store counted each event once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { milestoneSeries } from './alerter/alerter.ts';
import { createEmbeddedMilestoneStore } from './infra/alerts/embedded-milestone-store.ts';
import { createEmbeddedEventLog } from './infra/log/embedded-event-log.ts';
import { createLogger } from './infra/logger.ts';
import { createPgliteDatabase } from './infra/sql/pglite-database.ts';
import {
  assertNotifications,
  createRule,
  loadedRuleChange,
  milestonePlan,
  NOTIFICATION_ROWS,
  type NotificationRow,
  readTopic,
  sendBatches,
} from './testing/milestone-run.ts';
import { waitFor } from './testing/real-servers.ts';
import { http } from './testing/tally-client.ts';
import { freePort, startTally, type TallyProcess } from './testing/tally-process.ts';

const LAG_INTERVAL_MS = 100;

/** The samples of `name` on the process's /metrics, by their labels. */
async function samples(tally: TallyProcess, name: string): Promise<{ labels: string; value: number }[]> {
  const { text } = await http(tally.httpPort!, 'GET', '/metrics');
  return [...text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) => ({
    labels: m[1] ?? '',
    value: Number(m[2]),
  }));
}

test('embedded mode: one notification per threshold crossed and recipient, through kill -9 and restart', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-alerter-'));
  const env = {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '4',
    TALLY_ALERT_RULES_REFRESH_MS: '200',
    TALLY_CONSUMER_LAG_INTERVAL_MS: String(LAG_INTERVAL_MS),
  };
  let tally = await startTally(['all'], env);
  t.after(async () => {
    await tally.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  const plan = milestonePlan('embedded');
  const ruleId = await createRule(tally.httpPort!, plan.rule);
  await waitFor(
    () => loadedRuleChange(tally.lines),
    () => 'the alerter never took the new rule in',
  );
  const half = Math.floor(plan.events.length / 2);
  await sendBatches(tally.httpPort!, plan.events.slice(0, half));
  await waitFor(
    async () => ((await samples(tally, 'tally_notifications_total'))[0]?.value ?? 0) > 0,
    () => 'no notification raised before the crash',
  );
  tally.child.kill('SIGKILL');
  await tally.exited;
  tally = await startTally(['all'], env);
  await sendBatches(tally.httpPort!, plan.events.slice(half));

  // Caught up: the persister's and the alerter's groups without lag in several samples in a row
  // (each poll is two lag samples later than the one before, so the alerter's last zero was taken
  // after the persister had forwarded everything).
  let quiet = 0;
  await waitFor(
    async () => {
      const lag = (await samples(tally, 'tally_consumer_lag_messages')).filter((s) =>
        /group="group_(persistence|alerting)"/.test(s.labels),
      );
      quiet = lag.length === 8 && lag.every((s) => s.value === 0) ? quiet + 1 : 0;
      return quiet >= 3;
    },
    async () => `lag ${JSON.stringify(await samples(tally, 'tally_consumer_lag_messages'))}`,
    60_000,
    2 * LAG_INTERVAL_MS,
  );
  assert.equal(await tally.kill('SIGTERM'), 0, 'drains and exits 0');

  const logger = createLogger('error');
  const log = createEmbeddedEventLog({ dataDir: join(dataDir, 'log'), logger });
  const db = await createPgliteDatabase({ dataDir: join(dataDir, 'pg'), schema: 'public' });
  const milestones = createEmbeddedMilestoneStore({ dataDir: join(dataDir, 'alerts') });
  t.after(async () => {
    await Promise.all([log.close(), db.close(), milestones.close()]);
  });
  const end = await log.endOffsets('events.accepted');
  const committed = await log.committedOffsets('group_alerting', 'events.accepted');
  for (const [partition, offset] of end)
    assert.equal(committed.get(partition) ?? 0n, offset, `the alerter committed partition ${partition}`);

  const rows = await db.query<NotificationRow>(NOTIFICATION_ROWS);
  const records = await readTopic(log, 'notifications');
  const seen = assertNotifications(plan, ruleId, rows, records);
  t.diagnostic(`${rows.length} notifications, ${records.length} records, ${seen.repeatedRecords} repeated`);
  for (const [target, views] of plan.counted) {
    const series = await milestones.inspect(milestoneSeries(ruleId, target));
    assert.equal(series.count, views, `${target}: every view counted once`);
    assert.deepEqual(series.pending, [], `${target}: no crossing left unconfirmed`);
  }
});
