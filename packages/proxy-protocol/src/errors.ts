/**
 * Stable codes for every error this package raises on purpose. The kernel's `ErrorCode` is a
 * closed union, so these live on their own Error subclass with the same shape as
 * FulcrumError (`code`, `details`, `toJSON`).
 */
export const ProxyProtocolErrorCodes = {
  /** The bytes are not a PROXY protocol header at all (`GET /`, a TLS ClientHello…). */
  INVALID: 'FULCRUM_PROXY_PROTOCOL_INVALID',
  /** It starts like a PROXY header but breaks the specification (address, port, TLV…). */
  MALFORMED: 'FULCRUM_PROXY_PROTOCOL_MALFORMED',
  /** A v1 line without CRLF in 107 bytes, or a v2 header longer than the receiver allows. */
  TOO_LONG: 'FULCRUM_PROXY_PROTOCOL_TOO_LONG',
  /** The stream or datagram ended before the header did. */
  TRUNCATED: 'FULCRUM_PROXY_PROTOCOL_TRUNCATED',
  /** The PP2_TYPE_CRC32C value does not match the header. */
  CHECKSUM: 'FULCRUM_PROXY_PROTOCOL_CHECKSUM',
  /** A valid header of a version this receiver was configured not to accept. */
  VERSION: 'FULCRUM_PROXY_PROTOCOL_VERSION',
  /** No complete header arrived within the server helper's `headerTimeoutMs`. */
  TIMEOUT: 'FULCRUM_PROXY_PROTOCOL_TIMEOUT',
  /** A header came from a peer that is not in the server helper's `trustedProxies`. */
  UNTRUSTED: 'FULCRUM_PROXY_PROTOCOL_UNTRUSTED',
  /** The encoder was asked for a header the specification cannot express. */
  ENCODE: 'FULCRUM_PROXY_PROTOCOL_ENCODE',
} as const;

export type ProxyProtocolErrorCode = (typeof ProxyProtocolErrorCodes)[keyof typeof ProxyProtocolErrorCodes];

export class ProxyProtocolError extends Error {
  readonly code: ProxyProtocolErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ProxyProtocolErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ProxyProtocolError';
    this.code = code;
    this.details = details;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

export function isProxyProtocolError(e: unknown): e is ProxyProtocolError {
  return e instanceof ProxyProtocolError;
}
