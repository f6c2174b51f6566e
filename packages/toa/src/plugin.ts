import { definePassthrough } from '@fulcrum/kernel';
import { TCP_OPTION_TOA, TOA_IPV4_LENGTH, TOA_IPV6_LENGTH } from './toa.js';

export interface ToaOptions {
  onNoRoom: 'prune' | 'skip';
}

/** What the dataplane executes (JSON). */
export interface ToaSettings {
  /** Always 254. */
  kind: number;
  /** 8 for an IPv4 client, 20 for an IPv6 one (DPVS layout). */
  lengths: { ipv4: number; ipv6: number };
  /** Where the option goes: first in the option area, as DPVS puts it. */
  position: 'first';
  /**
   * A segment whose options are full: `prune` drops padding and SACK blocks to make room,
   * then, like `skip`, sends it without TOA and counts it if that is not enough.
   */
  onNoRoom: 'prune' | 'skip';
}

/**
 * The `toa` passthrough: the dataplane puts the client's address and port in TCP option 254
 * on the segments that open the connection to the real server (from the ACK that completes
 * the handshake until the server's first byte is acknowledged, as DPVS does), where the TOA
 * kernel module on the server reads it. Only a packet dataplane can rewrite TCP headers, so
 * the plugin requires the `toa` capability, and the kernel refuses it elsewhere with the
 * alternatives named.
 */
export const toaPassthrough = definePassthrough<ToaOptions>({
  name: 'toa',
  kernel: '^0.1.0',
  description: 'Client address to the real server in TCP option 254 (TOA, DPVS layout)',
  requires: ['toa'],
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      onNoRoom: {
        enum: ['prune', 'skip'],
        default: 'prune',
        description:
          'When a segment has no room for the option: drop padding and SACK blocks to make room (prune), or send it without TOA (skip)',
      },
    },
  },
  create(_ctx, options) {
    const settings: ToaSettings = {
      kind: TCP_OPTION_TOA,
      lengths: { ipv4: TOA_IPV4_LENGTH, ipv6: TOA_IPV6_LENGTH },
      position: 'first',
      onNoRoom: options.onNoRoom,
    };
    return { settings: settings as unknown as Record<string, unknown> };
  },
});
