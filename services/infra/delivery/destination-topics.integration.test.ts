/** The destination topics contract on Kafka (kafkajs), checked with an admin client of its own. */
import { Kafka, logLevel } from 'kafkajs';
import { realServers, requireRealServers } from '../../testing/real-servers.ts';
import { createKafkaEventLog } from '../log/kafka-event-log.ts';
import { createLogger } from '../logger.ts';
import { handleProcessWarnings } from '../node-warnings.ts';
import { destinationTopicsContract } from './destination-topics.contract.ts';

await requireRealServers();
handleProcessWarnings();

destinationTopicsContract('Kafka', async () => {
  const brokers = realServers.kafkaBrokers.split(',');
  const log = createKafkaEventLog({
    brokers,
    clientId: 'tally-test',
    produceTimeoutMs: 10_000,
    logger: createLogger('warn'),
  });
  const admin = new Kafka({ brokers, clientId: 'tally-test-admin', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  return {
    log,
    exists: async (topic) => (await admin.listTopics()).includes(topic),
    cleanup: async () => {
      await admin.disconnect();
      await log.close();
    },
  };
});
