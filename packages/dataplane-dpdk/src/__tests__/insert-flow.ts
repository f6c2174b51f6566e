// One TCP connection through the harness, driven packet by packet from both ends, for the
// TOA / PROXY-protocol / MSS tests: every emitted frame is parsed (and kept for tshark).
import type { PassthroughSettings } from '@fulcrum/kernel';
import {
  createHeaderEncoder,
  proxyProtocolPassthrough,
  type ProxyProtocolOptions,
} from '@fulcrum/proxy-protocol';
import { toaPassthrough, type ToaOptions } from '@fulcrum/toa';
import type { PacketHarness } from '../harness.js';
import { CLIENT, fromClient, fromServer, LADDR, SERVERS, VIP } from './fixtures.js';
import { parseFrame, tcpFrame, type ParsedFrame, type TcpFields } from './frames.js';

export type Seg = Partial<TcpFields> & { flags: number };

export interface Emitted extends ParsedFrame {
  port: string;
  raw: Buffer;
}

export class Flow {
  lport = 0;
  server = 0;
  createdMs = 0;
  /** What the pipeline emitted. */
  readonly frames: Buffer[] = [];
  /** Every frame in order, injected ones included (both halves of each TCP stream, for tshark). */
  readonly trace: Buffer[] = [];

  constructor(
    readonly h: PacketHarness,
    readonly cport: number,
    readonly vport = 80,
  ) {}

  #emit(list: { port: string; frame: Buffer }[]): Emitted[] {
    this.frames.push(...list.map((e) => e.frame));
    this.trace.push(...list.map((e) => e.frame));
    return list.map((e) => ({ ...parseFrame(e.frame), port: e.port, raw: e.frame }));
  }

  /** A segment from the client to the VIP; the frames the pipeline sent for it. */
  client(f: Seg, nowMs = 0): Emitted[] {
    const frame = tcpFrame(fromClient, {
      src: CLIENT.ip,
      dst: VIP,
      sport: this.cport,
      dport: this.vport,
      ...f,
    });
    this.trace.push(frame);
    const out = this.#emit(this.h.inject('wan', frame, nowMs));
    if (!this.lport && out[0]?.tcp) {
      this.lport = out[0].tcp.sport;
      this.server = SERVERS.findIndex((s) => s.ip === out[0]!.ip!.dst);
      this.createdMs = nowMs;
    }
    return out;
  }

  /** A segment from the chosen server to the local address. */
  fromServer(f: Seg, nowMs = 0): Emitted[] {
    const s = SERVERS[this.server]!;
    const frame = tcpFrame(fromServer(this.server), {
      src: s.ip,
      dst: LADDR,
      sport: 8080,
      dport: this.lport,
      ...f,
    });
    this.trace.push(frame);
    return this.#emit(this.h.inject('lan', frame, nowMs));
  }

  /** The id the core puts in PP2_TYPE_UNIQUE_ID (insert.cc): local address, port, creation time. */
  uniqueId(): string {
    const hex = LADDR.split('.')
      .map((o) => Number(o).toString(16).padStart(2, '0'))
      .join('');
    return `fulcrum-${hex}${this.lport.toString(16).padStart(4, '0')}-${this.createdMs}`;
  }
}

/** Linux's SYN options: MSS, SACK-permitted, timestamps, NOP, window scale 7. */
export const synOptions = (mss = 1460, tsval = 1000): Buffer => {
  const b = Buffer.from([2, 4, mss >> 8, mss & 255, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7]);
  b.writeUInt32BE(tsval, 8);
  return b;
};

/** An established segment's options: NOP, NOP, timestamps. */
export const tsOptions = (tsval: number, tsecr: number): Buffer => {
  const b = Buffer.from([1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
  b.writeUInt32BE(tsval, 4);
  b.writeUInt32BE(tsecr, 8);
  return b;
};

/** The MSS option's value in an option area, or undefined. */
export function mssOf(options: Buffer): number | undefined {
  for (let i = 0; i < options.length;) {
    const k = options[i]!;
    if (k === 0) return undefined;
    if (k === 1) {
      i++;
      continue;
    }
    if (k === 2) return options.readUInt16BE(i + 2);
    i += options[i + 1]!;
  }
  return undefined;
}

/** The settings the kernel hands the dataplane, from the real `toa` plugin. */
export function toaSettings(onNoRoom: ToaOptions['onNoRoom'] = 'prune'): PassthroughSettings {
  const inst = toaPassthrough.create({} as never, { onNoRoom });
  return { name: 'toa', requires: [...toaPassthrough.requires], settings: inst.settings };
}

/** The settings the kernel hands the dataplane, from the real `proxy-protocol` plugin. */
export function ppSettings(
  version: 1 | 2,
  tlvs: Partial<ProxyProtocolOptions['tlvs']> = {},
): PassthroughSettings {
  const inst = proxyProtocolPassthrough.create(
    { configPath: 'services[0].passthrough', service: { protocol: 'tcp' } } as never,
    { version, tlvs: { uniqueId: false, crc32c: false, custom: [], ...tlvs } },
  );
  return {
    name: 'proxy-protocol',
    requires: [...proxyProtocolPassthrough.requires],
    settings: inst.settings,
  };
}

/** What @fulcrum/proxy-protocol (the socket dataplane's encoder) writes for this connection. */
export const expectedHeader = (pt: PassthroughSettings, f: Flow): Buffer =>
  createHeaderEncoder(pt.settings)({
    protocol: 'tcp',
    client: { address: CLIENT.ip, port: f.cport },
    destination: { address: VIP, port: f.vport },
    uniqueId: f.uniqueId(),
  });
