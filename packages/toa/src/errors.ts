/**
 * Stable codes for the errors this package raises (the kernel's ErrorCode union is closed,
 * so they live on their own Error subclass shaped like FulcrumError).
 */
export const ToaErrorCodes = {
  /** The TCP header has no room for the option: 40 bytes of options at most. */
  NO_ROOM: 'FULCRUM_TOA_NO_ROOM',
  /** Bytes that are not a TOA option, or a TCP option area / segment that does not parse. */
  INVALID: 'FULCRUM_TOA_INVALID',
  /** An address or port that cannot be encoded. */
  ENCODE: 'FULCRUM_TOA_ENCODE',
} as const;

export type ToaErrorCode = (typeof ToaErrorCodes)[keyof typeof ToaErrorCodes];

export class ToaError extends Error {
  readonly code: ToaErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ToaErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ToaError';
    this.code = code;
    this.details = details;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}
