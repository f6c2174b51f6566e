import { bytesToIpv4, bytesToIpv6, ipFamily, ipv4ToBytes, ipv6ToBytes } from './address.js';
import { ToaError, ToaErrorCodes as Codes } from './errors.js';

/** TCP option kind 254 (RFC 4727's second experimental kind), as LVS/DPVS use it for TOA. */
export const TCP_OPTION_TOA = 254;
/** kind, length, port (2), IPv4 (4): DPVS TCP_OLEN_IP4_ADDR. */
export const TOA_IPV4_LENGTH = 8;
/** kind, length, port (2), IPv6 (16): DPVS TCP_OLEN_IP6_ADDR, read by its kmod/toa with IPv6/NAT64 enabled. */
export const TOA_IPV6_LENGTH = 20;

/** The client a TOA option names. */
export interface ToaAddress {
  address: string;
  port: number;
  family: 4 | 6;
}

/**
 * The option bytes for a client: `254, 8, port, IPv4` or `254, 20, port, IPv6`, both in
 * network order (DPVS struct tcpopt_ip4_addr / tcpopt_ip6_addr). Both lengths are multiples
 * of 4, so inserting the option keeps the TCP header 32-bit aligned without padding.
 */
export function encodeToa(client: { address: string; port: number }): Buffer {
  const family = ipFamily(client.address);
  if (!family)
    throw new ToaError(Codes.ENCODE, `"${client.address}" is not an IPv4 or IPv6 address`, {
      address: client.address,
    });
  if (!Number.isInteger(client.port) || client.port < 0 || client.port > 65535) {
    throw new ToaError(Codes.ENCODE, `port ${client.port} is not an integer 0..65535`, { port: client.port });
  }
  const out = Buffer.alloc(family === 4 ? TOA_IPV4_LENGTH : TOA_IPV6_LENGTH);
  out[0] = TCP_OPTION_TOA;
  out[1] = out.length;
  out.writeUInt16BE(client.port, 2);
  if (family === 4) ipv4ToBytes(client.address, out, 4);
  else ipv6ToBytes(client.address, out, 4);
  return out;
}

/** Reads one TOA option (kind, length and value). Any other kind or length is refused. */
export function decodeToa(option: Uint8Array): ToaAddress {
  if (option[0] !== TCP_OPTION_TOA)
    throw new ToaError(Codes.INVALID, `TCP option kind ${option[0]} is not TOA (254)`, { kind: option[0] });
  const len = option[1];
  if ((len !== TOA_IPV4_LENGTH && len !== TOA_IPV6_LENGTH) || option.length < len) {
    throw new ToaError(
      Codes.INVALID,
      `a TOA option is ${TOA_IPV4_LENGTH} (IPv4) or ${TOA_IPV6_LENGTH} (IPv6) bytes; this one says ${len} and has ${option.length}`,
      { length: len },
    );
  }
  const port = (option[2]! << 8) | option[3]!;
  return len === TOA_IPV4_LENGTH
    ? { address: bytesToIpv4(option, 4), port, family: 4 }
    : { address: bytesToIpv6(option, 4), port, family: 6 };
}
