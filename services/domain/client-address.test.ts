import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientAddress, inRanges, parseCidr, parseIp } from './client-address.ts';

const ranges = (...texts: string[]) =>
  texts.map((t) => {
    const c = parseCidr(t);
    if ('error' in c) throw new Error(c.error);
    return c;
  });

test('addresses and ranges: IPv4, IPv6, IPv4-mapped', () => {
  assert.deepEqual(parseIp('10.1.2.3'), { family: 4, value: 0x0a010203n });
  assert.deepEqual(parseIp('::ffff:10.1.2.3'), { family: 4, value: 0x0a010203n });
  assert.deepEqual(parseIp('2001:db8::1'), { family: 6, value: (0x20010db8n << 96n) | 1n });
  assert.equal(parseIp('10.1.2'), undefined);
  const trusted = ranges('10.0.0.0/8', '192.168.1.7', 'fd00::/8');
  for (const inside of ['10.255.0.1', '192.168.1.7', 'fd12::3', '::ffff:10.0.0.9'])
    assert.ok(inRanges(inside, trusted), inside);
  for (const outside of ['11.0.0.1', '192.168.1.8', 'fe80::1', 'junk'])
    assert.ok(!inRanges(outside, trusted), outside);
  assert.ok(inRanges('203.0.113.9', ranges('0.0.0.0/0')));
});

test('X-Forwarded-For is believed only from trusted hops, read from the right', () => {
  const trusted = (a: string) => inRanges(a, ranges('10.0.0.0/8', '127.0.0.1'));
  // An untrusted peer is the client, whatever it claims.
  assert.equal(clientAddress('203.0.113.9', '1.2.3.4', trusted), '203.0.113.9');
  // A trusted peer: the rightmost untrusted hop; what the client wrote left of it is ignored.
  assert.equal(clientAddress('127.0.0.1', '1.2.3.4, 198.51.100.7', trusted), '198.51.100.7');
  assert.equal(clientAddress('127.0.0.1', '198.51.100.7, 10.1.1.1', trusted), '198.51.100.7');
  assert.equal(clientAddress('127.0.0.1', '[2001:db8::5]:443', trusted), '2001:db8::5');
  // Every hop trusted: the leftmost; garbage ends the walk at the hop right of it.
  assert.equal(clientAddress('127.0.0.1', '10.2.2.2, 10.1.1.1', trusted), '10.2.2.2');
  assert.equal(clientAddress('127.0.0.1', 'unknown, 10.1.1.1', trusted), '10.1.1.1');
  assert.equal(clientAddress('127.0.0.1', undefined, trusted), '127.0.0.1');
});
