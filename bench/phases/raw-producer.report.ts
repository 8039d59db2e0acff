/** Phase `raw-producer` in the report: its section (its figures are the ingest rows' baseline). */
import { cpuCells, cpuHeader, ms, num, type Push, table } from '../lib/format.ts';
import { KAFKA_LIBRARY, type Results } from '../lib/results.ts';

/** Phase `raw-producer`: the Kafka client alone at each write size. */
export function renderRawProducer(r: Results, push: Push): void {
  push('## Raw producer baseline', '');
  push(
    `\`bench/baselines/raw-producer.ts\`: ${KAFKA_LIBRARY[r.setup.kafkaClient ?? 'kafkajs']} (the roles' client) alone, with ingest's producer settings (idempotent, \`acks=-1\`, one request in ` +
      "flight, the Java client's partitioner) and ingest's batching (one send at a time, of as many records as ingest put in one write), " +
      "on records encoded as ingest encodes the load tests' events, to a topic of the same partitions, in a process of its own.",
    '',
  );
  push(
    r.rawProducer.length === 0
      ? 'Not measured.'
      : table(
          [
            'records per send',
            'mirrors',
            'events/s',
            'send p50',
            'send p99',
            ...cpuHeader(['raw-producer', 'kafka']),
          ],
          r.rawProducer.map((x) => [
            num(x.batch),
            x.mirrors,
            num(x.eventsPerSecond),
            ms(x.sendP50Ms),
            ms(x.sendP99Ms),
            ...cpuCells(x.cpu, ['raw-producer', 'kafka']),
          ]),
        ),
    '',
  );
}
