/** A consumer role started again while its backends are unreachable (run-roles.ts startConsumerRole). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError, Code } from './infra/app-error.ts';
import { createLogger } from './infra/logger.ts';
import { isUnreachable, startConsumerRole } from './run-roles.ts';

const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9092'), { code: 'ECONNREFUSED' });
const stoppable = { name: 'r', stop: async () => {} };

test('unreachable: a refused connection, a KafkaJS connection error, UNAVAILABLE, also as a cause; not a wrong setting', () => {
  assert.ok(isUnreachable(refused()));
  assert.ok(isUnreachable(Object.assign(new Error('Connection error'), { name: 'KafkaJSConnectionError' })));
  assert.ok(isUnreachable(new AppError(Code.UNAVAILABLE, 'Kafka admin connection failed')));
  assert.ok(isUnreachable(new Error('start failed', { cause: refused() })));
  assert.ok(!isUnreachable(new Error('WRONGPASS invalid username-password pair')));
  assert.ok(!isUnreachable(new AppError(Code.INVALID_ARGUMENT, 'bad')));
});

test('a start refused twice by an unreachable backend succeeds the third time; another failure is not retried', async () => {
  let calls = 0;
  const started = await startConsumerRole(
    'persister',
    async () => {
      if (++calls < 3) throw refused();
      return stoppable;
    },
    createLogger('error'),
    () => false,
  );
  assert.equal(started, stoppable);
  assert.equal(calls, 3);
  let once = 0;
  await assert.rejects(
    startConsumerRole(
      'counter',
      async () => {
        once++;
        throw new Error('WRONGPASS');
      },
      createLogger('error'),
      () => false,
    ),
    /WRONGPASS/,
  );
  assert.equal(once, 1);
});

test('no retry once the process drains, nor past the retry time', async () => {
  let calls = 0;
  await assert.rejects(
    startConsumerRole(
      'router',
      async () => {
        calls++;
        throw refused();
      },
      createLogger('error'),
      () => calls >= 1,
    ),
    /ECONNREFUSED/,
  );
  assert.equal(calls, 1);
  calls = 0;
  await assert.rejects(
    startConsumerRole(
      'router',
      async () => {
        calls++;
        throw refused();
      },
      createLogger('error'),
      () => false,
      0,
    ),
    /ECONNREFUSED/,
  );
  assert.equal(calls, 1);
});
