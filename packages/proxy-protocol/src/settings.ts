import { randomUUID } from 'node:crypto';
import { PP2_TYPE_CUSTOM } from './constants.js';
import { encodeProxyHeader } from './codec.js';
import { ProxyProtocolError, ProxyProtocolErrorCodes as Codes } from './errors.js';
import type { InetEndpoint, ProxyTlv } from './types.js';

/** A custom TLV in the application range 0xE0–0xEF, JSON-friendly. */
export interface CustomTlvSetting {
  type: number;
  value: string;
  encoding: 'utf8' | 'hex' | 'base64';
}

/** What the passthrough plugin hands the dataplane (JSON). */
export interface ProxyProtocolSettings {
  version: 1 | 2;
  tlvs: {
    /** Add PP2_TYPE_UNIQUE_ID with the dataplane's id for the connection. */
    uniqueId: boolean;
    /** Add PP2_TYPE_CRC32C so the receiver can verify the header. */
    crc32c: boolean;
    authority?: string;
    /** PP2_TYPE_ALPN, e.g. `h2`. */
    alpn?: string;
    netns?: string;
    custom: CustomTlvSetting[];
  };
}

/** One connection (or, for UDP, one datagram's flow) as the dataplane sees it. */
export interface ConnectionEndpoints {
  protocol: 'tcp' | 'udp';
  /** The client's address and port. */
  client: InetEndpoint;
  /** Where the client connected: the virtual service address (for a wildcard listener, the socket's local address). */
  destination: InetEndpoint;
  /** The dataplane's id for the connection, sent when `tlvs.uniqueId` is set; a random UUID when absent. */
  uniqueId?: string | Uint8Array;
}

/** Checks settings that came through JSON (a snapshot) and fills the defaults. */
export function proxyProtocolSettings(settings: unknown): ProxyProtocolSettings {
  const s = (settings ?? {}) as Partial<ProxyProtocolSettings>;
  const version = s.version ?? 2;
  if (version !== 1 && version !== 2)
    throw new ProxyProtocolError(
      Codes.ENCODE,
      `proxy-protocol settings: version must be 1 or 2, not ${String(version)}`,
      {},
    );
  const t: Partial<ProxyProtocolSettings['tlvs']> = s.tlvs ?? {};
  const custom = (t.custom ?? []).map((c) => {
    if (!Number.isInteger(c.type) || c.type < PP2_TYPE_CUSTOM.MIN || c.type > PP2_TYPE_CUSTOM.MAX) {
      throw new ProxyProtocolError(
        Codes.ENCODE,
        `custom TLV type ${c.type} is outside the application range 0xE0-0xEF`,
        { type: c.type },
      );
    }
    return { type: c.type, value: String(c.value), encoding: c.encoding ?? 'utf8' } as CustomTlvSetting;
  });
  const out: ProxyProtocolSettings = {
    version,
    tlvs: { uniqueId: !!t.uniqueId, crc32c: !!t.crc32c, custom },
  };
  for (const k of ['authority', 'alpn', 'netns'] as const) if (typeof t[k] === 'string') out.tlvs[k] = t[k];
  const anyTlv =
    out.tlvs.uniqueId ||
    out.tlvs.crc32c ||
    out.tlvs.authority !== undefined ||
    out.tlvs.alpn !== undefined ||
    out.tlvs.netns !== undefined ||
    custom.length > 0;
  if (version === 1 && anyTlv)
    throw new ProxyProtocolError(Codes.ENCODE, 'proxy-protocol settings: TLVs need version 2', {});
  return out;
}

/**
 * Builds the header writer for one service's settings, once per snapshot: the returned
 * function gives the bytes a dataplane writes to the server before any client byte (TCP), or
 * in front of each datagram (UDP, always v2 because v1 cannot describe UDP).
 */
export function createHeaderEncoder(settings: unknown): (conn: ConnectionEndpoints) => Buffer {
  const s = proxyProtocolSettings(settings);
  const custom: ProxyTlv[] = s.tlvs.custom.map((c) => ({
    type: c.type,
    value: Buffer.from(c.value, c.encoding),
  }));
  const alpn = s.tlvs.alpn === undefined ? undefined : Buffer.from(s.tlvs.alpn, 'utf8');
  return (conn) => {
    if (conn.protocol === 'udp' && s.version === 1) {
      throw new ProxyProtocolError(
        Codes.ENCODE,
        'PROXY v1 cannot describe UDP; UDP services use version 2',
        {},
      );
    }
    const uniqueId = s.tlvs.uniqueId
      ? conn.uniqueId === undefined
        ? Buffer.from(randomUUID(), 'latin1')
        : typeof conn.uniqueId === 'string'
          ? Buffer.from(conn.uniqueId, 'utf8')
          : conn.uniqueId
      : undefined;
    return encodeProxyHeader({
      version: s.version,
      command: 'proxy',
      transport: conn.protocol === 'udp' ? 'dgram' : 'stream',
      source: conn.client,
      destination: conn.destination,
      ...(alpn ? { alpn } : {}),
      ...(s.tlvs.authority !== undefined ? { authority: s.tlvs.authority } : {}),
      ...(s.tlvs.netns !== undefined ? { netns: s.tlvs.netns } : {}),
      ...(uniqueId ? { uniqueId: Buffer.from(uniqueId) } : {}),
      crc32c: s.tlvs.crc32c,
      tlvs: custom,
    });
  };
}

/** The header for one connection; for many, build the encoder once with createHeaderEncoder. */
export function proxyHeaderFor(settings: unknown, conn: ConnectionEndpoints): Buffer {
  return createHeaderEncoder(settings)(conn);
}
