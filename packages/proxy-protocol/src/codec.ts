import { ProxyProtocolError, ProxyProtocolErrorCodes as Codes } from './errors.js';
import type { ProxyHeaderInput } from './types.js';
import { encodeV1 } from './v1.js';
import { encodeV2 } from './v2.js';

/**
 * Encodes a PROXY protocol header.
 *
 * ```ts
 * encodeProxyHeader({ version: 2, source: { address: '203.0.113.7', port: 51000 }, destination: { address: '192.0.2.1', port: 443 } });
 * ```
 */
export function encodeProxyHeader(input: ProxyHeaderInput): Buffer {
  if (input.version === 1) return encodeV1(input);
  if (input.version === 2) return encodeV2(input);
  throw new ProxyProtocolError(
    Codes.ENCODE,
    `PROXY protocol version ${String((input as { version: unknown }).version)} does not exist (1 or 2)`,
    {},
  );
}
