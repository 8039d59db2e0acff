/**
 * The destination topics contract, run on each event log adapter (Kafka on the real broker, the
 * embedded log): a destination's topic exists once created, with the partitions asked for and
 * writable, and is gone with its records once deleted. `exists` asks the log itself, apart from
 * the port, whether a topic is there.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { formatDestinationId } from '../../domain/destinations.ts';
import type { EventLog } from '../log/event-log.ts';
import { createLogDestinationTopics } from './destination-topics.ts';

export interface TopicsEnvironment {
  log: EventLog;
  /** Whether the log holds `topic`, asked apart from the port (an admin client, the files). */
  exists(topic: string): Promise<boolean>;
  cleanup(): Promise<void>;
}

const newId = () =>
  formatDestinationId(new Uint8Array(Buffer.from(randomUUID().replaceAll('-', ''), 'hex').subarray(0, 8)));

export function destinationTopicsContract(
  adapter: string,
  environment: () => Promise<TopicsEnvironment>,
): void {
  describe(`destination topics contract: ${adapter}`, () => {
    test('create makes deliveries.<id> with its partitions; again is no error; delete removes it and its records', async (t) => {
      const env = await environment();
      const namespace = `t${randomUUID().slice(0, 8)}.`;
      const topics = createLogDestinationTopics({ log: env.log, partitions: 3, namespace });
      const id = newId();
      const topic = topics.topicOf(id);
      t.after(async () => {
        await env.log.deleteTopics([topic]);
        await env.cleanup();
      });
      assert.equal(topic, `${namespace}deliveries.${id}`);
      assert.equal(await env.exists(topic), false);

      await topics.create(id);
      await topics.create(id);
      assert.equal(await env.exists(topic), true);
      assert.deepEqual([...(await env.log.endOffsets(topic)).keys()].sort(), [0, 1, 2]);
      await env.log.producer().send(topic, [{ key: 'user-1', value: new TextEncoder().encode('{}') }]);
      const written = [...(await env.log.endOffsets(topic)).values()].reduce((a, b) => a + b, 0n);
      assert.equal(written, 1n);

      await topics.delete(id);
      assert.equal(await env.exists(topic), false);
      await topics.delete(id); // a missing topic is no error
      await topics.create(id);
      const again = [...(await env.log.endOffsets(topic)).values()].reduce((a, b) => a + b, 0n);
      assert.equal(again, 0n, 're-created empty: the records went with the topic');
    });

    test('each destination has its own topic', async (t) => {
      const env = await environment();
      const topics = createLogDestinationTopics({
        log: env.log,
        partitions: 1,
        namespace: `t${randomUUID().slice(0, 8)}.`,
      });
      const [a, b] = [newId(), newId()];
      t.after(async () => {
        await env.log.deleteTopics([topics.topicOf(a), topics.topicOf(b)]);
        await env.cleanup();
      });
      await topics.create(a);
      await topics.create(b);
      await topics.delete(a);
      assert.equal(await env.exists(topics.topicOf(a)), false);
      assert.equal(
        await env.exists(topics.topicOf(b)),
        true,
        "deleting one destination's topic leaves the other's",
      );
    });
  });
}
