/**
 * The simulator's scenarios: pure, deterministic event generators (same options, same events).
 * See each scenario's module for its model.
 */
import { createClickstream } from './clickstream.ts';
import { createOrders } from './orders.ts';
import type { EventSource, ScenarioOptions } from './sim-event.ts';
import { createSocial } from './social.ts';
import { createTransactions } from './transactions.ts';

export type { EventSource, ScenarioOptions, SimEvent } from './sim-event.ts';

export const SCENARIOS = ['clickstream', 'social', 'transactions', 'orders'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Population sizes used when `--targets` / `--users` are not given. */
export const SCENARIO_DEFAULTS: Readonly<Record<ScenarioName, { targets: number; users: number }>> =
  Object.freeze({
    clickstream: { targets: 1_000, users: 10_000 }, // pages, visitors
    social: { targets: 5_000, users: 20_000 }, // posts at the start, members
    transactions: { targets: 500, users: 10_000 }, // merchants, card holders
    orders: { targets: 200, users: 20_000 }, // stores, customers
  });

export function isScenarioName(name: string): name is ScenarioName {
  return (SCENARIOS as readonly string[]).includes(name);
}

/** The event stream of scenario `name`. */
export function createScenario(name: ScenarioName, options: ScenarioOptions): EventSource {
  if (!(options.ratePerSecond > 0)) throw new RangeError('ratePerSecond must be > 0');
  if (!Number.isSafeInteger(options.users) || options.users < 1)
    throw new RangeError('users must be an integer ≥ 1');
  switch (name) {
    case 'clickstream':
      return createClickstream(options);
    case 'social':
      return createSocial(options);
    case 'transactions':
      return createTransactions(options);
    case 'orders':
      return createOrders(options);
  }
}
