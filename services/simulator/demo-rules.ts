/**
 * `tally simulate --demo-rules`: the alert rules that make a scenario's traffic raise
 * notifications on the live dashboard, created through the REST API (`/v1/alert-rules`) before
 * the run — once: a rule of the same name already there is kept as it is. Only the social
 * scenario has them: likes reaching milestones on each post (told to the dashboard and the post's
 * owner), and likes spiking on a post (told to the dashboard).
 */
import type { ScenarioName } from './scenarios.ts';

/** A rule as `POST /v1/alert-rules` takes it (the proto's JSON). */
export interface DemoRule {
  name: string;
  eventType: string;
  recipients: { dashboard?: boolean; targetOwner?: boolean };
  milestone?: { subject: { targetPrefix: string }; thresholds: number[] };
  spike?: {
    subject: { targetPrefix: string };
    halfLifeMinutes?: number;
    warmupMinutes?: number;
    zThreshold?: number;
    zClear?: number;
    minCount?: number;
    minRatio?: number;
  };
}

export const DEMO_RULES: Readonly<Partial<Record<ScenarioName, readonly DemoRule[]>>> = Object.freeze({
  social: [
    {
      name: 'demo: post likes milestones',
      eventType: 'like',
      recipients: { dashboard: true, targetOwner: true },
      milestone: { subject: { targetPrefix: 'post/' }, thresholds: [10, 50, 100, 500, 1_000, 5_000, 10_000] },
    },
    {
      name: 'demo: post like spikes',
      eventType: 'like',
      recipients: { dashboard: true },
      // Tuned for a demo that shows a spike minutes after the start: one full minute of history
      // (the first, partial, is skipped), a baseline of ten minutes, and a spike only when a
      // minute is at least 20 likes, three times the usual and six deviations above it — which
      // a steady Zipf-popular post does not reach.
      spike: {
        subject: { targetPrefix: 'post/' },
        halfLifeMinutes: 10,
        warmupMinutes: 1,
        zThreshold: 6,
        zClear: 3,
        minCount: 20,
        minRatio: 3,
      },
    },
  ],
});

/** What happened to each demo rule, one line each, for the run's output. */
export async function ensureDemoRules(
  origin: string,
  scenario: ScenarioName,
  fetchImpl: typeof fetch = fetch,
): Promise<string[]> {
  const rules = DEMO_RULES[scenario];
  if (!rules) return [`no demo alert rules for scenario ${scenario}`];
  const listed = await fetchImpl(`${origin}/v1/alert-rules`);
  if (!listed.ok)
    return [
      `demo alert rules not created: GET /v1/alert-rules answered ${listed.status} ${await reason(listed)}`,
    ];
  const existing = new Set(
    ((await listed.json()) as { rules?: { name: string }[] }).rules?.map((r) => r.name),
  );
  const lines: string[] = [];
  for (const rule of rules) {
    if (existing.has(rule.name)) {
      lines.push(`demo alert rule "${rule.name}": already there`);
      continue;
    }
    const created = await fetchImpl(`${origin}/v1/alert-rules`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(rule),
    });
    lines.push(
      created.ok
        ? `demo alert rule "${rule.name}": created (${((await created.json()) as { rule?: { id?: string } }).rule?.id ?? '?'})`
        : `demo alert rule "${rule.name}": not created, ${created.status} ${await reason(created)}`,
    );
  }
  return lines;
}

async function reason(response: Response): Promise<string> {
  const text = await response.text();
  try {
    return (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text.slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}
