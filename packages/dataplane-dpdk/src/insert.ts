import { encodeV2, proxyProtocolSettings } from '@fulcrum/proxy-protocol';
import type { ServiceSnapshot } from '@fulcrum/kernel';
import { DpdkErrorCodes, dpdkError } from './errors.js';
import type { NativeInsert } from './native.js';

/** The native core builds PROXY headers up to this size (kProxyMax): one segment's worth. */
export const PROXY_HEADER_MAX = 1024;
/** Bytes of the longest unique id the core sends: `fulcrum-<laddr><lport>-<ms>` (insert.cc). */
const UNIQUE_ID_TLV = 3 + 41;

// Any two endpoints: only the TLV area after the 28-byte fixed part and addresses is kept.
const ends = {
  version: 2,
  source: { address: '0.0.0.0', port: 0 },
  destination: { address: '0.0.0.0', port: 0 },
} as const;

/**
 * A service's passthrough as the native core executes it. Headers are per connection, so
 * they are built natively; only the per-service constant TLVs are encoded here, by
 * @fulcrum/proxy-protocol's own encoder, so the bytes match what the socket dataplane sends.
 */
export function toNativeInsert(s: ServiceSnapshot): NativeInsert | undefined {
  const pt = s.passthrough;
  if (!pt) return undefined;
  const where = { service: s.name, passthrough: pt.name };
  const isToa = pt.requires.includes('toa');
  const isProxy = pt.requires.includes('proxy-protocol');
  if (!isToa && !isProxy)
    throw dpdkError(
      DpdkErrorCodes.UNSUPPORTED,
      `service "${s.name}": passthrough "${pt.name}" needs ${pt.requires.join(', ') || 'nothing this dataplane knows'}; the dpdk dataplane carries the client address with toa or proxy-protocol`,
      where,
    );
  if (s.protocol !== 'tcp')
    throw dpdkError(
      DpdkErrorCodes.UNSUPPORTED,
      `service "${s.name}": the dpdk dataplane inserts ${pt.name} into TCP connections only (PROXY v2 per UDP datagram is not implemented)`,
      where,
    );
  const none = { ppVersion: 2 as const, ppCrc32c: false, ppUniqueId: false };
  if (isToa)
    return {
      kind: 1,
      toaPrune: pt.settings.onNoRoom !== 'skip',
      ...none,
      ppTlvsBefore: Buffer.alloc(0),
      ppTlvsAfter: Buffer.alloc(0),
    };
  let settings: ReturnType<typeof proxyProtocolSettings>;
  try {
    settings = proxyProtocolSettings(pt.settings);
  } catch (e) {
    throw dpdkError(DpdkErrorCodes.UNSUPPORTED, `service "${s.name}": ${(e as Error).message}`, where, e);
  }
  const t = settings.tlvs;
  // @fulcrum/proxy-protocol's TLV order: (CRC32C,) ALPN, AUTHORITY, UNIQUE_ID, NETNS, custom.
  const before = encodeV2({
    ...ends,
    ...(t.alpn !== undefined ? { alpn: Buffer.from(t.alpn, 'utf8') } : {}),
    ...(t.authority !== undefined ? { authority: t.authority } : {}),
  }).subarray(28);
  const after = encodeV2({
    ...ends,
    ...(t.netns !== undefined ? { netns: t.netns } : {}),
    tlvs: t.custom.map((c) => ({ type: c.type, value: Buffer.from(c.value, c.encoding) })),
  }).subarray(28);
  const longest = 28 + (t.crc32c ? 7 : 0) + before.length + (t.uniqueId ? UNIQUE_ID_TLV : 0) + after.length;
  if (settings.version === 2 && longest > PROXY_HEADER_MAX)
    throw dpdkError(
      DpdkErrorCodes.UNSUPPORTED,
      `service "${s.name}": the PROXY v2 header would be up to ${longest} bytes; the dpdk dataplane sends at most ${PROXY_HEADER_MAX} (fewer or shorter TLVs)`,
      { ...where, length: longest },
    );
  return {
    kind: 2,
    toaPrune: false,
    ppVersion: settings.version,
    ppCrc32c: t.crc32c,
    ppUniqueId: t.uniqueId,
    ppTlvsBefore: Buffer.from(before),
    ppTlvsAfter: Buffer.from(after),
  };
}
