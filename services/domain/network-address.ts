/**
 * Which network addresses a webhook may be delivered to: IP parsing, classification and CIDR
 * allow-lists, and the check of a destination URL (docs/webhooks.md, "SSRF rules").
 * Pure: no I/O. The delivery path (infra/delivery/safe-http.ts) applies `checkAddress` to every
 * address a name resolves to, at connect time; `checkDestinationUrl` refuses what can be refused
 * from the URL alone (when a destination is created, and before each delivery).
 */

/** An IPv4 or IPv6 address as an unsigned integer (32 or 128 bits). */
export interface IpAddress {
  version: 4 | 6;
  value: bigint;
}

/**
 * What an address is. Only `public` may be delivered to without an allow-list entry. Addresses
 * that embed an IPv4 address (IPv4-mapped or -compatible IPv6, NAT64 64:ff9b::/96, 6to4
 * 2002::/16) take the class of the embedded address.
 */
export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'shared' // carrier-grade NAT, 100.64.0.0/10
  | 'unique-local'
  | 'unspecified' // 0.0.0.0/8, ::
  | 'multicast'
  | 'broadcast'
  | 'reserved'; // documentation, benchmarking, IETF, future use, anything outside 2000::/3

/** A CIDR block: `10.0.0.0/8`, `fd00::/8`, `127.0.0.1/32`. */
export interface Cidr {
  version: 4 | 6;
  base: bigint;
  prefix: number;
}

const DECIMAL_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

/** `a.b.c.d`, four decimal octets without leading zeros; undefined for anything else. */
function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!DECIMAL_OCTET.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

const HEX_GROUP = /^[0-9a-f]{1,4}$/;

/** RFC 4291 text forms: `::`, embedded dotted IPv4 at the end, a zone id (`%eth0`) ignored. */
function parseIpv6(input: string): bigint | undefined {
  let text = input.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (half: string): number[] | undefined => {
    if (half === '') return [];
    const parts = half.split(':');
    const groups: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i === parts.length - 1 && part.includes('.')) {
        const v4 = parseIpv4(part);
        if (v4 === undefined) return undefined;
        groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (HEX_GROUP.test(part)) {
        groups.push(Number.parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // A dotted IPv4 part may only end the address.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/**
 * An address in its canonical text forms — dotted-decimal IPv4, or IPv6 with or without brackets
 * and a zone id — as resolvers and URL parsers give them; undefined for anything else (names,
 * and the legacy IPv4 forms such as `0x7f.1`, which URL parsing turns into dotted form first).
 */
export function parseIp(text: string): IpAddress | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const v4 = parseIpv4(bare);
  if (v4 !== undefined) return { version: 4, value: v4 };
  if (!bare.includes(':')) return undefined;
  const v6 = parseIpv6(bare);
  return v6 === undefined ? undefined : { version: 6, value: v6 };
}

/** Dotted-decimal or compressed lower-case IPv6 (no embedded dotted form). */
export function formatIp(ip: IpAddress): string {
  if (ip.version === 4)
    return [24n, 16n, 8n, 0n].map((shift) => String((ip.value >> shift) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((ip.value >> BigInt(112 - 16 * i)) & 0xffffn));
  // The longest run of two or more zero groups becomes `::`.
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}

/** `10.0.0.0/8`, `fd00::/8`; a bare address is a /32 or /128. Throws a message naming the text. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  const bits = ip?.version === 6 ? 128 : 32;
  const prefixText = slash < 0 ? String(bits) : text.slice(slash + 1);
  const prefix = /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (!ip || !(prefix >= 0 && prefix <= bits))
    throw new Error(`${JSON.stringify(text)} is not a CIDR block (such as 10.0.0.0/8 or fd00::/8)`);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  return { version: ip.version, base: ip.value & mask, prefix };
}

/** Whether `ip` lies in `cidr` (same version only). */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.version !== ip.version) return false;
  const bits = ip.version === 6 ? 128 : 32;
  return ip.value >> BigInt(bits - cidr.prefix) === cidr.base >> BigInt(bits - cidr.prefix);
}

const v4Blocks: [Cidr, AddressClass][] = (
  [
    ['255.255.255.255/32', 'broadcast'],
    ['0.0.0.0/8', 'unspecified'],
    ['10.0.0.0/8', 'private'],
    ['100.64.0.0/10', 'shared'],
    ['127.0.0.0/8', 'loopback'],
    ['169.254.0.0/16', 'link-local'],
    ['172.16.0.0/12', 'private'],
    ['192.0.0.0/24', 'reserved'], // IETF protocol assignments
    ['192.0.2.0/24', 'reserved'], // documentation
    ['192.88.99.0/24', 'reserved'], // 6to4 relay anycast
    ['192.168.0.0/16', 'private'],
    ['198.18.0.0/15', 'reserved'], // benchmarking
    ['198.51.100.0/24', 'reserved'], // documentation
    ['203.0.113.0/24', 'reserved'], // documentation
    ['224.0.0.0/4', 'multicast'],
    ['240.0.0.0/4', 'reserved'], // future use
  ] as const
).map(([cidr, kind]) => [parseCidr(cidr), kind]);

const v6Blocks: [Cidr, AddressClass][] = (
  [
    ['::/128', 'unspecified'],
    ['::1/128', 'loopback'],
    ['64:ff9b:1::/48', 'reserved'], // local-use NAT64
    ['100::/64', 'reserved'], // discard-only
    ['2001::/23', 'reserved'], // IETF protocol assignments, Teredo 2001::/32 included
    ['2001:db8::/32', 'reserved'], // documentation
    ['3fff::/20', 'reserved'], // documentation
    ['fc00::/7', 'unique-local'],
    ['fe80::/10', 'link-local'],
    ['fec0::/10', 'private'], // deprecated site-local
    ['ff00::/8', 'multicast'],
  ] as const
).map(([cidr, kind]) => [parseCidr(cidr), kind]);

const MAPPED = parseCidr('::ffff:0:0/96');
const COMPATIBLE = parseCidr('::/96');
const NAT64 = parseCidr('64:ff9b::/96');
const SIX_TO_FOUR = parseCidr('2002::/16');
const GLOBAL_UNICAST = parseCidr('2000::/3');

/**
 * The IPv4 address an IPv6 address carries and is routed to (IPv4-mapped ::ffff:a.b.c.d,
 * IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d, 6to4 2002:AABB:CCDD::), if any.
 */
export function embeddedIpv4(ip: IpAddress): IpAddress | undefined {
  if (ip.version !== 6) return undefined;
  if (ip.value <= 1n) return undefined; // :: and ::1 are themselves, not 0.0.0.0 / 0.0.0.1
  if (cidrContains(MAPPED, ip) || cidrContains(COMPATIBLE, ip) || cidrContains(NAT64, ip))
    return { version: 4, value: ip.value & 0xffffffffn };
  if (cidrContains(SIX_TO_FOUR, ip)) return { version: 4, value: (ip.value >> 80n) & 0xffffffffn };
  return undefined;
}

/** The class of an address (see AddressClass). */
export function classifyAddress(ip: IpAddress): AddressClass {
  const embedded = embeddedIpv4(ip);
  if (embedded) {
    const inner = classifyAddress(embedded);
    // IPv4-compatible addresses are deprecated and route nowhere public.
    if (inner === 'public' && cidrContains(COMPATIBLE, ip)) return 'reserved';
    return inner;
  }
  const blocks = ip.version === 4 ? v4Blocks : v6Blocks;
  for (const [cidr, kind] of blocks) if (cidrContains(cidr, ip)) return kind;
  if (ip.version === 6 && !cidrContains(GLOBAL_UNICAST, ip)) return 'reserved';
  return 'public';
}

/** Whether an address may be delivered to, and why not. */
export type AddressVerdict = { allowed: true; class: AddressClass } | { allowed: false; reason: string };

/**
 * An address is allowed when it is public, or when a block of `allowList` holds it (or the IPv4
 * address it embeds): the allow-list is how a deployment lets webhooks reach its own network.
 */
export function checkAddress(ip: IpAddress, allowList: readonly Cidr[] = []): AddressVerdict {
  const kind = classifyAddress(ip);
  const embedded = embeddedIpv4(ip);
  if (allowList.some((cidr) => cidrContains(cidr, ip) || (embedded && cidrContains(cidr, embedded))))
    return { allowed: true, class: kind };
  if (kind === 'public') return { allowed: true, class: kind };
  const shown = embedded ? `${formatIp(ip)} (${formatIp(embedded)})` : formatIp(ip);
  return { allowed: false, reason: `address ${shown} is ${kind} and not in the allow-list` };
}

/** Names that always mean this host (RFC 6761): refused without asking a resolver. */
export function isLocalName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.+$/, '');
  return name === 'localhost' || name.endsWith('.localhost') || name === 'localhost.localdomain';
}

/** How a URL may be delivered to, and what to connect to. */
export type DestinationUrlVerdict =
  | {
      allowed: true;
      url: URL;
      /** The host to connect to: an IP address (then already checked) or a name to resolve. */
      host: { ip: IpAddress } | { name: string };
    }
  | { allowed: false; reason: string };

export interface DestinationUrlOptions {
  /** Let `http:` through (default false: `https:` only). */
  allowPlainHttp?: boolean;
  allowList?: readonly Cidr[];
}

/**
 * What the URL alone says: a valid `https:` URL (or `http:` when allowed), no credentials, a host
 * that is not a local name nor a refused address. Legacy IPv4 forms (`2130706433`, `0177.0.0.1`,
 * `0x7f.1`, `127.1`) and IPv6 forms (`[::ffff:7f00:1]`) are normalised by the URL parser before
 * the check. A name still has to be checked once resolved, at connect time.
 */
export function checkDestinationUrl(
  text: string,
  options: DestinationUrlOptions = {},
): DestinationUrlVerdict {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { allowed: false, reason: 'not a valid absolute URL' };
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowPlainHttp))
    return {
      allowed: false,
      reason:
        url.protocol === 'http:'
          ? 'plain http is not allowed for this destination (use https)'
          : `scheme ${url.protocol} is not allowed (https only)`,
    };
  const hostname = url.hostname;
  if (hostname === '') return { allowed: false, reason: 'the URL has no host' };
  const ip = parseIp(hostname) ?? parseIp(hostname.replace(/\.$/, ''));
  if (ip) {
    const verdict = checkAddress(ip, options.allowList);
    if (!verdict.allowed) return verdict;
  } else if (isLocalName(hostname)) {
    return { allowed: false, reason: `host ${hostname} is a local name` };
  }
  // Checked after the host, so that `https://x@127.0.0.1/` is reported for its address.
  if (url.username !== '' || url.password !== '')
    return { allowed: false, reason: 'the URL carries credentials (user:password@)' };
  return { allowed: true, url, host: ip ? { ip } : { name: hostname.replace(/\.$/, '') } };
}
