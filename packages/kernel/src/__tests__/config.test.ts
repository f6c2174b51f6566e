import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  createKernel,
  defineScheduler,
  ErrorCodes,
  formatIssue,
  parseConfigText,
  type ConfigIssue,
} from '../index.js';
import { manualHealthCheck, recordingDataplane, rr, toa } from './fixtures.js';

function kernel() {
  return createKernel({ plugins: [rr, recordingDataplane().plugin, manualHealthCheck().plugin, toa] });
}

async function issuesOf(yaml: string, file = 'fulcrum.yaml'): Promise<ConfigIssue[]> {
  try {
    await kernel().validate(parseConfigText(yaml, file));
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).issues];
  }
  throw new Error('expected the config to be rejected');
}

const base = `dataplane: memory
services:
  - name: web
    listen: 127.0.0.1:8080
    scheduler: rr
    realServers:
      - { address: 127.0.0.1:9001, weight: 3 }
`;

describe('config compilation', () => {
  it('normalises: plugin references as objects, defaults filled in, durations in ms', async () => {
    const compiled = await kernel().validate(
      parseConfigText(`dataplane: { name: memory, options: { idleTimeout: 2m } }
services:
  - name: web
    listen: "[::1]:8080"
    scheduler: rr
    persistence: { timeout: 300 }
    healthChecks: [ manual, { name: manual, options: { interval: 500ms } } ]
    drain: { idleClose: 10s }
    realServers:
      - { address: 127.0.0.1:9001 }
      - { address: "[::1]:9002", weight: 0, drain: true }
`),
    );
    const { config } = compiled;
    expect(config.dataplane).toEqual({ name: 'memory', options: { idleTimeout: 120_000 } });
    const svc = config.services[0]!;
    expect(svc).toMatchObject({
      name: 'web',
      protocol: 'tcp',
      listen: { address: '::1', port: 8080, family: 6 },
      scheduler: { name: 'rr', options: {} },
      persistence: { timeoutMs: 300_000 },
      onFailure: 'inhibit',
      drain: { idleCloseMs: 10_000, deadlineMs: 300_000 },
      localAddresses: [],
    });
    expect(svc.healthChecks).toEqual([
      { name: 'manual', options: { interval: 2000 } },
      { name: 'manual', options: { interval: 500 } },
    ]);
    expect(svc.realServers).toEqual([
      { address: '127.0.0.1', port: 9001, weight: 1, drain: false },
      { address: '::1', port: 9002, weight: 0, drain: true },
    ]);
    expect(compiled.plugin('scheduler', 'rr')).toBe(rr);
  });

  it('reads JSON as well as YAML', async () => {
    const json = JSON.stringify({
      dataplane: 'memory',
      services: [{ name: 'a', listen: '127.0.0.1:1', scheduler: 'rr' }],
    });
    const { config } = await kernel().validate(parseConfigText(json, 'fulcrum.json'));
    expect(config.services[0]!.name).toBe('a');
  });

  it('points at file, line and column of each problem, all at once', async () => {
    const issues = await issuesOf(`dataplane: memory
services:
  - name: web
    listen: 127.0.0.1:8080
    scheduler: rr
    colour: blue
    realServers:
      - { address: 127.0.0.1:9001, weight: 3 }
      - { address: 127.0.0.1:9002, weight: -1 }
      - { address: 127.0.0.1, weight: 1.5 }
`);
    const text = issues.map(formatIssue);
    expect(text).toContain(
      'fulcrum.yaml:6:5 services[0].colour: unknown key "colour" (allowed: name, protocol, listen, scheduler, persistence, passthrough, synproxy, healthChecks, onFailure, drain, maxConnections, quorum, hysteresis, sorryServer, notify, localAddresses, realServers)',
    );
    expect(text).toContain('fulcrum.yaml:9:36 services[0].realServers[1].weight: must be integer >= 0');
    expect(text).toContain(
      'fulcrum.yaml:10:11 services[0].realServers[2].address: must be an address and port, such as 127.0.0.1:8080 or [::1]:8080',
    );
    expect(text).toContain('fulcrum.yaml:10:31 services[0].realServers[2].weight: must be integer');
    expect(issues).toHaveLength(4);
  });

  it.each([
    ['protocol: sctp', 'services[0].protocol', 'must be one of: "tcp", "udp"'],
    [
      'persistence: { timeout: soon }',
      'services[0].persistence.timeout',
      'must be a duration: a number of seconds, or a string such as "500ms", "2s", "1m"',
    ],
    ['persistence: { timeout: 500ms }', 'services[0].persistence.timeout', 'must be at least 1s'],
    ['localAddresses: [10.0.0.1, nope]', 'services[0].localAddresses[1]', 'must be an IPv4 or IPv6 address'],
    ['onFailure: explode', 'services[0].onFailure', 'must be one of: "inhibit", "drain", "remove"'],
    [
      'healthChecks: [ { name: manual, options: { interval: 0.0.1 } } ]',
      'services[0].healthChecks[0].options.interval',
      'must be a duration: a number of seconds, or a string such as "500ms", "2s", "1m"',
    ],
    [
      'healthChecks: [ { name: manual, options: { timeout: 1 } } ]',
      'services[0].healthChecks[0].options.timeout',
      'unknown key "timeout" (allowed: interval)',
    ],
    ['healthChecks: [ { options: {} } ]', 'services[0].healthChecks[0]', 'missing required key "name"'],
    ['scheduler: 7', 'services[0].scheduler', 'must be string or object'],
    ['maxConnections: 0', 'services[0].maxConnections', 'must be integer >= 1'],
  ])('%s → %s: %s', async (line, path, message) => {
    const yaml = base
      .replace('    scheduler: rr\n', `    scheduler: rr\n    ${line}\n`)
      .replace('scheduler: rr\n    scheduler: 7', 'scheduler: 7');
    const issues = await issuesOf(yaml);
    expect(issues.map((i) => [i.path, i.message])).toContainEqual([path, message]);
  });

  it('reports YAML syntax errors and duplicate keys with their line', async () => {
    const issues = await issuesOf('services:\n  - name: a\n    name: b\n', 'dup.yaml');
    expect(issues[0]).toMatchObject({ code: ErrorCodes.CONFIG_PARSE, file: 'dup.yaml', line: 3 });
    await expect(
      (async () => kernel().validate(parseConfigText('services: [\n', 'x.yaml')))(),
    ).rejects.toMatchObject({ code: ErrorCodes.CONFIG_PARSE });
  });

  it('refuses duplicate services, addresses and real servers', async () => {
    const issues = await issuesOf(`dataplane: memory
services:
  - { name: web, listen: 127.0.0.1:80, scheduler: rr, realServers: [ { address: 10.0.0.1:80 }, { address: 10.0.0.1:80 } ] }
  - { name: web, listen: 127.0.0.1:81, scheduler: rr }
  - { name: api, listen: 127.0.0.1:80, scheduler: rr }
  - { name: dns, protocol: udp, listen: 127.0.0.1:80, scheduler: rr }
`);
    expect(issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'services[0].realServers[1].address: duplicate real server (also realServers[0])',
      'services[1].name: duplicate service name "web" (also services[0])',
      'services[2].listen: tcp 127.0.0.1:80 is already the address of services[0]',
    ]);
  });

  it('refuses what the dataplane cannot do, naming the alternative for TOA', async () => {
    const k = createKernel({ plugins: [rr, recordingDataplane('tcp-only', ['tcp']).plugin, toa] });
    const err = await k
      .validate(
        parseConfigText(`dataplane: tcp-only
services:
  - { name: dns, protocol: udp, listen: 127.0.0.1:53, scheduler: rr }
  - { name: web, listen: 127.0.0.1:80, scheduler: rr, passthrough: toa, persistence: { timeout: 60 } }
`),
      )
      .catch((e: ConfigError) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe(ErrorCodes.CAPABILITY);
    const text = (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
    expect(text[0]).toBe(
      'services[0].protocol: protocol udp needs a dataplane with the "udp" capability; the "tcp-only" dataplane has: tcp',
    );
    expect(text[1]).toMatch(/^services\[1\]\.persistence: persistence needs .* "persistence" capability/);
    expect(text[2]).toMatch(
      /^services\[1\]\.passthrough: passthrough "toa" needs a dataplane with the "toa" capability.*use the dpdk dataplane, or .*PROXY protocol/,
    );
  });

  it('refuses synproxy on a dataplane without the capability, and on UDP', async () => {
    const k = createKernel({ plugins: [rr, recordingDataplane('tcp-udp', ['tcp', 'udp']).plugin] });
    const err = await k
      .validate(
        parseConfigText(`dataplane: tcp-udp
services:
  - { name: web, listen: 127.0.0.1:80, scheduler: rr, synproxy: true }
  - { name: off, listen: 127.0.0.1:81, scheduler: rr, synproxy: false }
`),
      )
      .catch((e: ConfigError) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe(ErrorCodes.CAPABILITY);
    expect((err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'services[0].synproxy: synproxy needs a dataplane with the "synproxy" capability; the "tcp-udp" dataplane has: tcp, udp. SYN cookies answered by the balancer need a packet dataplane: use the dpdk dataplane (a socket dataplane\'s listeners have the host kernel\'s net.ipv4.tcp_syncookies)',
    ]);
    const udp = await createKernel({
      plugins: [rr, recordingDataplane('sp', ['tcp', 'udp', 'synproxy']).plugin],
    })
      .validate(
        parseConfigText(`dataplane: sp
services:
  - { name: dns, protocol: udp, listen: 127.0.0.1:53, scheduler: rr, synproxy: true }
`),
      )
      .catch((e: ConfigError) => e);
    expect((udp as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'services[0].synproxy: synproxy is for TCP services only (SYN cookies)',
    ]);
    const dp = recordingDataplane('sp', ['tcp', 'synproxy']);
    const ok = createKernel({ plugins: [rr, dp.plugin] });
    await ok.apply(
      parseConfigText(`dataplane: sp
services:
  - { name: web, listen: 127.0.0.1:80, scheduler: rr, synproxy: true }
  - { name: off, listen: 127.0.0.1:81, scheduler: rr }
`),
    );
    expect(dp.state.changes[0]!.added.map((s) => [s.name, s.synproxy])).toEqual([
      ['web', true],
      ['off', undefined],
    ]);
    await ok.close();
  });

  it('names a plugin that is not there, and what it tried', async () => {
    const issues = await issuesOf(base.replace('scheduler: rr', 'scheduler: fastest'));
    expect(issues).toEqual([
      expect.objectContaining({
        code: ErrorCodes.PLUGIN_NOT_FOUND,
        path: 'services[0].scheduler.name',
        line: 5,
        message:
          'no scheduler plugin "fastest": registered schedulers are rr, and "@fulcrum/scheduler-fastest" and "fastest" are not installed (npm install @fulcrum/scheduler-fastest)',
      }),
    ]);
    const pkg = await issuesOf(base.replace('scheduler: rr', 'scheduler: "@acme/not-installed"'));
    expect(pkg[0]!.message).toMatch(/"@acme\/not-installed" is not installed/);
    const listed = await issuesOf(`plugins: ["@acme/nothing"]\n${base}`);
    expect(listed[0]).toMatchObject({ path: 'plugins[0]', line: 1, code: ErrorCodes.PLUGIN_NOT_FOUND });
  });

  it('uses the default dataplane (socket) and scheduler (wlc) when absent', async () => {
    const socket = recordingDataplane('socket').plugin;
    const wlc = { ...rr, name: 'wlc' };
    const { config } = await createKernel({ plugins: [socket, wlc] }).validate(
      parseConfigText('services:\n  - { name: web, listen: 127.0.0.1:80 }\n'),
    );
    expect(config.dataplane.name).toBe('socket');
    expect(config.services[0]!.scheduler.name).toBe('wlc');
  });

  it('rejects a non-mapping document', async () => {
    const issues = await issuesOf('- a\n- b\n');
    expect(issues[0]!.message).toMatch(/must be a mapping/);
  });

  it('applies option defaults of plugins named by string', async () => {
    const withDefaults = defineScheduler({
      name: 'tuned',
      kernel: '^0.1.0',
      optionsSchema: {
        type: 'object',
        additionalProperties: false,
        properties: { size: { type: 'integer', default: 7 } },
      },
      create: () => ({ compile: () => ({ kind: 'sequence', sequence: [] }) }),
    });
    const k = createKernel({ plugins: [withDefaults, recordingDataplane().plugin] });
    const { config } = await k.validate({
      dataplane: 'memory',
      services: [{ name: 'a', listen: '127.0.0.1:1', scheduler: 'tuned' }],
    });
    expect(config.services[0]!.scheduler).toEqual({ name: 'tuned', options: { size: 7 } });
  });
});
