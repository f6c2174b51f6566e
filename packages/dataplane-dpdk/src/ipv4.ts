import { isIP } from 'node:net';

/** `10.1.0.1` → 0x0a010001 (host order, as the native core takes addresses). */
export function ipv4ToNumber(text: string): number {
  if (isIP(text) !== 4) throw new TypeError(`not an IPv4 address: ${text}`);
  return text.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  address: string;
  prefix: number;
}

/** `10.1.0.1/24`; a bare address is /32. Undefined when it is not IPv4 CIDR. */
export function parseCidr(text: string): Cidr | undefined {
  const [address, prefixText, extra] = text.split('/');
  if (extra !== undefined || address === undefined || isIP(address) !== 4) return undefined;
  const prefix = prefixText === undefined ? 32 : Number(prefixText);
  if (!/^\d{1,2}$/.test(prefixText ?? '32') || prefix > 32) return undefined;
  return { address, prefix };
}

/** `02:00:00:00:00:01` → 6 bytes. */
export function parseMac(text: string): Buffer | undefined {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(text)) return undefined;
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}
