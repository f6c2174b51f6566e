import { isIP } from 'node:net';

/*
 * `address:port` parsing for `fulcrum adm`, the same rules as the kernel's parseEndpoint,
 * kept here so that the CLI starts without loading the kernel (ipvsadm answers at once).
 */

export function parseEndpoint(text: string): { address: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const address = m[1]!;
  const port = Number(m[2]);
  const family = isIP(address);
  if (family === 0 || port < 1 || port > 65535) return undefined;
  return { address: family === 6 ? address.toLowerCase() : address, port };
}

export function formatEndpoint(e: { address: string; port: number }): string {
  return isIP(e.address) === 6 ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}
