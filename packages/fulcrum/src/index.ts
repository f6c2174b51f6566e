export { main, HELP, type Io } from './cli.js';
export { ExitCode } from './exit-codes.js';
export { AdminServer, type AdminOptions } from './admin/server.js';
export { openApiDocument } from './admin/openapi.js';
export { isLoopback, adminToken, TOKEN_ENV } from './admin/token.js';
export { createLogger, LOG_LEVELS, type LogFormat, type LogLevel } from './logger.js';
export { Notifier, type NotifierOptions } from './notifier.js';
