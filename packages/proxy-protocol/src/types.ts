/** An IP endpoint as the header carries it. IPv6 addresses are in Node's compressed, lower-case form. */
export interface InetEndpoint {
  address: string;
  port: number;
}

/** An AF_UNIX endpoint: the socket path (the 108-byte field up to its first NUL). */
export interface UnixEndpoint {
  path: string;
}

export type ProxyEndpoint = InetEndpoint | UnixEndpoint;

/** `local`: the proxy's own connection (health checks); `proxy`: relayed on behalf of a client. */
export type ProxyCommand = 'local' | 'proxy';
/** Address family: v2's AF_UNSPEC/AF_INET/AF_INET6/AF_UNIX; v1's UNKNOWN is `unspec`. */
export type ProxyFamily = 'unspec' | 'inet' | 'inet6' | 'unix';
/** `stream` is TCP (or UNIX stream), `dgram` is UDP (or UNIX datagram). */
export type ProxyTransport = 'unspec' | 'stream' | 'dgram';

/** One TLV as it is on the wire. */
export interface ProxyTlv {
  type: number;
  value: Buffer;
}

/** The value of PP2_TYPE_SSL (2.2.6), with its sub-TLVs decoded. */
export interface SslInfo {
  /** Bit field of PP2_CLIENT.SSL / CERT_CONN / CERT_SESS. */
  client: number;
  /** 0 when the client presented a certificate that was verified, non-zero otherwise. */
  verify: number;
  version?: string;
  cn?: string;
  cipher?: string;
  sigAlg?: string;
  keyAlg?: string;
  group?: string;
  sigScheme?: string;
  /** The client certificate, DER. */
  clientCert?: Buffer;
  /** Every sub-TLV in wire order, those above and any others. */
  subTlvs?: ProxyTlv[];
}

/** The TLVs the specification defines, decoded; the encoder takes the same fields. */
export interface ProxyTlvFields {
  alpn?: Buffer;
  authority?: string;
  uniqueId?: Buffer;
  ssl?: SslInfo;
  netns?: string;
}

/** A decoded PROXY protocol header. */
export interface ProxyHeader extends ProxyTlvFields {
  version: 1 | 2;
  command: ProxyCommand;
  family: ProxyFamily;
  transport: ProxyTransport;
  /**
   * The client (getpeername() on the proxy) and the address it connected to; absent for
   * `unspec` families. For a `local` command they are decoded when present, but a receiver
   * must use the real connection's addresses.
   */
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  /** Every TLV in wire order (v2 only), including those decoded into the fields above. */
  tlvs: ProxyTlv[];
  /** The PP2_TYPE_CRC32C value, present only when the header carried one and it matched. */
  crc32c?: number;
  /** Bytes the header took on the wire. */
  length: number;
}

/** What to encode. Addresses are required unless the command is `local` or the family `unspec`. */
export interface ProxyHeaderInput extends ProxyTlvFields {
  version: 1 | 2;
  /** Default `proxy`. v1 has no LOCAL: it is sent as `PROXY UNKNOWN`. */
  command?: ProxyCommand;
  /** Default: from the addresses (`inet` or `inet6`; `unix` for paths), else `unspec`. */
  family?: ProxyFamily;
  /** Default `stream`. v1 can only say TCP. */
  transport?: ProxyTransport;
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  /** Add a PP2_TYPE_CRC32C TLV computed over the finished header (v2). */
  crc32c?: boolean;
  /** Further TLVs, written in order after the ones above (custom types 0xE0–0xEF, NOOP padding…). */
  tlvs?: ProxyTlv[];
}

export function isInetEndpoint(e: ProxyEndpoint | undefined): e is InetEndpoint {
  return e !== undefined && 'address' in e;
}
