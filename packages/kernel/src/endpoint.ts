import { isIP } from 'node:net';

export interface Endpoint {
  address: string;
  port: number;
  family: 4 | 6;
}

/** Parses `127.0.0.1:8080` or `[::1]:8080`; undefined when it is not an address and port. */
export function parseEndpoint(text: string): Endpoint | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const address = m[1]!;
  const port = Number(m[2]);
  const family = isIP(address);
  if (family === 0 || port < 1 || port > 65535) return undefined;
  return { address: family === 6 ? address.toLowerCase() : address, port, family: family as 4 | 6 };
}

export function formatEndpoint(e: { address: string; port: number }): string {
  return isIP(e.address) === 6 ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}
