/**
 * The client's address behind proxies: a request's `X-Forwarded-For` is believed only from a
 * trusted hop (TALLY_TRUSTED_PROXIES, a list of CIDR ranges). The list is read from the right:
 * each address appended by a trusted hop is skipped, and the first one that is not trusted is
 * the client (anything left of it was written by the client, and may be made up). A peer that is
 * not trusted is the client itself, whatever the header says.
 *
 * Pure: addresses are parsed here, IPv4 as 32 bits, IPv6 as 128 (an IPv4-mapped IPv6 address,
 * `::ffff:10.0.0.1`, is its IPv4 address).
 */
import { isIpAddress } from './event-rules.ts';

/** A range of addresses, `10.0.0.0/8` or `fd00::/8`. */
export interface Cidr {
  /** 4 or 6. */
  family: 4 | 6;
  /** The network's first address, as a number of 32 or 128 bits. */
  network: bigint;
  bits: number;
  /** As written, for logs. */
  text: string;
}

/** The address as a number and its family; undefined when `text` is not an IP address. */
export function parseIp(text: string): { family: 4 | 6; value: bigint } | undefined {
  if (!isIpAddress(text)) return undefined;
  if (!text.includes(':')) return { family: 4, value: ipv4Value(text) };
  const [head = '', tail] = text.split('::');
  const words = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const v4 = ipv4Value(g);
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const left = words(head);
  const right = tail === undefined ? [] : words(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  let value = 0n;
  for (const w of all) value = (value << 16n) | BigInt(w);
  // ::ffff:a.b.c.d is the IPv4 address a.b.c.d.
  if (value >> 32n === 0xffffn) return { family: 4, value: value & 0xffffffffn };
  return { family: 6, value };
}

function ipv4Value(text: string): bigint {
  let value = 0n;
  for (const part of text.split('.')) value = (value << 8n) | BigInt(Number(part));
  return value;
}

/** `10.0.0.0/8`, `192.168.1.7` (one address), `fd00::/8`; or what is wrong with it. */
export function parseCidr(text: string): Cidr | { error: string } {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIp(address);
  if (!ip) return { error: `${JSON.stringify(text)} is not an IP address or a CIDR range` };
  const width = ip.family === 4 ? 32 : 128;
  const bitsText = slash < 0 ? String(width) : text.slice(slash + 1);
  const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : Number.NaN;
  // An IPv4-mapped address with an IPv6 prefix length is taken as IPv4 (its last 32 bits).
  const mapped = ip.family === 4 && address.includes(':');
  const effective = mapped ? bits - 96 : bits;
  if (!Number.isInteger(effective) || effective < 0 || effective > width)
    return { error: `${JSON.stringify(text)}: the prefix length must be 0 to ${width}` };
  const mask = effective === 0 ? 0n : ((1n << BigInt(effective)) - 1n) << BigInt(width - effective);
  if ((ip.value & mask) !== ip.value)
    return {
      error: `${JSON.stringify(text)}: host bits are set (did you mean ${networkText(ip, mask, effective)}?)`,
    };
  return { family: ip.family, network: ip.value, bits: effective, text };
}

function networkText(ip: { family: 4 | 6; value: bigint }, mask: bigint, bits: number): string {
  const v = ip.value & mask;
  if (ip.family === 4) return `${[24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.')}/${bits}`;
  const words = Array.from({ length: 8 }, (_, i) => ((v >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return `${words.join(':')}/${bits}`;
}

/** Whether `address` (text) is in one of `ranges`. */
export function inRanges(address: string, ranges: readonly Cidr[]): boolean {
  const ip = parseIp(address);
  if (!ip) return false;
  for (const r of ranges) {
    if (r.family !== ip.family) continue;
    const width = r.family === 4 ? 32 : 128;
    if (r.bits === 0 || ip.value >> BigInt(width - r.bits) === r.network >> BigInt(width - r.bits))
      return true;
  }
  return false;
}

/**
 * The client's address: `peer` (the address the connection came from) unless it is trusted
 * (`trusted(peer)`), in which case the rightmost address of `forwardedFor` (the values of every
 * `X-Forwarded-For`, joined with commas) that is not trusted, or the leftmost one when every hop
 * is trusted. An entry that is not an IP address ends the walk there: the address right of it, or
 * the peer, is the client.
 */
export function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  trusted: (address: string) => boolean,
): string {
  if (!trusted(peer) || forwardedFor === undefined || forwardedFor === '') return peer;
  const hops = forwardedFor.split(',').map((h) => unbracket(h.trim()));
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (!isIpAddress(hop)) return client;
    client = hop;
    if (!trusted(hop)) return hop;
  }
  return client;
}

/** `[2001:db8::1]` or `[2001:db8::1]:443` → `2001:db8::1`; `10.0.0.1:80` → `10.0.0.1`. */
function unbracket(hop: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed) return bracketed[1]!;
  const v4port = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(hop);
  return v4port ? v4port[1]! : hop;
}
