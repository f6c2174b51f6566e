/** A short, bounded metrics label for a socket error (`ECONNREFUSED` → `refused`). */
export function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return 'unreachable';
    default:
      return typeof code === 'string' && code.startsWith('ERR_TLS') ? 'tls' : 'error';
  }
}

/** The message of anything thrown, for a verdict's reason. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
