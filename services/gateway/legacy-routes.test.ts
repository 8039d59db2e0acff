/**
 * The seed's routes on a running `tally all` (embedded mode): the seed's own traffic, with its
 * unparseable ip, is accepted (the ip filled from the request, the text kept as `raw_ip`) while
 * /v1 stays strict; `/event_track/` answers CLICK and VIEW first, zero-filled, then other types.
 * What was written is read back from the event log once the process has stopped.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Event } from '../gen/tally/v1/event_pb.js';
import { createEmbeddedEventLog } from '../infra/log/embedded-event-log.ts';
import { createLogger } from '../infra/logger.ts';
import { decodeEvent } from '../pipeline/event-codec.ts';
import { waitFor } from '../testing/real-servers.ts';
import { http } from '../testing/tally-client.ts';
import { freePort, startTally } from '../testing/tally-process.ts';
import { MAX_RAW_IP_CHARS, seedIp, seedTrack } from './legacy-routes.ts';

test('seedIp keeps an address, drops anything else and keeps it as a bounded raw_ip when it may be one', () => {
  assert.deepEqual(seedIp(''), { ip: '' });
  assert.deepEqual(seedIp('203.0.113.7'), { ip: '203.0.113.7' });
  assert.deepEqual(seedIp('2001:db8::1'), { ip: '2001:db8::1' });
  assert.deepEqual(seedIp('323.3253.34.999'), { ip: '', attributes: { raw_ip: '323.3253.34.999' } });
  assert.deepEqual(seedIp('localhost'), { ip: '', attributes: { raw_ip: 'localhost' } });
  assert.deepEqual(seedIp('x'.repeat(5_000)), {
    ip: '',
    attributes: { raw_ip: 'x'.repeat(MAX_RAW_IP_CHARS) },
  });
  // A cut that would split a surrogate pair leaves the whole pair out.
  const emoji = `${'a'.repeat(MAX_RAW_IP_CHARS - 1)}😀`;
  assert.deepEqual(seedIp(emoji), { ip: '', attributes: { raw_ip: 'a'.repeat(MAX_RAW_IP_CHARS - 1) } });
  for (const unfit of ['10.0.0.1\u0000', '1.2.3.4\n', 'a\u0085', '\ud800x', 'bad\ufffd'])
    assert.deepEqual(seedIp(unfit), { ip: '' }, JSON.stringify(unfit));
});

test('seedTrack: CLICK and VIEW first, zero-filled, then every other type in the order given', () => {
  assert.deepEqual(seedTrack([]), [
    { type: 'CLICK', count: 0 },
    { type: 'VIEW', count: 0 },
  ]);
  assert.deepEqual(seedTrack([{ type: 'VIEW', count: 3n }]), [
    { type: 'CLICK', count: 0 },
    { type: 'VIEW', count: 3 },
  ]);
  assert.deepEqual(
    seedTrack([
      { type: 'ADD_TO_CART', count: 2n },
      { type: 'BUY', count: 1n },
      { type: 'CLICK', count: 5n },
      { type: 'VIEW', count: 3n },
    ]),
    [
      { type: 'CLICK', count: 5 },
      { type: 'VIEW', count: 3 },
      { type: 'ADD_TO_CART', count: 2 },
      { type: 'BUY', count: 1 },
    ],
  );
});

test('a running tally takes the seed traffic with its bad ip, keeps /v1 strict, and answers /event_track/ in the seed order', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-seed-'));
  const tally = await startTally(['all'], {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '2',
  });
  t.after(async () => {
    await tally.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });
  const port = tally.httpPort!;
  const url = `https://seed.example/${randomUUID()}`;
  const track = async () => (await http(port, 'POST', '/event_track/', { url })).body;

  // No event yet: CLICK and VIEW, zero.
  assert.deepEqual(await track(), {
    url,
    events: [
      { type: 'CLICK', count: 0 },
      { type: 'VIEW', count: 0 },
    ],
  });

  // The seed README's own request, and other ips a seed client may send.
  const sent: Record<string, { ip: unknown; expectIp: string; rawIp?: string }> = {
    'seed-readme': { ip: '323.3253.34.999', expectIp: '127.0.0.1', rawIp: '323.3253.34.999' },
    'seed-address': { ip: '203.0.113.7', expectIp: '203.0.113.7' },
    'seed-long': { ip: '9'.repeat(5_000), expectIp: '127.0.0.1', rawIp: '9'.repeat(MAX_RAW_IP_CHARS) },
    'seed-control': { ip: '10.0.0.1\u0000', expectIp: '127.0.0.1' },
    'seed-none': { ip: undefined, expectIp: '127.0.0.1' },
  };
  for (const [uuid, { ip }] of Object.entries(sent)) {
    const r = await http(port, 'PUT', '/event_generate/', { uuid, type: 'VIEW', ip, url });
    assert.equal(r.status, 200, `${uuid}: ${r.text}`);
    assert.equal(r.text, 'OK');
  }
  // Not a string at all is still a bad request; /v1 still refuses a bad ip.
  const numeric = await http(port, 'PUT', '/event_generate/', { type: 'VIEW', ip: 5, url });
  assert.equal(numeric.status, 400, numeric.text);
  assert.equal((numeric.body as { error: { field: string } }).error.field, 'ip');
  const strict = await http(port, 'POST', '/v1/events', { type: 'VIEW', target: url, ip: '323.3253.34.999' });
  assert.equal(strict.status, 400, strict.text);
  assert.equal((strict.body as { error: { field: string } }).error.field, 'event.ip');

  // Only VIEW seen: CLICK still first, at 0.
  const only = Object.keys(sent).length;
  await waitFor(
    async () => JSON.stringify(await track()).includes(`{"type":"VIEW","count":${only}}`),
    async () => `not counted yet: ${JSON.stringify(await track())}`,
  );
  assert.deepEqual(await track(), {
    url,
    events: [
      { type: 'CLICK', count: 0 },
      { type: 'VIEW', count: only },
    ],
  });

  // Other types (ordered before CLICK by code unit) come after CLICK and VIEW.
  for (const type of ['BUY', 'ADD_TO_CART', 'ADD_TO_CART', 'CLICK'])
    assert.equal((await http(port, 'PUT', '/event_generate/', { type, url })).status, 200);
  const expected = {
    url,
    events: [
      { type: 'CLICK', count: 1 },
      { type: 'VIEW', count: only },
      { type: 'ADD_TO_CART', count: 2 },
      { type: 'BUY', count: 1 },
    ],
  };
  await waitFor(
    async () => JSON.stringify(await track()) === JSON.stringify(expected),
    async () => `not counted yet: ${JSON.stringify(await track())}`,
  );

  // What reached the event log: the ip filled from the request where the seed's was not an address.
  assert.equal(await tally.kill('SIGTERM'), 0);
  const log = createEmbeddedEventLog({ dataDir: join(dataDir, 'log'), logger: createLogger('error') });
  t.after(() => log.close());
  const written = new Map<string, Event>();
  const consumer = log.consumer({
    groupId: `read-${randomUUID()}`,
    topics: ['events'],
    fromBeginning: true,
    maxWaitMs: 100,
  });
  t.after(() => consumer.stop());
  await consumer.run(async (batch) => {
    for (const record of batch.records) {
      const event = decodeEvent(record.value);
      written.set(event.id, event);
    }
  });
  await waitFor(
    () => Object.keys(sent).every((id) => written.has(id)),
    () => `read back: ${[...written.keys()]}`,
    30_000,
    50,
  );
  for (const [id, { expectIp, rawIp }] of Object.entries(sent)) {
    const event = written.get(id)!;
    assert.equal(event.ip, expectIp, id);
    assert.deepEqual(event.attributes, rawIp === undefined ? {} : { raw_ip: rawIp }, id);
    assert.equal(event.target, url);
  }
  assert.equal(written.size, only + 4, 'nothing refused was written');
});
