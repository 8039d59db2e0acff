import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkAddress,
  checkDestinationUrl,
  classifyAddress,
  embeddedIpv4,
  formatIp,
  parseCidr,
  parseIp,
} from './network-address.ts';

const ip = (text: string) => {
  const parsed = parseIp(text);
  assert.ok(parsed, `${text} parses`);
  return parsed;
};

describe('parseIp / formatIp', () => {
  test('IPv4 dotted decimal only; IPv6 in its text forms, brackets and zone ids', () => {
    assert.equal(formatIp(ip('192.168.1.20')), '192.168.1.20');
    for (const bad of ['1.2.3', '1.2.3.4.5', '01.2.3.4', '256.0.0.1', '0x7f.0.0.1', 'example.com', '1:2:3'])
      assert.equal(parseIp(bad), undefined, bad);
    assert.equal(formatIp(ip('::')), '::');
    assert.equal(formatIp(ip('::1')), '::1');
    assert.equal(formatIp(ip('[2001:DB8:0:0:1:0:0:1]')), '2001:db8::1:0:0:1');
    assert.equal(formatIp(ip('::ffff:127.0.0.1')), '::ffff:7f00:1');
    assert.equal(formatIp(ip('fe80::1%eth0')), 'fe80::1');
    assert.deepEqual(ip('0:0:0:0:0:ffff:7f00:1'), ip('::ffff:127.0.0.1'));
    for (const bad of [
      ':::',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      '12345::',
      '::g',
      '1.2.3.4::',
      '1:2:3:4:5:6:7::8:9',
    ])
      assert.equal(parseIp(bad), undefined, bad);
  });

  test('CIDR blocks: bare addresses are single hosts; bad text is named', () => {
    assert.deepEqual(parseCidr('127.0.0.1'), parseCidr('127.0.0.1/32'));
    assert.deepEqual(parseCidr('10.1.2.3/8'), parseCidr('10.0.0.0/8'));
    assert.throws(() => parseCidr('10.0.0.0/33'), /"10\.0\.0\.0\/33" is not a CIDR block/);
    assert.throws(() => parseCidr('fd00::/129'), /not a CIDR block/);
    assert.throws(() => parseCidr('nope/8'), /not a CIDR block/);
  });
});

describe('classifyAddress', () => {
  const cases: [string, string][] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.0.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['fec0::1', 'private'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['::ffff:10.0.0.1', 'private'],
    ['::127.0.0.1', 'loopback'],
    ['::8.8.8.8', 'reserved'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::8.8.8.8', 'public'],
    ['64:ff9b:1::1', 'reserved'],
    ['2002:7f00:1::', 'loopback'],
    ['2002:c0a8:101::1', 'private'],
    ['2002:0808:0808::1', 'public'],
    ['2001:db8::1', 'reserved'],
    ['2001:0:4136:e378::1', 'reserved'],
    ['100::1', 'reserved'],
    ['4000::1', 'reserved'],
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['2001:4860:4860::8888', 'public'],
  ];
  for (const [text, expected] of cases)
    test(`${text} is ${expected}`, () => assert.equal(classifyAddress(ip(text)), expected));

  test('the IPv4 address embedded in mapped, NAT64 and 6to4 forms', () => {
    assert.equal(formatIp(embeddedIpv4(ip('::ffff:7f00:1'))!), '127.0.0.1');
    assert.equal(formatIp(embeddedIpv4(ip('64:ff9b::a9fe:a9fe'))!), '169.254.169.254');
    assert.equal(formatIp(embeddedIpv4(ip('2002:a00:1::'))!), '10.0.0.1');
    assert.equal(embeddedIpv4(ip('2606:4700::1')), undefined);
    assert.equal(embeddedIpv4(ip('::1')), undefined);
  });
});

describe('checkAddress and the allow-list', () => {
  test('a refused address says what it is; the allow-list lets it through, also in mapped form', () => {
    const refused = checkAddress(ip('::ffff:169.254.169.254'));
    assert.deepEqual(refused, {
      allowed: false,
      reason: 'address ::ffff:a9fe:a9fe (169.254.169.254) is link-local and not in the allow-list',
    });
    const allowList = [parseCidr('127.0.0.1/32'), parseCidr('10.20.0.0/16')];
    assert.deepEqual(checkAddress(ip('127.0.0.1'), allowList), { allowed: true, class: 'loopback' });
    assert.deepEqual(checkAddress(ip('::ffff:127.0.0.1'), allowList), { allowed: true, class: 'loopback' });
    assert.deepEqual(checkAddress(ip('10.20.3.4'), allowList), { allowed: true, class: 'private' });
    assert.equal(checkAddress(ip('127.0.0.2'), allowList).allowed, false);
    assert.equal(checkAddress(ip('10.21.0.1'), allowList).allowed, false);
    assert.equal(checkAddress(ip('::1'), allowList).allowed, false);
    assert.equal(checkAddress(ip('8.8.8.8')).allowed, true);
  });
});

describe('checkDestinationUrl', () => {
  // Every one of these reaches this host, the cloud metadata service or a private network.
  const refused = [
    'https://127.0.0.1/hook',
    'https://127.0.0.1:8443/hook',
    'https://2130706433/',
    'https://017700000001/',
    'https://0x7f000001/',
    'https://0177.0.0.1/',
    'https://0x7f.1/',
    'https://0x7f.0x0.0x0.0x1/',
    'https://127.1/',
    'https://127.000.000.1/',
    'https://127.0.0.1./',
    'https://①②⑦.0.0.1/',
    'https://127。0。0。1/',
    'https://0/',
    'https://0.0.0.0/',
    'https://[::]/',
    'https://[::1]/',
    'https://[0:0:0:0:0:0:0:1]/',
    'https://[::ffff:127.0.0.1]/',
    'https://[::ffff:7f00:1]/',
    'https://[0:0:0:0:0:ffff:127.0.0.1]/',
    'https://[::127.0.0.1]/',
    'https://[::ffff:169.254.169.254]/',
    'https://[64:ff9b::169.254.169.254]/',
    'https://[2002:a9fe:a9fe::]/',
    'https://[fe80::1%25eth0]/',
    'https://[fe80::1]/',
    'https://[fd00::1]/',
    'https://[ff02::1]/',
    'https://169.254.169.254/latest/meta-data/',
    'https://2852039166/',
    'https://10.0.0.1/',
    'https://172.16.5.4/',
    'https://192.168.1.1/',
    'https://100.64.0.1/',
    'https://224.0.0.1/',
    'https://255.255.255.255/',
    'https://localhost/',
    'https://LOCALHOST./',
    'https://api.localhost/',
    'https://localhost.localdomain/',
    'https://evil@127.0.0.1/',
    'https://user:pass@example.com/',
    'http://example.com/',
    'ftp://example.com/',
    'file:///etc/passwd',
    'gopher://127.0.0.1:6379/_INFO',
    'not a url',
  ];
  test(`${refused.length} forms are refused, each with a reason`, () => {
    assert.ok(refused.length >= 30);
    for (const url of refused) {
      const verdict = checkDestinationUrl(url);
      assert.equal(verdict.allowed, false, url);
      assert.ok(!verdict.allowed && verdict.reason.length > 0);
    }
  });

  test('the reasons name the address, the scheme or the credentials', () => {
    const reason = (url: string, options = {}) => {
      const verdict = checkDestinationUrl(url, options);
      return verdict.allowed ? 'allowed' : verdict.reason;
    };
    assert.equal(reason('https://0x7f.1/'), 'address 127.0.0.1 is loopback and not in the allow-list');
    assert.equal(
      reason('https://[::ffff:7f00:1]/'),
      'address ::ffff:7f00:1 (127.0.0.1) is loopback and not in the allow-list',
    );
    assert.equal(
      reason('https://evil@127.0.0.1/'),
      'address 127.0.0.1 is loopback and not in the allow-list',
    );
    assert.equal(reason('https://evil@example.com/'), 'the URL carries credentials (user:password@)');
    assert.equal(reason('http://example.com/'), 'plain http is not allowed for this destination (use https)');
    assert.equal(reason('https://x.localhost/'), 'host x.localhost is a local name');
  });

  test('public hosts pass, with what to connect to; plain http only when allowed', () => {
    const byName = checkDestinationUrl('https://hooks.example.com/tally?x=1');
    assert.ok(byName.allowed);
    assert.deepEqual(byName.host, { name: 'hooks.example.com' });
    const trailingDot = checkDestinationUrl('https://hooks.example.com./');
    assert.ok(trailingDot.allowed);
    assert.deepEqual(trailingDot.host, { name: 'hooks.example.com' });
    for (const url of ['https://8.8.8.8/', 'https://[2606:4700:4700::1111]/', 'https://[64:ff9b::808:808]/'])
      assert.ok(checkDestinationUrl(url).allowed, url);
    assert.ok(checkDestinationUrl('http://example.com/', { allowPlainHttp: true }).allowed);
  });

  test('the allow-list lets a named block through, and nothing else', () => {
    const allowList = [parseCidr('127.0.0.1/32')];
    assert.ok(checkDestinationUrl('http://127.0.0.1:9000/', { allowPlainHttp: true, allowList }).allowed);
    assert.ok(checkDestinationUrl('https://2130706433/', { allowList }).allowed);
    assert.equal(checkDestinationUrl('https://127.0.0.2/', { allowList }).allowed, false);
    assert.equal(checkDestinationUrl('https://localhost/', { allowList }).allowed, false);
  });
});
