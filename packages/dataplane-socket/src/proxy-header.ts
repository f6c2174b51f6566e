import { createHeaderEncoder } from '@fulcrum/proxy-protocol';
import { DataplaneError, type PassthroughSettings } from '@fulcrum/kernel';

/** One connection's addresses as the PROXY header carries them. */
export interface HeaderFields {
  protocol: 'tcp' | 'udp';
  clientAddress: string;
  clientPort: number;
  /** Where the client connected: the VIP (for a wildcard listener, the socket's own address). */
  virtualAddress: string;
  virtualPort: number;
  id: number;
}

export type HeaderEncoder = (fields: HeaderFields) => Buffer;

/**
 * The bytes written to the server before any client byte (TCP) or in front of each
 * datagram (UDP), from the service's passthrough settings; undefined when the service
 * carries no client address. Built once per snapshot; bad settings reject the change.
 */
export function headerEncoderFor(
  service: string,
  passthrough: PassthroughSettings | undefined,
): HeaderEncoder | undefined {
  if (!passthrough) return undefined;
  if (!passthrough.requires.includes('proxy-protocol') && passthrough.name !== 'proxy-protocol') {
    throw new DataplaneError(
      `service "${service}": passthrough "${passthrough.name}" needs ${passthrough.requires.join(', ') || 'nothing this dataplane knows'}; the socket dataplane carries the client address with the PROXY protocol only`,
      { details: { service, passthrough: passthrough.name } },
    );
  }
  let encode: ReturnType<typeof createHeaderEncoder>;
  try {
    encode = createHeaderEncoder(passthrough.settings);
  } catch (e) {
    throw new DataplaneError(`service "${service}": ${(e as Error).message}`, {
      cause: e,
      details: { service },
    });
  }
  return (f) =>
    encode({
      protocol: f.protocol,
      client: { address: f.clientAddress, port: f.clientPort },
      destination: { address: f.virtualAddress, port: f.virtualPort },
      uniqueId: `fulcrum-${f.id}`,
    });
}
