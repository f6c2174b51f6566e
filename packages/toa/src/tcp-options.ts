import { ToaError, ToaErrorCodes as Codes } from './errors.js';
import {
  decodeToa,
  encodeToa,
  TCP_OPTION_TOA,
  TOA_IPV4_LENGTH,
  TOA_IPV6_LENGTH,
  type ToaAddress,
} from './toa.js';

/** A TCP header carries at most 40 bytes of options (data offset 15 × 4 − 20). */
export const TCP_MAX_OPTIONS_LENGTH = 40;

/** Option kinds Fulcrum meets in the wild (IANA TCP parameters). */
export const TCP_OPTION = {
  EOL: 0,
  NOP: 1,
  MSS: 2,
  WINDOW_SCALE: 3,
  SACK_PERMITTED: 4,
  SACK: 5,
  TIMESTAMPS: 8,
  TOA: TCP_OPTION_TOA,
} as const;

export interface TcpOption {
  kind: number;
  /** Where the option starts in the option area. */
  offset: number;
  /** Bytes it takes: 1 for EOL and NOP, else its length byte. */
  length: number;
  /** The bytes after kind and length (empty for EOL/NOP). */
  data: Buffer;
}

/**
 * Splits a TCP option area (the bytes between the 20-byte header and the payload). Stops at
 * EOL: what follows it is padding. Throws FULCRUM_TOA_INVALID for a length byte below 2 or
 * one that runs past the area, the cases Linux and DPVS treat as a broken option list.
 */
export function parseTcpOptions(area: Uint8Array): TcpOption[] {
  const buf = Buffer.from(area.buffer, area.byteOffset, area.byteLength);
  const out: TcpOption[] = [];
  for (let i = 0; i < buf.length;) {
    const kind = buf[i]!;
    if (kind === TCP_OPTION.EOL || kind === TCP_OPTION.NOP) {
      out.push({ kind, offset: i, length: 1, data: Buffer.alloc(0) });
      i++;
      if (kind === TCP_OPTION.EOL) break;
      continue;
    }
    const len = buf[i + 1];
    if (len === undefined || len < 2 || i + len > buf.length) {
      throw new ToaError(
        Codes.INVALID,
        `TCP option kind ${kind} at offset ${i} has length ${len ?? '(missing)'}, which does not fit the ${buf.length}-byte option area`,
        { kind, offset: i },
      );
    }
    out.push({ kind, offset: i, length: len, data: buf.subarray(i + 2, i + len) });
    i += len;
  }
  return out;
}

/**
 * The client address in an option area, as the TOA kernel module reads it: the first
 * kind-254 option of length 8 or 20; undefined when there is none.
 */
export function findToa(area: Uint8Array): ToaAddress | undefined {
  for (const o of parseTcpOptions(area)) {
    if (o.kind === TCP_OPTION_TOA && (o.length === TOA_IPV4_LENGTH || o.length === TOA_IPV6_LENGTH)) {
      return decodeToa(area.subarray(o.offset, o.offset + o.length));
    }
  }
  return undefined;
}

export interface InsertToaOptions {
  /**
   * When the option does not fit: `error` (default) throws FULCRUM_TOA_NO_ROOM; `prune`
   * first drops what TCP can do without on this segment (NOP/EOL padding and SACK blocks,
   * the way DPVS makes room) and throws only if that is still not enough. MSS, window
   * scale, SACK-permitted and timestamps are never dropped.
   */
  onNoRoom?: 'error' | 'prune';
}

const pad4 = (parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  const padded = Buffer.alloc(Math.ceil(body.length / 4) * 4);
  body.copy(padded);
  return padded;
};

/**
 * Returns a new option area with the client's TOA first, right after the fixed header, as
 * DPVS inserts it; any TOA option already there (a client could forge one) is removed. The
 * area is padded with EOL to a multiple of 4 bytes. Throws FULCRUM_TOA_NO_ROOM when the
 * result would exceed 40 bytes.
 */
export function insertToa(
  area: Uint8Array,
  client: { address: string; port: number },
  options: InsertToaOptions = {},
): Buffer {
  const toa = encodeToa(client);
  const parsed = parseTcpOptions(area);
  const keep = (o: TcpOption) => o.kind !== TCP_OPTION_TOA;
  const raw = (o: TcpOption) => Buffer.from(area.subarray(o.offset, o.offset + o.length));
  // Everything up to EOL, minus stale TOA options; what came after EOL was padding.
  const existing = parsed.filter((o) => keep(o) && o.kind !== TCP_OPTION.EOL).map(raw);
  let out = pad4([toa, ...existing]);
  if (out.length <= TCP_MAX_OPTIONS_LENGTH) return out;

  if (options.onNoRoom === 'prune') {
    const essential = parsed
      .filter(
        (o) =>
          keep(o) && o.kind !== TCP_OPTION.EOL && o.kind !== TCP_OPTION.NOP && o.kind !== TCP_OPTION.SACK,
      )
      .map(raw);
    out = pad4([toa, ...essential]);
    if (out.length <= TCP_MAX_OPTIONS_LENGTH) return out;
  }
  const used = existing.reduce((n, b) => n + b.length, 0);
  throw new ToaError(
    Codes.NO_ROOM,
    `no room for a ${toa.length}-byte TOA option: the segment already carries ${used} bytes of TCP options and at most ${TCP_MAX_OPTIONS_LENGTH} fit${options.onNoRoom === 'prune' ? ' (even without padding and SACK blocks)' : '; onNoRoom: "prune" can drop padding and SACK blocks'}`,
    { needed: toa.length, used, limit: TCP_MAX_OPTIONS_LENGTH },
  );
}

/** Option builders, for tests and tools. */
export const tcpOption = {
  nop: (): Buffer => Buffer.from([TCP_OPTION.NOP]),
  eol: (): Buffer => Buffer.from([TCP_OPTION.EOL]),
  mss: (mss: number): Buffer => Buffer.from([TCP_OPTION.MSS, 4, mss >> 8, mss & 0xff]),
  windowScale: (shift: number): Buffer => Buffer.from([TCP_OPTION.WINDOW_SCALE, 3, shift]),
  sackPermitted: (): Buffer => Buffer.from([TCP_OPTION.SACK_PERMITTED, 2]),
  sack: (blocks: [number, number][]): Buffer => {
    const b = Buffer.alloc(2 + 8 * blocks.length);
    b[0] = TCP_OPTION.SACK;
    b[1] = b.length;
    blocks.forEach(([l, r], i) => {
      b.writeUInt32BE(l >>> 0, 2 + 8 * i);
      b.writeUInt32BE(r >>> 0, 6 + 8 * i);
    });
    return b;
  },
  timestamps: (value: number, echo: number): Buffer => {
    const b = Buffer.alloc(10);
    b[0] = TCP_OPTION.TIMESTAMPS;
    b[1] = 10;
    b.writeUInt32BE(value >>> 0, 2);
    b.writeUInt32BE(echo >>> 0, 6);
    return b;
  },
};
