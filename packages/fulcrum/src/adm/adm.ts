import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApplyResult, ConnectionEntry } from '@fulcrum/kernel';
import type { ServiceView } from '../admin/status.js';
import { TOKEN_ENV } from '../token-env.js';
// The kernel's endpoint module alone (node:net only): adm answers without loading the kernel.
import { formatEndpoint, parseEndpoint } from '@fulcrum/kernel/endpoint';
import {
  adminArg,
  AdmUsage,
  COMMAND_FLAGS,
  endpointArg,
  generatedName,
  intArg,
  parse,
  tokenFrom,
  virtualArg,
  type Options,
} from './args.js';
import { ExitCode } from '../exit-codes.js';
import { AdmError, AdminClient } from './client.js';
import {
  computeRates,
  formatConnections,
  formatServices,
  formatTimeouts,
  sortServices,
  title,
  type ListMode,
} from './format.js';

export const ADM_HELP = `Usage: fulcrum adm [options]     (ipvsadm's commands and flags, over the admin API)

  fulcrum adm -L|-l [-n] [--stats|--rate|--exact] [-t|-u VIP:port]   list services and servers
  fulcrum adm -L -c [-t|-u VIP:port]        list connections (and persistence templates)
  fulcrum adm -L --timeout                  list the dataplane's idle timeouts
  fulcrum adm -A -t|-u VIP:port [-s scheduler] [-p [timeout]] [--name NAME]   add a service
  fulcrum adm -E -t|-u VIP:port [-s scheduler] [-p [timeout]]                 edit a service
  fulcrum adm -D -t|-u VIP:port                                              delete a service
  fulcrum adm -a -t|-u VIP:port -r RIP[:port] [-w weight]                    add a real server
  fulcrum adm -e -t|-u VIP:port -r RIP[:port] -w weight                      edit a real server
  fulcrum adm -d -t|-u VIP:port -r RIP[:port]                                delete a real server
  fulcrum adm drain <service> <server>      drain a server (service by name or VIP:port)
  fulcrum adm reload                        re-read the daemon's config file (as SIGHUP; also: fulcrum reload)

Options:
  --admin HOST:PORT      the admin API (default: $FULCRUM_ADMIN or 127.0.0.1:9100)
  --token-file FILE      bearer token for changes (default: $${TOKEN_ENV})
  --json                 print what the API returned, as JSON
  -b                     FULLNAT forwarding (the only method; -m, -g and -i are refused)
  -h, --help             show this help

A service added with -A is named <protocol>-<address>-<port> (colons of IPv6 become "_")
unless --name is given. Exit codes: 0 ok, 1 the API refused or cannot be reached, 2 usage.
`;

export interface AdmIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
}

/** Runs `fulcrum adm …`; resolves with the exit code. */
export async function adm(argv: string[], io: AdmIo): Promise<number> {
  const env = io.env ?? process.env;
  try {
    const o = parse(argv);
    if (o.values.help) return (void io.stdout.write(ADM_HELP), ExitCode.OK);
    const client = new AdminClient(adminArg(o.values, env), await tokenFrom(o.values, env));
    await run(o, client, io);
    return ExitCode.OK;
  } catch (e) {
    if (e instanceof AdmUsage) {
      io.stderr.write(`fulcrum adm: ${e.message}\n(see fulcrum adm --help)\n`);
      return ExitCode.USAGE;
    }
    if (e instanceof AdmError) {
      io.stderr.write(`fulcrum adm: ${e.code}: ${e.message}\n`);
      return ExitCode.FAILURE;
    }
    throw e;
  }
}

async function findService(
  client: AdminClient,
  v: { protocol: 'tcp' | 'udp'; virtual: string },
): Promise<ServiceView> {
  const services = await client.request<ServiceView[]>('GET', '/api/v1/services');
  const found = services.find((s) => s.protocol === v.protocol && s.virtual === v.virtual && !s.retiring);
  if (!found)
    throw new AdmError(
      `No such service: ${v.protocol.toUpperCase()} ${v.virtual}`,
      'FULCRUM_SERVICE_NOT_FOUND',
    );
  return found;
}

const servicePath = (name: string) => `/api/v1/services/${encodeURIComponent(name)}`;
const serverPath = (name: string, server: string) =>
  `${servicePath(name)}/servers/${encodeURIComponent(server)}`;

async function run(o: Options, client: AdminClient, io: AdmIo): Promise<void> {
  const { values } = o;
  const json = !!values.json;
  const print = (text: string) => void io.stdout.write(text);
  const done = (result: ApplyResult) => {
    if (json) print(JSON.stringify(result, null, 2) + '\n');
  };
  const v = virtualArg(values);
  const needVirtual = () => {
    if (!v)
      throw new AdmUsage(
        `-${COMMAND_FLAGS[o.command as keyof typeof COMMAND_FLAGS]} needs a service: -t VIP:port or -u VIP:port`,
      );
    return v;
  };
  const realServer = (svc: ServiceView) => {
    const r = values['real-server'] as string | undefined;
    if (r === undefined)
      throw new AdmUsage(
        `-${COMMAND_FLAGS[o.command as keyof typeof COMMAND_FLAGS]} needs a real server: -r RIP:port`,
      );
    // As ipvsadm: a real server given without a port takes the service's port.
    if (isIP(r))
      return endpointArg(
        formatEndpoint({ address: r, port: Number(svc.virtual.slice(svc.virtual.lastIndexOf(':') + 1)) }),
        '-r',
      );
    return endpointArg(r, '-r');
  };
  const weight = () =>
    values.weight === undefined ? undefined : intArg(values.weight as string, '-w', 0, 65535);
  const persistence = () =>
    values.persistent === undefined
      ? undefined
      : { timeout: intArg(values.persistent as string, '-p', 1, 30 * 24 * 3600) };

  switch (o.command) {
    case 'list':
      return list(o, client, v, print);
    case 'add-service': {
      const vs = needVirtual();
      const p = persistence();
      const name = (values.name as string | undefined) ?? generatedName(vs.protocol, vs.virtual);
      return done(
        await client.request<ApplyResult>('POST', '/api/v1/services', {
          name,
          protocol: vs.protocol,
          listen: vs.virtual,
          ...(values.scheduler !== undefined ? { scheduler: values.scheduler } : {}),
          ...(p ? { persistence: p } : {}),
        }),
      );
    }
    case 'edit-service': {
      const vs = needVirtual();
      const p = persistence();
      if (values.scheduler === undefined && !p)
        throw new AdmUsage('-E needs something to change: -s scheduler or -p timeout');
      const svc = await findService(client, vs);
      return done(
        await client.request<ApplyResult>('PATCH', servicePath(svc.name), {
          ...(values.scheduler !== undefined ? { scheduler: values.scheduler } : {}),
          ...(p ? { persistence: p } : {}),
        }),
      );
    }
    case 'delete-service': {
      const svc = await findService(client, needVirtual());
      return done(await client.request<ApplyResult>('DELETE', servicePath(svc.name)));
    }
    case 'add-server': {
      const vs = needVirtual();
      const w = weight();
      const svc = await findService(client, vs);
      return done(
        await client.request<ApplyResult>('POST', `${servicePath(svc.name)}/servers`, {
          address: realServer(svc),
          weight: w ?? 1,
        }),
      );
    }
    case 'edit-server': {
      const vs = needVirtual();
      const w = weight();
      if (w === undefined) throw new AdmUsage('-e needs something to change: -w weight');
      const svc = await findService(client, vs);
      return done(
        await client.request<ApplyResult>('PATCH', serverPath(svc.name, realServer(svc)), { weight: w }),
      );
    }
    case 'delete-server': {
      const svc = await findService(client, needVirtual());
      return done(await client.request<ApplyResult>('DELETE', serverPath(svc.name, realServer(svc))));
    }
    case 'drain': {
      const [service, server] = o.positionals as [string, string];
      const address = endpointArg(server, 'server');
      let name = service;
      if (parseEndpoint(service)) {
        const at = formatEndpoint(parseEndpoint(service)!);
        const matches = (await client.request<ServiceView[]>('GET', '/api/v1/services')).filter(
          (s) => s.virtual === at && !s.retiring,
        );
        if (matches.length === 0) throw new AdmError(`No such service: ${at}`, 'FULCRUM_SERVICE_NOT_FOUND');
        if (matches.length > 1)
          throw new AdmUsage(
            `${at} is both a TCP and a UDP service: name it (${matches.map((s) => s.name).join(', ')})`,
          );
        name = matches[0]!.name;
      }
      return done(await client.request<ApplyResult>('POST', `${serverPath(name, address)}/drain`));
    }
    case 'reload':
      // What SIGHUP does: the daemon re-reads its config file; a broken one changes nothing.
      return done(await client.request<ApplyResult>('POST', '/api/v1/reload'));
  }
}

async function list(
  o: Options,
  client: AdminClient,
  v: { protocol: 'tcp' | 'udp'; virtual: string } | undefined,
  print: (text: string) => void,
): Promise<void> {
  const { values } = o;
  const json = !!values.json;
  const modes = (['stats', 'rate', 'timeout', 'connection'] as const).filter((m) => values[m]);
  if (modes.length > 1)
    throw new AdmUsage(`one listing at a time: ${modes.map((m) => `--${m}`).join(' and ')}`);
  if (values.timeout) {
    const t = await client.request<{ tcp: number; tcpFin: number; udp: number }>('GET', '/api/v1/timeouts');
    return print(json ? JSON.stringify(t, null, 2) + '\n' : formatTimeouts(t));
  }
  if (values.connection) {
    const service = v ? (await findService(client, v)).name : undefined;
    const rows: ConnectionEntry[] = [];
    for (let offset = 0; ;) {
      const page = await client.request<{ total: number; connections: ConnectionEntry[] }>(
        'GET',
        `/api/v1/connections?limit=10000&offset=${offset}${service ? `&service=${encodeURIComponent(service)}` : ''}`,
      );
      rows.push(...page.connections);
      offset += page.connections.length;
      if (page.connections.length === 0 || offset >= page.total) break;
    }
    return print(json ? JSON.stringify(rows, null, 2) + '\n' : formatConnections(rows));
  }
  const fetchServices = async () => {
    const all = await client.request<ServiceView[]>('GET', '/api/v1/services');
    if (!v) return all;
    const one = all.filter((s) => s.protocol === v.protocol && s.virtual === v.virtual && !s.retiring);
    if (!one.length)
      throw new AdmError(
        `No such service: ${v.protocol.toUpperCase()} ${v.virtual}`,
        'FULCRUM_SERVICE_NOT_FOUND',
      );
    return one;
  };
  const mode: ListMode = values.stats ? 'stats' : values.rate ? 'rate' : 'plain';
  const health = await client.request<{ version?: string; configVersion: number }>('GET', '/healthz');
  let services = await fetchServices();
  let rates: ReturnType<typeof computeRates> | undefined;
  if (mode === 'rate') {
    // ipvsadm's rates are the kernel's estimates; here they are the difference of two samples.
    const t0 = performance.now();
    await sleep(1000);
    const after = await fetchServices();
    rates = computeRates(services, after, (performance.now() - t0) / 1000);
    services = after;
  }
  if (json) {
    const out = sortServices(services).map((s) =>
      rates
        ? {
            ...s,
            rate: rates.get(s.name)?.service,
            servers: s.servers.map((d) => ({ ...d, rate: rates.get(s.name)?.servers.get(d.server) })),
          }
        : s,
    );
    return print(JSON.stringify(out, null, 2) + '\n');
  }
  print(
    `Fulcrum version ${health.version ?? '?'} (config version ${health.configVersion})\n` +
      title(mode) +
      formatServices(services, { mode, exact: !!values.exact, ...(rates ? { rates } : {}) }),
  );
}
