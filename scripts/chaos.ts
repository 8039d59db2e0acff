/**
 * `make chaos`: the chaos run of services/testing/chaos.ts with the figures of the environment,
 * its report on stdout (Markdown), progress on stderr; exit 1 on any difference, 2 on a bad setting.
 *
 *   CHAOS_EVENTS    events the simulator sends (default 100000)
 *   CHAOS_RATE      events per second offered (default 1500)
 *   CHAOS_REPLICAS  processes per consumer role (default 3)
 *   CHAOS_KILLS     SIGKILLs of a random consumer process (default 5)
 *   CHAOS_SCENARIO  clickstream | social | transactions | orders (default transactions)
 *   CHAOS_SEED      picks the events and the victims (default random; printed)
 *   CHAOS_REPORT    also write the report to this file
 *   TALLY_KAFKA_CLIENT  kafkajs | platformatic: the Kafka client of every process (default kafkajs)
 */
import { writeFileSync } from 'node:fs';
import { startReceiver } from '../services/receiver/receiver.ts';
import { CHAOS_DEFAULTS, type ChaosOptions, formatChaosReport, runChaos } from '../services/testing/chaos.ts';

function integer(name: string, fallback: number, min: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) {
    process.stderr.write(`${name}: must be an integer ≥ ${min}; got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return value;
}

const scenarios = ['clickstream', 'social', 'transactions', 'orders'] as const;
const scenario = (process.env.CHAOS_SCENARIO || CHAOS_DEFAULTS.scenario) as ChaosOptions['scenario'];
if (!scenarios.includes(scenario)) {
  process.stderr.write(
    `CHAOS_SCENARIO: must be one of ${scenarios.join(', ')}; got ${JSON.stringify(scenario)}\n`,
  );
  process.exit(2);
}
const kafkaClient = (process.env.TALLY_KAFKA_CLIENT || 'kafkajs') as NonNullable<ChaosOptions['kafkaClient']>;
if (kafkaClient !== 'kafkajs' && kafkaClient !== 'platformatic') {
  process.stderr.write(
    `TALLY_KAFKA_CLIENT: must be kafkajs or platformatic; got ${JSON.stringify(kafkaClient)}\n`,
  );
  process.exit(2);
}
const options: Omit<ChaosOptions, 'log'> = {
  ...CHAOS_DEFAULTS,
  events: integer('CHAOS_EVENTS', CHAOS_DEFAULTS.events, 1),
  rate: integer('CHAOS_RATE', CHAOS_DEFAULTS.rate, 1),
  replicas: integer('CHAOS_REPLICAS', CHAOS_DEFAULTS.replicas, 1),
  kills: integer('CHAOS_KILLS', CHAOS_DEFAULTS.kills, 0),
  scenario,
  kafkaClient,
  seed: integer('CHAOS_SEED', Math.floor(Math.random() * 2 ** 31), 0),
  startReceiver,
};
const result = await runChaos({ ...options, log: (line) => process.stderr.write(`${line}\n`) });
const report = formatChaosReport(result, options);
process.stdout.write(`\n${report}`);
if (process.env.CHAOS_REPORT) writeFileSync(process.env.CHAOS_REPORT, report);
process.exit(result.ok ? 0 : 1);
