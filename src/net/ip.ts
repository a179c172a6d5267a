import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

/** Address family of a textual IP address, or undefined when it is not one. */
export function ipFamily(addr: string): Family | undefined {
  if (isIPv4(addr)) return 4;
  if (isIPv6(addr)) return 6;
  return undefined;
}

function v4ToBigInt(addr: string): bigint {
  return addr.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

function v6ToBigInt(addr: string): bigint {
  let text = addr;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail?.[1]) {
    const v = v4ToBigInt(tail[1]);
    text = text.slice(0, -tail[1].length) + `${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const headParts = head === '' ? [] : head.split(':');
  const restParts = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? 0 : 8 - headParts.length - restParts.length;
  const parts = [...headParts, ...Array<string>(zeros).fill('0'), ...restParts];
  return parts.reduce((acc, h) => (acc << 16n) | BigInt(Number.parseInt(h, 16)), 0n);
}

function bigIntToV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 0xffn).toString()).join('.');
}

function bigIntToV6(v: bigint): string {
  const parts = Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(112 - 16 * i)) & 0xffffn));
  // Canonical form (RFC 5952): compress the longest run of two or more zero hextets.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = parts.map((p) => p.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical text of an address (lower case, compressed IPv6), as nft and ip print it. */
export function canonicalIp(addr: string): string {
  const fam = ipFamily(addr);
  if (fam === 4) return bigIntToV4(v4ToBigInt(addr));
  if (fam === 6) return bigIntToV6(v6ToBigInt(addr));
  throw new Error(`not an IP address: ${addr}`);
}

export function isUnspecified(addr: string): boolean {
  return canonicalIp(addr) === '0.0.0.0' || canonicalIp(addr) === '::';
}

export interface Cidr {
  family: Family;
  /** The address as written (canonical), e.g. 10.244.0.5 */
  address: string;
  prefixLength: number;
  /** The network address, e.g. 10.244.0.0 */
  network: string;
}

/** Parses "addr/len" (the CNI result form). Throws on anything else. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`not a CIDR: ${text}`);
  const addr = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  const family = ipFamily(addr);
  if (family === undefined || !/^\d{1,3}$/.test(lenText)) throw new Error(`not a CIDR: ${text}`);
  const bits = family === 4 ? 32 : 128;
  const prefixLength = Number(lenText);
  if (prefixLength > bits) throw new Error(`not a CIDR: ${text}`);
  if (family === 4) {
    // Plain 32-bit arithmetic: BigInt made this the hot spot of restoring 1,000 records.
    const value = addr.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
    const size = 2 ** (32 - prefixLength);
    const net = value - (value % size);
    const text4 = (v: number) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
    return { family, address: text4(value), prefixLength, network: text4(net) };
  }
  const value = v6ToBigInt(addr);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefixLength)) - 1n);
  return { family, address: bigIntToV6(value), prefixLength, network: bigIntToV6(value & mask) };
}

/** Whether a text is "addr/len" that parseCidr accepts. */
export function isCidr(text: string): boolean {
  try {
    parseCidr(text);
    return true;
  } catch {
    return false;
  }
}

/** "network/len" text of a CIDR. */
export const cidrText = (c: Cidr): string => `${c.network}/${c.prefixLength}`;

/** addr:port, with brackets for IPv6 (any address text: "*", "<node>" stay as they are). */
export const addrPort = (addr: string, port: number): string =>
  ipFamily(addr) === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;

/** Whether a CIDR contains an address (same family only). */
export function cidrContains(cidr: Cidr, addr: string): boolean {
  if (ipFamily(addr) !== cidr.family) return false;
  return parseCidr(`${addr}/${cidr.prefixLength}`).network === cidr.network;
}
