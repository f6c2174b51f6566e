import type { Socket } from 'node:net';
import type { ConnectionFailureReason } from '@fulcrum/kernel';

/** `::ffff:10.0.0.1` (a v4 client on a dual-stack listener) → `10.0.0.1`, so hashing and persistence agree. */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Errors that are this host's problem, not the server's: they never count against its health. */
const LOCAL_ERRORS = new Set([
  'EADDRNOTAVAIL',
  'EMFILE',
  'ENFILE',
  'ENOBUFS',
  'ENOMEM',
  'EADDRINUSE',
  'EINVAL',
  'EAFNOSUPPORT',
]);

export function isLocalError(err: unknown): boolean {
  return LOCAL_ERRORS.has(errorCode(err));
}

export function errorCode(err: unknown): string {
  return String((err as NodeJS.ErrnoException | undefined)?.code ?? 'UNKNOWN');
}

/** Maps a socket error to the kernel's failure reasons. */
export function failureReason(err: unknown): ConnectionFailureReason {
  switch (errorCode(err)) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
      return 'reset';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
      return 'unreachable';
    default:
      return 'other';
  }
}

/** Ends a socket with a TCP reset; a socket still connecting is just closed (there is nothing to reset). */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}

/** Ends a socket cleanly: FIN after what is queued is written, then the descriptor is closed. */
export function finishSocket(socket: Socket): void {
  if (socket.destroyed) return;
  socket.destroySoon();
}
