import type { ConfigInput, PluginRef, ServiceInput } from '@fulcrum/kernel';
import { isDeepStrictEqual } from 'node:util';
import { isIP } from 'node:net';
import type { KeepalivedNode } from './parse.js';

/** Something the importer could not carry over exactly; every one names its line. */
export interface ImportNote {
  line: number;
  /** The block or keyword concerned, e.g. `vrrp_instance VI_1` or `lb_kind DR`. */
  subject: string;
  /** `not-translated`: dropped; `approximated`: translated with a difference said in `message`. */
  kind: 'not-translated' | 'approximated';
  message: string;
}

export interface ImportResult {
  config: ConfigInput;
  notes: ImportNote[];
  /** virtual_server blocks translated. */
  translated: number;
}

// IPVS schedulers Fulcrum has under the same name.
const SCHEDULERS = new Set(['rr', 'wrr', 'lc', 'wlc', 'sh', 'mh', 'sed', 'nq']);
const VRRP_BLOCKS = /^(vrrp_|static_|track_|linkbeat_|garp_|bfd_instance)/;
const UNSUPPORTED_CHECKERS = new Set([
  'SMTP_CHECK',
  'DNS_CHECK',
  'UDP_CHECK',
  'PING_CHECK',
  'FILE_CHECK',
  'BFD_CHECK',
]);

/** Check options a virtual_server or real_server sets for the checkers below it (keepalived 2.x). */
interface CheckDefaults {
  interval?: number;
  timeout?: number;
  retries?: number;
  retryDelay?: number;
  warmup?: number;
  alpha?: boolean;
  host?: string;
}

const num = (s: string | undefined): number | undefined =>
  s !== undefined && /^\d+(\.\d+)?$/.test(s) ? Number(s) : undefined;
const label = (n: KeepalivedNode) => n.words.join(' ');
const endpoint = (ip: string, port: string) => (isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`);

/** Splits a keepalived command line ("script.sh arg1 'two words'") into argv. */
export function splitCommand(text: string): string[] {
  return [...text.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

export function translateKeepalived(
  nodes: KeepalivedNode[],
  options: { dataplane?: string } = {},
): ImportResult {
  const notes: ImportNote[] = [];
  const note = (n: KeepalivedNode, kind: ImportNote['kind'], message: string, subject = label(n)) =>
    notes.push({ line: n.line, subject, kind, message });
  const services: ServiceInput[] = [];

  for (const node of nodes) {
    const head = node.words[0] ?? '';
    if (head === 'virtual_server') {
      const svc = virtualServer(node, note);
      if (svc) services.push(svc);
    } else if (head === 'global_defs') {
      note(
        node,
        'not-translated',
        'global settings (notification e-mail, router_id, …) have no Fulcrum equivalent',
      );
    } else if (VRRP_BLOCKS.test(head)) {
      note(node, 'not-translated', 'VRRP is not part of Fulcrum: keep keepalived for VRRP beside Fulcrum');
    } else if (head === 'virtual_server_group') {
      note(
        node,
        'not-translated',
        'virtual_server_group has no Fulcrum equivalent: declare one service per address',
      );
    } else if (head === 'include') {
      note(node, 'not-translated', 'include is not followed: import each included file on its own');
    } else {
      note(node, 'not-translated', `unknown or unsupported top-level keyword "${head}"`);
    }
  }

  return {
    config: { dataplane: options.dataplane ?? 'socket', services },
    notes: notes.sort((a, b) => a.line - b.line),
    translated: services.length,
  };
}

type Note = (n: KeepalivedNode, kind: ImportNote['kind'], message: string, subject?: string) => void;

function virtualServer(node: KeepalivedNode, note: Note): ServiceInput | undefined {
  const [, ip, port] = node.words;
  if (ip === 'fwmark' || ip === 'group') {
    note(
      node,
      'not-translated',
      `virtual_server ${ip} is not supported: Fulcrum services listen on an address and port`,
    );
    return undefined;
  }
  if (!ip || isIP(ip) === 0 || !num(port)) {
    note(node, 'not-translated', 'virtual_server needs an IP address and a port');
    return undefined;
  }
  const defaults: CheckDefaults = {};
  const svc: ServiceInput = { name: '', listen: endpoint(ip, port!), protocol: 'tcp', scheduler: 'wlc' };
  const servers: {
    node: KeepalivedNode;
    address: string;
    weight: number;
    inhibit: boolean;
    checks: PluginRef[];
    up?: string[];
    down?: string[];
  }[] = [];
  let vsInhibit = false;
  const notify: NonNullable<ServiceInput['notify']> = {};

  for (const c of node.children ?? []) {
    const [key, a, b] = c.words;
    switch (key) {
      case 'delay_loop':
        defaults.interval = num(a);
        break;
      case 'lb_algo':
      case 'lvs_sched':
        if (a && SCHEDULERS.has(a)) svc.scheduler = a;
        else note(c, 'approximated', `scheduler ${a} is not available in Fulcrum: wlc is used instead`);
        break;
      case 'lb_kind':
      case 'lvs_method':
        if (a !== 'FNAT' && a !== 'FULLNAT')
          note(
            c,
            'approximated',
            `Fulcrum forwards in FULLNAT: servers see the balancer's address instead of the client's (${a} kept it); use a passthrough (proxy-protocol, or toa on the DPDK dataplane) to carry the client address`,
          );
        break;
      case 'persistence_timeout':
        svc.persistence = { timeout: num(a) ?? 360 };
        break;
      case 'protocol':
        if (a === 'TCP' || a === 'UDP') svc.protocol = a.toLowerCase() as 'tcp' | 'udp';
        else {
          note(
            c,
            'not-translated',
            `protocol ${a} is not supported (tcp and udp are); the virtual server is skipped`,
            label(node),
          );
          return undefined;
        }
        break;
      case 'virtualhost':
        defaults.host = a;
        break;
      case 'alpha':
        defaults.alpha = true;
        break;
      case 'quorum':
        svc.quorum = num(a);
        break;
      case 'hysteresis':
        svc.hysteresis = num(a);
        break;
      case 'quorum_up':
        notify.quorumUp = splitCommand(c.words.slice(1).join(' '));
        break;
      case 'quorum_down':
        notify.quorumDown = splitCommand(c.words.slice(1).join(' '));
        break;
      case 'sorry_server':
        if (a && b && isIP(a)) svc.sorryServer = endpoint(a, b);
        else note(c, 'not-translated', 'sorry_server needs an IP address and a port');
        break;
      case 'inhibit_on_failure':
        vsInhibit = true;
        break;
      case 'connect_timeout':
      case 'retry':
      case 'nb_get_retry':
      case 'delay_before_retry':
      case 'warmup':
        checkDefault(defaults, c);
        break;
      case 'real_server': {
        const rs = realServer(c, { ...defaults }, note);
        if (rs) servers.push(rs);
        break;
      }
      default:
        note(c, 'not-translated', `"${key}" has no Fulcrum equivalent`);
    }
  }

  svc.name = `${svc.protocol}-${ip.replace(/[:]/g, '_')}-${port}`;
  svc.realServers = servers.map((s) => ({ address: s.address, weight: s.weight }));

  // Fulcrum checks apply to every server of a service; keepalived's are per real server.
  const withChecks = servers.filter((s) => s.checks.length);
  if (withChecks.length) {
    svc.healthChecks = withChecks[0]!.checks;
    const differs = servers.find((s) => !isDeepStrictEqual(s.checks, withChecks[0]!.checks));
    if (differs)
      note(
        differs.node,
        'approximated',
        `real servers have different checks; Fulcrum applies one set to the whole service: those of ${label(withChecks[0]!.node)} (line ${withChecks[0]!.node.line}) are used`,
      );
  }

  const inhibited = servers.filter((s) => s.inhibit || vsInhibit).length;
  svc.onFailure = inhibited > 0 ? 'inhibit' : 'remove';
  if (inhibited > 0 && inhibited < servers.length)
    note(
      node,
      'approximated',
      'inhibit_on_failure is set on some real servers only; Fulcrum sets onFailure per service: inhibit is used for all',
      label(node),
    );

  for (const hook of ['up', 'down'] as const) {
    const cmds = servers.filter((s) => s[hook]).map((s) => s[hook]!);
    if (!cmds.length) continue;
    notify[hook] = cmds[0];
    if (cmds.length !== servers.length || cmds.some((c) => !isDeepStrictEqual(c, cmds[0])))
      note(
        node,
        'approximated',
        `notify_${hook} differs between real servers; Fulcrum runs one command per service (it gets the server in FULCRUM_SERVER): ${cmds[0]!.join(' ')}`,
        label(node),
      );
  }
  if (Object.keys(notify).length) svc.notify = notify;
  return svc;
}

function checkDefault(d: CheckDefaults, c: KeepalivedNode): void {
  const [key, a] = c.words;
  const v = num(a);
  if (key === 'connect_timeout') d.timeout = v;
  else if (key === 'retry' || key === 'nb_get_retry') d.retries = v;
  else if (key === 'delay_before_retry') d.retryDelay = v;
  else if (key === 'warmup') d.warmup = v;
  else if (key === 'delay_loop') d.interval = v;
}

function realServer(node: KeepalivedNode, defaults: CheckDefaults, note: Note) {
  const [, ip, port] = node.words;
  if (!ip || isIP(ip) === 0 || !num(port)) {
    note(node, 'not-translated', 'real_server needs an IP address and a port');
    return undefined;
  }
  const rs = {
    node,
    address: endpoint(ip, port!),
    weight: 1,
    inhibit: false,
    checks: [] as PluginRef[],
    up: undefined as string[] | undefined,
    down: undefined as string[] | undefined,
  };
  for (const c of node.children ?? []) {
    const [key, a] = c.words;
    if (key === 'weight') rs.weight = num(a) ?? 1;
    else if (key === 'inhibit_on_failure') rs.inhibit = true;
    else if (key === 'notify_up') rs.up = splitCommand(c.words.slice(1).join(' '));
    else if (key === 'notify_down') rs.down = splitCommand(c.words.slice(1).join(' '));
    else if (key === 'alpha') defaults.alpha = true;
    else if (
      ['connect_timeout', 'retry', 'nb_get_retry', 'delay_before_retry', 'warmup', 'delay_loop'].includes(
        key!,
      )
    )
      checkDefault(defaults, c);
    else if (key === 'HTTP_GET' || key === 'SSL_GET')
      rs.checks.push(...httpChecks(c, { ...defaults }, ip, note));
    else if (key === 'TCP_CHECK')
      rs.checks.push({ name: 'tcp', options: common(c, { ...defaults }, ip, note) });
    else if (key === 'MISC_CHECK') {
      const check = miscCheck(c, { ...defaults }, ip, note);
      if (check) rs.checks.push(check);
    } else if (UNSUPPORTED_CHECKERS.has(key!))
      note(c, 'not-translated', `${key} is not available in Fulcrum (http, tcp, script and passive are)`);
    else note(c, 'not-translated', `"${key}" has no Fulcrum equivalent`);
  }
  return rs;
}

/** The options every active checker shares, from a checker block and the inherited defaults. */
function common(
  node: KeepalivedNode,
  d: CheckDefaults,
  serverIp: string,
  note: Note,
  known: string[] = [],
): Record<string, unknown> {
  const opts: Record<string, unknown> = {};
  for (const c of node.children ?? []) {
    const [key, a] = c.words;
    if (
      ['connect_timeout', 'retry', 'nb_get_retry', 'delay_before_retry', 'warmup', 'delay_loop'].includes(
        key!,
      )
    )
      checkDefault(d, c);
    else if (key === 'connect_ip') {
      if (a !== serverIp) opts.address = a;
    } else if (key === 'connect_port') opts.port = num(a);
    else if (key === 'bindto') opts.bindTo = a;
    else if (!known.includes(key!))
      note(c, 'not-translated', `"${key}" has no Fulcrum equivalent in ${node.words[0]}`);
  }
  if (d.interval !== undefined) opts.interval = d.interval;
  if (d.timeout !== undefined) opts.timeout = d.timeout;
  if (d.retries !== undefined) opts.retries = d.retries;
  if (d.retryDelay !== undefined) opts.retryDelay = d.retryDelay;
  if (d.warmup !== undefined) opts.warmup = d.warmup;
  if (d.alpha) opts.initialState = 'down';
  return opts;
}

function httpChecks(node: KeepalivedNode, d: CheckDefaults, serverIp: string, note: Note): PluginRef[] {
  let host = d.host;
  for (const c of node.children ?? []) if (c.words[0] === 'virtualhost') host = c.words[1];
  const base = common(node, d, serverIp, note, ['url', 'virtualhost']);
  const urls = (node.children ?? []).filter((c) => c.words[0] === 'url');
  if (!urls.length) note(node, 'approximated', 'no url block: the path / is checked for a 2xx status');
  const checks = (urls.length ? urls : [undefined]).map((url) => {
    const opts: Record<string, unknown> = {
      ...base,
      ...(node.words[0] === 'SSL_GET' ? { tls: true } : {}),
      ...(host ? { host } : {}),
    };
    for (const c of url?.children ?? []) {
      const [key, a] = c.words;
      if (key === 'path') opts.path = a;
      else if (key === 'digest') opts.digest = a;
      else if (key === 'status_code') opts.status = c.words.slice(1);
      else if (key === 'virtualhost') opts.host = a;
      else if (key === 'regex') opts.bodyRegex = a;
      else note(c, 'not-translated', `"${key}" in url has no Fulcrum equivalent`);
    }
    return { name: 'http', options: opts };
  });
  return checks;
}

function miscCheck(
  node: KeepalivedNode,
  d: CheckDefaults,
  serverIp: string,
  note: Note,
): PluginRef | undefined {
  const opts = common(node, d, serverIp, note, ['misc_path', 'misc_timeout', 'misc_dynamic', 'user']);
  delete opts.timeout; // connect_timeout does not apply to scripts; misc_timeout does
  for (const c of node.children ?? []) {
    const [key, a] = c.words;
    if (key === 'misc_path') {
      const [path, ...args] = splitCommand(c.words.slice(1).join(' '));
      opts.path = path;
      if (args.length) opts.args = args;
    } else if (key === 'misc_timeout') opts.timeout = num(a);
    else if (key === 'misc_dynamic') opts.dynamic = true;
    else if (key === 'user')
      note(c, 'not-translated', 'scripts run as the daemon\'s user; "user" is not supported');
  }
  if (!opts.path) {
    note(node, 'not-translated', 'MISC_CHECK without misc_path');
    return undefined;
  }
  return { name: 'script', options: opts };
}
