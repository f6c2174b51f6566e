import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import {
  ConfigError,
  configSchema,
  createKernel,
  ErrorCodes,
  FulcrumError,
  formatIssue,
  isFulcrumError,
  readConfigFile,
  type ApplyResult,
  type Kernel,
} from '@fulcrum/kernel';
import type { Logger as PinoLogger } from 'pino';
import { importKeepalived, KeepalivedParseError } from '@fulcrum/import-keepalived';
import { builtinPlugins } from './builtins.js';
import { AdminServer } from './admin/server.js';
import { adminToken } from './admin/token.js';
import { adm } from './adm/adm.js';
import { Notifier } from './notifier.js';
import { ExitCode } from './exit-codes.js';
import { createLogger, LOG_LEVELS, type LogFormat, type LogLevel } from './logger.js';

// Set by the single-binary build (esbuild `define`), where no package.json is on disk.
declare const __FULCRUM_VERSION__: string | undefined;
const version: string =
  typeof __FULCRUM_VERSION__ === 'string'
    ? __FULCRUM_VERSION__
    : (createRequire(import.meta.url)('../package.json') as { version: string }).version;

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const HELP = `Usage: fulcrum <command> [options]

Commands:
  run <config>          run the balancer from a YAML or JSON config file
  validate <config>     check a config (schema, plugins, capabilities) and exit
  schema [config]       print the config's JSON Schema (with the options of the plugins it names)
  adm [options]         ipvsadm over the admin API: adm -Ln, -Lnc, -A/-E/-D, -a/-e/-d, drain
                        (fulcrum adm --help for its flags)
  reload                re-read the running daemon's config file (as SIGHUP), over the admin API
  import keepalived <keepalived.conf> [--instance NAME]
                        print a Fulcrum config for its virtual_server blocks; what cannot be
                        translated is reported on stderr with its line

Options:
  --log-format <fmt>    json | pretty (default: pretty on a terminal, json otherwise)
  --log-level <level>   ${LOG_LEVELS.join(' | ')} (default: info)
  -h, --help            show this help
  -v, --version         show the version

Signals (run): SIGINT/SIGTERM stop cleanly (a second one stops at once); SIGHUP reloads the config.
Exit codes: 0 ok, 1 run-time failure, 2 usage error, 3 invalid config, 130 forced stop.
`;

class UsageError extends Error {}

interface Parsed {
  command: string | undefined;
  args: string[];
  help: boolean;
  version: boolean;
  logFormat: LogFormat;
  logLevel: LogLevel;
  /** keepalived's -i NAME, for `import keepalived`. */
  instance?: string;
}

function parse(argv: string[], io: Io): Parsed {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        'log-format': { type: 'string' },
        'log-level': { type: 'string' },
        instance: { type: 'string' },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  const logFormat = values['log-format'] ?? ((io.stdout as { isTTY?: boolean }).isTTY ? 'pretty' : 'json');
  if (logFormat !== 'json' && logFormat !== 'pretty')
    throw new UsageError(`--log-format must be json or pretty, not "${logFormat}"`);
  const logLevel = values['log-level'] ?? 'info';
  if (!LOG_LEVELS.includes(logLevel as LogLevel))
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  return {
    command: positionals[0],
    args: positionals.slice(1),
    help: !!values.help,
    version: !!values.version,
    logFormat,
    logLevel: logLevel as LogLevel,
    ...(values.instance !== undefined ? { instance: values.instance } : {}),
  };
}

function configArg(p: Parsed, required: boolean): string | undefined {
  if (p.args.length > 1)
    throw new UsageError(`${p.command} takes one config file, got ${p.args.length} arguments`);
  if (required && !p.args[0])
    throw new UsageError(`${p.command} needs a config file: fulcrum ${p.command} <config.yaml>`);
  return p.args[0];
}

const kernelFor = (file: string, logger?: PinoLogger) =>
  createKernel({
    resolveFrom: [dirname(resolve(file)), process.cwd()],
    fallbackPlugins: builtinPlugins,
    ...(logger ? { logger } : {}),
  });

function printError(io: Io, e: unknown): number {
  if (e instanceof ConfigError) {
    for (const issue of e.issues) io.stderr.write(`${formatIssue(issue)}\n`);
    io.stderr.write(
      `error ${e.code}: the configuration is invalid (${e.issues.length} problem${e.issues.length > 1 ? 's' : ''})\n`,
    );
    return ExitCode.CONFIG;
  }
  if (isFulcrumError(e)) {
    io.stderr.write(`error ${e.code}: ${e.message}\n`);
    return e.code === 'FULCRUM_CONFIG_READ' ? ExitCode.CONFIG : ExitCode.FAILURE;
  }
  io.stderr.write(`error: ${(e as Error)?.stack ?? String(e)}\n`);
  return ExitCode.FAILURE;
}

/** Runs the `fulcrum` command line; resolves with the exit code. */
export async function main(
  argv: string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  // adm has ipvsadm's flags (-Ln, -A -t …), which the daemon's own parser would refuse.
  if (argv[0] === 'adm') return adm(argv.slice(1), io);
  let p: Parsed;
  try {
    p = parse(argv, io);
    if (p.version) return (void io.stdout.write(`fulcrum ${version}\n`), ExitCode.OK);
    if (p.help || !p.command) {
      (p.help ? io.stdout : io.stderr).write(HELP);
      return p.help ? ExitCode.OK : ExitCode.USAGE;
    }
    switch (p.command) {
      case 'validate':
        return await validate(configArg(p, true)!, io);
      case 'schema':
        return await schema(configArg(p, false), io);
      case 'run':
        return await run(configArg(p, true)!, p, io);
      case 'import':
        return await importConfig(p, io);
      default:
        throw new UsageError(`unknown command "${p.command}" (commands: run, validate, schema, adm, import)`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`error: ${e.message}\n\n${HELP}`);
      return ExitCode.USAGE;
    }
    return printError(io, e);
  }
}

/** `fulcrum import keepalived FILE`: YAML on stdout, notes and problems on stderr. */
async function importConfig(p: Parsed, io: Io): Promise<number> {
  const [from, file, ...extra] = p.args;
  if (from !== 'keepalived' || !file || extra.length)
    throw new UsageError('usage: fulcrum import keepalived <keepalived.conf> [--instance NAME]');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    io.stderr.write(`error FULCRUM_CONFIG_READ: cannot read ${file}: ${(e as Error).message}\n`);
    return ExitCode.CONFIG;
  }
  let result: ReturnType<typeof importKeepalived>;
  try {
    result = importKeepalived(text, p.instance !== undefined ? { instance: p.instance } : {});
  } catch (e) {
    if (!(e instanceof KeepalivedParseError)) throw e;
    io.stderr.write(`${file}:${e.line}: error ${e.code}: ${e.message}\n`);
    return ExitCode.CONFIG;
  }
  for (const n of result.notes) io.stderr.write(`${file}:${n.line}: ${n.kind}: ${n.subject}: ${n.message}\n`);
  // The result must be a configuration this daemon accepts, plugins included.
  try {
    await kernelFor(file).validate(result.config);
  } catch (e) {
    io.stderr.write(`the translated configuration is not valid:\n`);
    return printError(io, e);
  }
  io.stdout.write(result.yaml);
  io.stderr.write(`${result.translated} virtual server(s) translated, ${result.notes.length} note(s)\n`);
  return ExitCode.OK;
}

async function validate(file: string, io: Io): Promise<number> {
  const { config } = await kernelFor(file).validate(await readConfigFile(file));
  const servers = config.services.reduce((n, s) => n + s.realServers.length, 0);
  io.stdout.write(
    `${file}: valid (${config.services.length} service${config.services.length === 1 ? '' : 's'}, ${servers} real server${servers === 1 ? '' : 's'}, dataplane ${config.dataplane.name})\n`,
  );
  return ExitCode.OK;
}

async function schema(file: string | undefined, io: Io): Promise<number> {
  const resolved = file ? (await kernelFor(file).validate(await readConfigFile(file))).plugins : undefined;
  io.stdout.write(JSON.stringify(configSchema(resolved), null, 2) + '\n');
  return ExitCode.OK;
}

async function run(file: string, p: Parsed, io: Io): Promise<number> {
  const logger = createLogger(p.logFormat, p.logLevel, io.stdout);
  const kernel = kernelFor(file, logger);
  let token: string | undefined;
  try {
    const source = await readConfigFile(file);
    // The admin token is settled before anything listens: off loopback without one, refuse to start.
    const { config } = await kernel.validate(source);
    if (config.admin) token = await adminToken(config.admin, file);
    await kernel.apply(source);
  } catch (e) {
    logger.error(
      { event: 'start_failed', code: isFulcrumError(e) ? e.code : undefined },
      (e as Error).message,
    );
    await kernel.close().catch(() => undefined);
    return printError(io, e);
  }
  const notifier = new Notifier(kernel, logger);
  const reloader = new Reloader(kernel, file, logger);
  const admin = new AdminServer(kernel, {
    version,
    reload: () => reloader.reload('api'),
    ...(token !== undefined ? { token } : {}),
  });
  const adminAt = kernel.config?.admin?.listen;
  if (adminAt) {
    try {
      await admin.listen(adminAt);
    } catch (e) {
      logger.error({ event: 'start_failed', err: e }, `admin listener: ${(e as Error).message}`);
      await admin.close();
      await notifier.close();
      await kernel.close().catch(() => undefined);
      return printError(io, e);
    }
  }
  // 'started' is logged once the signal handlers are in place: a supervisor that stops the
  // daemon as soon as it reads that line must not find it still without them.
  return serve(kernel, admin, notifier, reloader, logger, () =>
    logger.info(
      {
        event: 'started',
        version,
        config: resolve(file),
        services: kernel.snapshots().map((s) => s.name),
        admin: admin.address(),
        adminToken: token !== undefined,
      },
      `fulcrum ${version} running ${kernel.snapshots().length} service(s)${adminAt ? `, admin on http://${admin.address()}` : ''}`,
    ),
  );
}

/** Re-reads the config file and applies it: what SIGHUP and `POST /api/v1/reload` do. */
class Reloader {
  stopping = false;
  constructor(
    private readonly kernel: Kernel,
    private readonly file: string,
    private readonly logger: PinoLogger,
  ) {}

  async reload(trigger: 'SIGHUP' | 'api'): Promise<ApplyResult> {
    if (this.stopping) throw new FulcrumError(ErrorCodes.STATE, 'the daemon is stopping');
    this.logger.info({ event: 'reload', trigger }, `${trigger}: reloading ${this.file}`);
    try {
      const adminBefore = this.kernel.config?.admin;
      const r = await this.kernel.apply(await readConfigFile(this.file));
      this.logger.info({ event: 'reloaded', trigger, ...r }, `reloaded: version ${r.version}`);
      // The admin listener and its token are settled at start; say so rather than pretend.
      if (!isDeepStrictEqual(adminBefore, this.kernel.config?.admin))
        this.logger.warn(
          { event: 'admin_unchanged' },
          'the admin section changed: its listen address and token apply at the next start',
        );
      return r;
    } catch (e) {
      const issues = e instanceof ConfigError ? e.issues.map(formatIssue) : undefined;
      this.logger.error(
        { event: 'reload_rejected', trigger, code: isFulcrumError(e) ? e.code : undefined, issues },
        `reload rejected, still running the previous config: ${(e as Error).message}`,
      );
      throw e;
    }
  }
}

/** How long a stop may take beyond the dataplane's declared stop grace before it is forced. */
const STOP_DEADLINE_MS = 10_000;

/** Waits for signals: SIGHUP reloads, SIGINT/SIGTERM stop (a second one forces). */
function serve(
  kernel: Kernel,
  admin: AdminServer,
  notifier: Notifier,
  reloader: Reloader,
  logger: PinoLogger,
  ready: () => void,
): Promise<number> {
  return new Promise((done) => {
    let stopping = false;
    const handlers: [NodeJS.Signals, () => void][] = [];
    const on = (signal: NodeJS.Signals, fn: () => void) => {
      handlers.push([signal, fn]);
      process.on(signal, fn);
    };
    // The daemon runs until it is told to stop, even when nothing else holds the event loop
    // (a dataplane whose work is all on native threads, or one with no open handle).
    const alive = setInterval(() => undefined, 1 << 30);
    const finish = (code: number) => {
      clearInterval(alive);
      for (const [s, fn] of handlers) process.off(s, fn);
      done(code);
    };
    const stop = (signal: NodeJS.Signals) => async () => {
      if (stopping) {
        logger.warn({ event: 'stop_forced', signal }, `${signal} again: stopping now`);
        return finish(ExitCode.FORCED);
      }
      stopping = true;
      reloader.stopping = true;
      logger.info({ event: 'stopping', signal }, `${signal}: stopping`);
      // The dataplane's soft stop (connections finishing) is on purpose: the deadline is
      // 10 s beyond it, not 10 s in all.
      const deadlineMs = STOP_DEADLINE_MS + (kernel.dataplane?.stopGraceMs ?? 0);
      const force = setTimeout(() => {
        logger.error(
          { event: 'stop_timeout', deadlineMs },
          `shutdown took longer than ${deadlineMs} ms: stopping now`,
        );
        finish(ExitCode.FORCED);
      }, deadlineMs);
      force.unref();
      await admin.close();
      await notifier.close();
      await kernel
        .close()
        .catch((e: unknown) => logger.error({ event: 'stop_failed', err: e }, (e as Error).message));
      clearTimeout(force);
      logger.info({ event: 'stopped' }, 'stopped');
      finish(ExitCode.OK);
    };
    on('SIGINT', stop('SIGINT'));
    on('SIGTERM', stop('SIGTERM'));
    on('SIGHUP', () => {
      if (!stopping) void reloader.reload('SIGHUP').catch(() => undefined);
    });
    ready();
  });
}
