export { main, HELP, type Io } from './cli.js';
export { ExitCode } from './exit-codes.js';
export { AdminServer } from './admin.js';
export { createLogger, LOG_LEVELS, type LogFormat, type LogLevel } from './logger.js';
export { Notifier, type NotifierOptions } from './notifier.js';
