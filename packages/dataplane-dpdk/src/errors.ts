import { DataplaneError } from '@fulcrum/kernel';

/** The codes this package raises, beside the kernel's FULCRUM_DATAPLANE. */
export const DpdkErrorCodes = {
  /** The addon cannot be loaded: DPDK missing or the addon not built. The message says what to run. */
  UNAVAILABLE: 'FULCRUM_DATAPLANE_UNAVAILABLE',
  /** EAL or a port failed to start (bad EAL arguments, a vdev that cannot open its interface…). */
  EAL: 'FULCRUM_DATAPLANE_EAL',
  /** A service this dataplane cannot serve as given (IPv6, no local address…). */
  UNSUPPORTED: 'FULCRUM_DATAPLANE_UNSUPPORTED',
} as const;

export function dpdkError(
  code: (typeof DpdkErrorCodes)[keyof typeof DpdkErrorCodes],
  message: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
): DataplaneError {
  return new DataplaneError(message, { code, details, ...(cause === undefined ? {} : { cause }) });
}
