/**
 * The event log contract (event-log.contract.ts) on the Kafka adapter, against the real broker.
 */
import { realServers, requireRealServers } from '../../testing/real-servers.ts';
import { createLogger } from '../logger.ts';
import { handleProcessWarnings } from '../node-warnings.ts';
import { eventLogContract } from './event-log.contract.ts';
import { createKafkaEventLog } from './kafka-event-log.ts';

await requireRealServers();
handleProcessWarnings(); // drops kafkajs's known-harmless TimeoutNegativeWarning

eventLogContract('kafka', async () => {
  const log = createKafkaEventLog({
    brokers: realServers.kafkaBrokers.split(','),
    clientId: 'tally-test',
    produceTimeoutMs: 10_000,
    logger: createLogger('warn'),
  });
  return { log, cleanup: () => log.close() };
});
