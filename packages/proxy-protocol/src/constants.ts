/** The 12-byte v2 signature: `\r\n\r\n\0\r\nQUIT\n`. */
export const V2_SIGNATURE: Buffer = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** Signature, version/command, family/transport, length. */
export const V2_FIXED_LENGTH = 16;
export const V2_MAX_LENGTH = V2_FIXED_LENGTH + 0xffff;
export const V1_PREFIX: Buffer = Buffer.from('PROXY ', 'ascii');
/** The longest v1 line the specification allows, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses). */
export const V1_MAX_LENGTH = 107;

export const V2_ADDRESS_LENGTH = { inet: 12, inet6: 36, unix: 216 } as const;
export const UNIX_PATH_LENGTH = 108;

/** TLV types registered in the specification (section 2.2). */
export const PP2_TYPE = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
} as const;

/** Sub-TLVs inside PP2_TYPE_SSL. */
export const PP2_SUBTYPE_SSL = {
  VERSION: 0x21,
  CN: 0x22,
  CIPHER: 0x23,
  SIG_ALG: 0x24,
  KEY_ALG: 0x25,
  GROUP: 0x26,
  SIG_SCHEME: 0x27,
  CLIENT_CERT: 0x28,
} as const;

/** Bits of the PP2_TYPE_SSL `client` field. */
export const PP2_CLIENT = { SSL: 0x01, CERT_CONN: 0x02, CERT_SESS: 0x04 } as const;

/** Application-specific (0xE0–0xEF) and experimental (0xF0–0xF7) TLV types; never used by the protocol itself. */
export const PP2_TYPE_CUSTOM = { MIN: 0xe0, MAX: 0xef } as const;
export const PP2_TYPE_EXPERIMENT = { MIN: 0xf0, MAX: 0xf7 } as const;

/** PP2_TYPE_UNIQUE_ID carries at most this many bytes (2.2.5). */
export const UNIQUE_ID_MAX_LENGTH = 128;
