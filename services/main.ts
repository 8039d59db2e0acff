/**
 * `tally <role…>` / `tally all`: runs roles (run-roles.ts, by the table in roles.ts) until
 * SIGTERM/SIGINT, then drains. The other commands — `simulate`, `dlq-replay`, `migrate`, `keys`,
 * `alerts`, `destinations`, `deliveries`, `projections`, `receiver` —
 * are a table of their own below: each opens only the ports it needs.
 */
import { resolve } from 'node:path';
import { alertsCommand } from './alerts/alerts-command.ts';
import { closeBackends, openBackends, type Port } from './backends.ts';
import { deliveriesCommand } from './destinations/deliveries-command.ts';
import { destinationsCommand } from './destinations/destinations-command.ts';
import { replayDeadLetters } from './dlq/replay.ts';
import { createSqlRuleStore } from './infra/alerts/sql-rule-store.ts';
import { ConfigError, loadConfig, type TallyConfig } from './infra/config.ts';
import { DataDirInUseError } from './infra/data-dir-lock.ts';
import { createDestinationAdmin } from './infra/delivery/destination-admin.ts';
import { createLogDestinationTopics } from './infra/delivery/destination-topics.ts';
import { createSqlDeliveryLog } from './infra/delivery/sql-delivery-log.ts';
import { createSqlDestinationStore } from './infra/delivery/sql-destination-store.ts';
import { createSqlProjectionStore } from './infra/entities/sql-projection-store.ts';
import { createSqlKeyStore } from './infra/keys/sql-key-store.ts';
import { createLogger } from './infra/logger.ts';
import { handleProcessWarnings } from './infra/node-warnings.ts';
import { migrate } from './infra/sql/migrate.ts';
import { keysCommand } from './keys/keys-command.ts';
import { projectionsCommand } from './projections/projections-command.ts';
import { deliveryAdmin } from './query/delivery-admin.ts';
import { receiverCommand } from './receiver/receiver-command.ts';
import { ROLES, type Role } from './roles.ts';
import { type Running, runRoles } from './run-roles.ts';
import { simulateCommand } from './simulator/simulate-command.ts';

export { ROLES, type Role };

const USAGE = `usage: tally <role...> | tally all | tally <command> [flags]
roles: ${ROLES.join(', ')}
commands:
  simulate [flags]                 send simulated traffic (--help lists its flags)
  dlq-replay [--from-group <g>]    send dead-lettered events back to the events topic
  migrate                          apply the SQL schema
  keys create|list|revoke|rotate   administer API keys (keys --help lists the flags)
  alerts create|list|get|update|delete
                                   administer alert rules (alerts --help lists the flags)
  destinations create|list|get|update|delete|rotate-secret
                                   administer delivery destinations (destinations --help lists the flags)
  deliveries list|attempts|redeliver|recover
                                   inspect deliveries, send them again (deliveries --help lists the flags)
  projections list|get|put|delete  administer projections, the live entities' model (projections --help)
  receiver [--port N] [--secret whsec_...] [--fail-rate R] [--latency 200ms] [--status S] [--seed S]
                                   a local webhook receiver (receiver --help lists the flags)
configuration: TALLY_* environment variables (see README.md); with none set, every port
uses its embedded adapter under TALLY_DATA_DIR (default ./data)`;

/** Thrown for a command line or environment that cannot run; exit status 2. */
class UsageError extends Error {}

function parseRoles(args: readonly string[]): Role[] {
  if (args.length === 0) throw new UsageError('no role given');
  if (args.includes('all')) return [...ROLES];
  const unknown = args.filter((a) => !(ROLES as readonly string[]).includes(a));
  if (unknown.length > 0) throw new UsageError(`unknown role or command: ${unknown.join(', ')}`);
  return [...new Set(args as Role[])];
}

/** A command other than running roles: its flags, the configuration; resolves to the exit status. */
type Command = (flags: readonly string[], config: TallyConfig) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  receiver: async (flags) => {
    const aborter = new AbortController();
    const onSignal = () => aborter.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    return receiverCommand(flags, { out: process.stdout, err: process.stderr, signal: aborter.signal });
  },
  simulate: async (flags) => {
    const aborter = new AbortController();
    const onSignal = () => aborter.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    return simulateCommand(flags, { out: process.stdout, err: process.stderr, signal: aborter.signal });
  },
  'dlq-replay': async (flags, config) => {
    const at = flags.indexOf('--from-group');
    const fromGroup = at >= 0 ? flags[at + 1] : undefined;
    if ((at >= 0 && !fromGroup) || flags.some((f, i) => f !== '--from-group' && i !== at + 1))
      throw new UsageError(`dlq-replay: unknown or incomplete flags: ${flags.join(' ')}`);
    const logger = createLogger(config.logLevel);
    const backends = await openBackends(new Set(['log']), config, logger);
    try {
      const summary = await replayDeadLetters({
        log: backends.log!,
        logger,
        dlqTopic: config.topics.dlq,
        eventsTopic: config.topics.events,
        groupId: `${config.groupPrefix}dlq-replay`,
        fromGroup:
          fromGroup === undefined || fromGroup.startsWith(config.groupPrefix)
            ? fromGroup
            : config.groupPrefix + fromGroup,
      });
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    } finally {
      await closeBackends(backends);
    }
    return 0;
  },
  migrate: async (flags, config) => {
    if (flags.length > 0) throw new UsageError(`migrate takes no flags: ${flags.join(' ')}`);
    const logger = createLogger(config.logLevel);
    const backends = await openBackends(new Set(['sql']), config, logger);
    try {
      const applied = await migrate(backends.sql!, config.pg.schema);
      logger.info('migrations applied', {
        applied,
        schema: config.pg.schema,
        adapter: backends.sql!.description,
      });
    } finally {
      await closeBackends(backends);
    }
    return 0;
  },
  keys: async (flags, config) =>
    keysCommand(
      flags,
      async () => {
        // No logger: nothing about keys is logged, and the command's output is its own.
        const backends = await openMigratedSql(config);
        const store = createSqlKeyStore({ sql: backends.sql! });
        return {
          store,
          close: async () => {
            await store.close();
            await closeBackends(backends);
          },
        };
      },
      { out: process.stdout, err: process.stderr },
    ),
  alerts: async (flags, config) =>
    alertsCommand(
      flags,
      async () => {
        const backends = await openMigratedSql(config);
        return {
          store: createSqlRuleStore({ sql: backends.sql! }),
          close: () => closeBackends(backends),
        };
      },
      { out: process.stdout, err: process.stderr },
    ),
  destinations: async (flags, config) =>
    destinationsCommand(
      flags,
      async () => {
        // The database and the event log, where each destination's topic is made and deleted.
        const backends = await openMigratedSql(config, ['log']);
        const topics = createLogDestinationTopics({
          log: backends.log!,
          partitions: config.topics.eventsPartitions,
          namespace: config.groupPrefix,
        });
        return {
          destinations: createDestinationAdmin({
            store: createSqlDestinationStore({ sql: backends.sql! }),
            topics,
          }),
          close: () => closeBackends(backends),
        };
      },
      { out: process.stdout, err: process.stderr },
    ),
  deliveries: async (flags, config) =>
    deliveriesCommand(
      flags,
      async () => {
        const backends = await openMigratedSql(config);
        const sql = backends.sql!;
        return {
          deliveries: deliveryAdmin({
            log: createSqlDeliveryLog({ sql }),
            destinations: createSqlDestinationStore({ sql }),
          }),
          close: () => closeBackends(backends),
        };
      },
      { out: process.stdout, err: process.stderr },
    ),
  projections: async (flags, config) =>
    projectionsCommand(
      flags,
      async () => {
        const backends = await openMigratedSql(config);
        return {
          store: createSqlProjectionStore({ sql: backends.sql! }),
          close: () => closeBackends(backends),
        };
      },
      {
        out: process.stdout,
        err: process.stderr,
        readStdin: async () => {
          let text = '';
          for await (const chunk of process.stdin) text += chunk;
          return text;
        },
      },
    ),
};

/** The SQL port alone, migrated; the command's output is its own, so only errors are logged. */
async function openMigratedSql(config: TallyConfig, more: readonly Port[] = []) {
  const backends = await openBackends(new Set<Port>(['sql', ...more]), config, createLogger('error'));
  try {
    await migrate(backends.sql!, config.pg.schema);
  } catch (error) {
    await closeBackends(backends);
    throw error;
  }
  return backends;
}

/** A user's mistake (usage, configuration, a data directory in use): a message and exit status 2. */
function isUserError(error: unknown): error is Error {
  return error instanceof UsageError || error instanceof ConfigError || error instanceof DataDirInUseError;
}

function reportUserError(error: Error): void {
  process.stderr.write(`tally: ${error.message}\n${error instanceof UsageError ? `${USAGE}\n` : ''}`);
  process.exitCode = 2;
}

async function main(args: readonly string[]): Promise<void> {
  let config: TallyConfig;
  let roles: Role[];
  try {
    config = loadConfig();
    const command = args[0] === undefined ? undefined : COMMANDS[args[0]];
    if (command) {
      process.exitCode = await command(args.slice(1), config);
      return;
    }
    roles = parseRoles(args);
  } catch (error) {
    if (isUserError(error)) return reportUserError(error);
    throw error;
  }
  const logger = createLogger(config.logLevel, { pid: process.pid });
  handleProcessWarnings(logger);
  logger.info('starting', { roles, dataDir: resolve(config.dataDir) });
  let running: Running | undefined;
  let fatal: Record<string, unknown> | undefined; // a consumer failed before runRoles returned
  let stopping = false;
  const stopAndExit = (code: number, why: Record<string, unknown>) => {
    if (!running) {
      fatal = why;
      return;
    }
    if (stopping) return;
    stopping = true;
    logger.info('draining', { ...why, drainTimeoutMs: config.drainTimeoutMs });
    const force = setTimeout(() => {
      logger.error('drain timed out: exiting', { drainTimeoutMs: config.drainTimeoutMs });
      process.exit(1);
    }, config.drainTimeoutMs + 5_000);
    force.unref();
    running.stop().then(
      () => {
        logger.info('stopped');
        process.exitCode = code;
        // Everything is stopped and committed: a client's reconnect timer left behind must not
        // hold the process until the drain deadline and turn a clean stop into a failure.
        setTimeout(() => {
          logger.warn('exiting with handles still open after the stop', {
            resources: process.getActiveResourcesInfo(),
          });
          process.exit(code);
        }, 1_000).unref();
      },
      (error: unknown) => {
        logger.error('stop failed', { error });
        process.exit(1);
      },
    );
  };
  try {
    running = await runRoles(roles, config, logger, {
      onFatal: (error) => stopAndExit(1, { reason: 'a consumer role could not start', error: String(error) }),
    });
  } catch (error) {
    if (isUserError(error)) return reportUserError(error);
    logger.error('start-up failed', { error });
    process.exitCode = 1;
    return;
  }
  if (fatal) stopAndExit(1, fatal);
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.error('second signal: exiting without draining', { signal });
      process.exit(130);
    }
    stopAndExit(0, { signal });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

if (import.meta.main) {
  await main(process.argv.slice(2));
}
