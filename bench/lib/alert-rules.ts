/**
 * The alert rules the alerter runs with in the bench: what a social app with a shop would keep on
 * the event mix (bench/lib/event-mix.ts) — like milestones on every post, comment spikes on
 * every post, and merchants' takings over ten minutes — so each like touches a milestone series,
 * each comment a spike series and each transaction a window series. Made through the rule store
 * in the run's schema (the migrations ran with the persister), once.
 */
import { createSqlRuleStore } from '../../services/infra/alerts/sql-rule-store.ts';
import { createPgDatabase } from '../../services/infra/sql/pg-database.ts';
import type { Deployment } from './deployment.ts';

/** Creates the rules unless the schema has some already; answers what it made. */
export async function createBenchAlertRules(deployment: Deployment): Promise<string[]> {
  const sql = createPgDatabase({
    url: deployment.servers.pgUrl,
    readUrls: [],
    schema: deployment.ns.pgSchema,
    poolSize: 1,
  });
  try {
    const store = createSqlRuleStore({ sql });
    const existing = await store.loadEnabled();
    if (existing.rules.length > 0) return existing.rules.map((r) => `${r.name} (there)`);
    const recipients = { userIds: [], groups: [], targetOwner: false, dashboard: true };
    const made = await Promise.all([
      store.create({
        name: 'post like milestones',
        eventType: 'like',
        recipients,
        condition: {
          kind: 'milestone',
          subject: { kind: 'target_prefix', value: 'post/' },
          thresholds: [100, 1_000, 10_000, 100_000],
        },
      }),
      store.create({
        name: 'post comment spikes',
        eventType: 'comment',
        recipients,
        condition: { kind: 'spike', subject: { kind: 'target_prefix', value: 'post/' } },
      }),
      store.create({
        name: 'merchant takings over ten minutes',
        eventType: 'transaction',
        recipients,
        condition: {
          kind: 'threshold',
          subject: { kind: 'target_prefix', value: 'merchant/' },
          measure: 'sum',
          windowMinutes: 10,
          threshold: 1_000_000,
        },
      }),
    ]);
    return made.map((r) => `${r.name} (${r.condition.kind})`);
  } finally {
    await sql.close();
  }
}
