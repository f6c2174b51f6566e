import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { TOKEN_ENV } from '../token-env.js';
// The kernel's endpoint module alone (node:net only): adm answers without loading the kernel.
import { formatEndpoint, parseEndpoint } from '@fulcrum/kernel/endpoint';

/** A wrong command line: exit 2 with the message. */
export class AdmUsage extends Error {}

export type Command =
  | 'list'
  | 'add-service'
  | 'edit-service'
  | 'delete-service'
  | 'add-server'
  | 'edit-server'
  | 'delete-server'
  | 'drain'
  | 'reload';

export const COMMAND_FLAGS = {
  'add-service': 'A',
  'edit-service': 'E',
  'delete-service': 'D',
  'add-server': 'a',
  'edit-server': 'e',
  'delete-server': 'd',
  list: 'L',
} as const;

/** ipvsadm's `-p` takes an optional timeout (300 s when absent); parseArgs needs a value. */
function normaliseArgv(argv: string[]): string[] {
  const out: string[] = [];
  argv.forEach((arg, i) => {
    // -l lists as -L does; fold it in (also inside groups such as -lnc).
    if (/^-[A-Za-z]+$/.test(arg)) arg = arg.replace(/l/g, 'L');
    out.push(arg);
    if ((arg === '-p' || arg === '--persistent') && !/^\d+$/.test(argv[i + 1] ?? '')) out.push('300');
  });
  return out;
}

export interface Options {
  command: Command;
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
}

export function parse(argv: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: normaliseArgv(argv),
      allowPositionals: true,
      strict: true,
      options: {
        'add-service': { type: 'boolean', short: 'A' },
        'edit-service': { type: 'boolean', short: 'E' },
        'delete-service': { type: 'boolean', short: 'D' },
        'add-server': { type: 'boolean', short: 'a' },
        'edit-server': { type: 'boolean', short: 'e' },
        'delete-server': { type: 'boolean', short: 'd' },
        list: { type: 'boolean', short: 'L' },
        numeric: { type: 'boolean', short: 'n' },
        connection: { type: 'boolean', short: 'c' },
        stats: { type: 'boolean' },
        rate: { type: 'boolean' },
        timeout: { type: 'boolean' },
        exact: { type: 'boolean' },
        'tcp-service': { type: 'string', short: 't' },
        'udp-service': { type: 'string', short: 'u' },
        scheduler: { type: 'string', short: 's' },
        persistent: { type: 'string', short: 'p' },
        'real-server': { type: 'string', short: 'r' },
        weight: { type: 'string', short: 'w' },
        fullnat: { type: 'boolean', short: 'b' },
        masquerading: { type: 'boolean', short: 'm' },
        gatewaying: { type: 'boolean', short: 'g' },
        ipip: { type: 'boolean', short: 'i' },
        name: { type: 'string' },
        json: { type: 'boolean' },
        admin: { type: 'string' },
        'token-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new AdmUsage((e as Error).message);
  }
  const { values, positionals } = parsed;
  for (const flag of ['masquerading', 'gatewaying', 'ipip'] as const)
    if (values[flag])
      throw new AdmUsage(`--${flag} is not supported: Fulcrum forwards FULLNAT only (-b, the default)`);
  const commands = (Object.keys(COMMAND_FLAGS) as (keyof typeof COMMAND_FLAGS)[]).filter((c) => values[c]);
  if (positionals[0] === 'drain') {
    if (commands.length) throw new AdmUsage(`drain cannot be combined with -${COMMAND_FLAGS[commands[0]!]}`);
    if (positionals.length !== 3) throw new AdmUsage('usage: fulcrum adm drain <service> <server>');
    return checkOptions({ command: 'drain', positionals: positionals.slice(1), values });
  }
  if (positionals[0] === 'reload') {
    if (commands.length) throw new AdmUsage(`reload cannot be combined with -${COMMAND_FLAGS[commands[0]!]}`);
    if (positionals.length !== 1) throw new AdmUsage('usage: fulcrum reload (or fulcrum adm reload)');
    return checkOptions({ command: 'reload', positionals: [], values });
  }
  if (positionals.length) throw new AdmUsage(`unexpected argument "${positionals[0]}"`);
  if (commands.length > 1)
    throw new AdmUsage(
      `one command at a time: ${commands.map((c) => `-${COMMAND_FLAGS[c]}`).join(' and ')} were given`,
    );
  return checkOptions({ command: commands[0] ?? 'list', positionals: [], values });
}

const SERVICE_FLAGS = ['tcp-service', 'udp-service'];
/** What each command takes besides the general options, as ipvsadm's option/command table. */
const ALLOWED: Record<Command, string[]> = {
  list: [...SERVICE_FLAGS, 'connection', 'stats', 'rate', 'timeout', 'exact'],
  'add-service': [...SERVICE_FLAGS, 'scheduler', 'persistent', 'name'],
  'edit-service': [...SERVICE_FLAGS, 'scheduler', 'persistent'],
  'delete-service': SERVICE_FLAGS,
  'add-server': [...SERVICE_FLAGS, 'real-server', 'weight', 'fullnat'],
  'edit-server': [...SERVICE_FLAGS, 'real-server', 'weight', 'fullnat'],
  'delete-server': [...SERVICE_FLAGS, 'real-server'],
  drain: [],
  reload: [],
};
const GENERAL = ['numeric', 'json', 'admin', 'token-file', 'help', ...Object.keys(COMMAND_FLAGS)];

/** Refuses an option the command would ignore (ipvsadm: "Illegal 's' option with the 'add-server' command"). */
function checkOptions(o: Options): Options {
  for (const [key, value] of Object.entries(o.values)) {
    if (value === undefined || GENERAL.includes(key) || ALLOWED[o.command].includes(key)) continue;
    throw new AdmUsage(
      `--${key} cannot be used with ${o.command === 'drain' || o.command === 'reload' ? o.command : `-${COMMAND_FLAGS[o.command]} (${o.command})`}`,
    );
  }
  return o;
}

export function endpointArg(text: string, flag: string): string {
  const e = parseEndpoint(text);
  if (!e)
    throw new AdmUsage(
      `${flag} ${text}: expected an address and port, such as 10.0.0.1:80 or [2001:db8::1]:80`,
    );
  return formatEndpoint(e);
}

export function intArg(text: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max)
    throw new AdmUsage(`${flag} ${text}: expected an integer from ${min} to ${max}`);
  return Number(text);
}

/** The virtual service named by -t/-u. */
export function virtualArg(
  values: Options['values'],
): { protocol: 'tcp' | 'udp'; virtual: string } | undefined {
  const t = values['tcp-service'] as string | undefined;
  const u = values['udp-service'] as string | undefined;
  if (t !== undefined && u !== undefined) throw new AdmUsage('give -t or -u, not both');
  if (t !== undefined) return { protocol: 'tcp', virtual: endpointArg(t, '-t') };
  if (u !== undefined) return { protocol: 'udp', virtual: endpointArg(u, '-u') };
  return undefined;
}

/** The name a service added with -A gets: tcp-10.0.0.1-80, udp-2001_db8__1-53. */
export function generatedName(protocol: string, virtual: string): string {
  const e = parseEndpoint(virtual)!;
  return `${protocol}-${e.address.replace(/:/g, '_')}-${e.port}`;
}

export async function tokenFrom(
  values: Options['values'],
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  const file = values['token-file'] as string | undefined;
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new AdmUsage(`--token-file ${file}: ${(e as Error).message}`);
    }
    if (!text.trim()) throw new AdmUsage(`--token-file ${file} is empty`);
    return text.trim();
  }
  return env[TOKEN_ENV]?.trim() || undefined;
}

export function adminArg(values: Options['values'], env: NodeJS.ProcessEnv): string {
  const given = (values.admin as string | undefined) ?? env.FULCRUM_ADMIN ?? '127.0.0.1:9100';
  const e = parseEndpoint(given);
  if (e) return formatEndpoint(e);
  if (/^[A-Za-z0-9.-]+:\d{1,5}$/.test(given) && Number(given.split(':')[1]) <= 65535) return given;
  throw new AdmUsage(`--admin ${given}: expected HOST:PORT, such as 127.0.0.1:9100`);
}
