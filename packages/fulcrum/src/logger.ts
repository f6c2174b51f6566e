import { pino, type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The daemon's structured logger: JSON lines (one object per event, with a stable `event`
 * field) for machines, or pino-pretty for people. Written synchronously so that nothing
 * is lost when the process exits.
 */
export function createLogger(
  format: LogFormat,
  level: LogLevel,
  destination: NodeJS.WritableStream = process.stdout,
): PinoLogger {
  const options = { level, base: { pid: process.pid }, name: 'fulcrum' };
  if (format === 'pretty') {
    return pino(
      options,
      pretty({
        destination: destination as never,
        sync: true,
        colorize: (destination as { isTTY?: boolean }).isTTY ?? false,
      }),
    );
  }
  return pino(
    options,
    destination === process.stdout ? pino.destination({ fd: 1, sync: true }) : (destination as never),
  );
}
