import type { AnyPlugin, JsonSchema, PluginKind } from './plugin.js';

/** Plugins a config can name, by the name it uses for them (short name or package name). */
export type ResolvedPlugins = Map<PluginKind, Map<string, AnyPlugin>>;

const SERVICE_NAME = '^[A-Za-z0-9][A-Za-z0-9_.-]*$';

/** A command: a string split on whitespace, or an argv array; never through a shell. */
const command = (description: string): JsonSchema => ({
  description,
  type: ['string', 'array'],
  minLength: 1,
  minItems: 1,
  items: { type: 'string', minLength: 1 },
});

/**
 * A plugin reference: `wrr`, or `{ name: wrr, options: {...} }`. With resolved plugins, each
 * plugin's options schema applies when the name matches it.
 */
function pluginRef(kind: PluginKind, resolved: ResolvedPlugins | undefined, description: string): JsonSchema {
  const byName = resolved?.get(kind) ?? new Map<string, AnyPlugin>();
  const groups = new Map<AnyPlugin, string[]>();
  for (const [name, p] of byName) groups.set(p, [...(groups.get(p) ?? []), name]);
  return {
    description,
    type: ['string', 'object'],
    minLength: 1,
    if: { type: 'object' },
    then: {
      required: ['name'],
      additionalProperties: false,
      properties: {
        name: { type: 'string', minLength: 1, description: `the ${kind}'s name or npm package` },
        options: { type: 'object' },
      },
    },
    ...(groups.size
      ? {
          allOf: [...groups].map(([plugin, names]) => ({
            if: { type: 'object', required: ['name'], properties: { name: { enum: names } } },
            then: { properties: { options: plugin.optionsSchema } },
          })),
        }
      : {}),
  };
}

const endpoint = { type: 'string', format: 'endpoint' };

/** The schema of one real server in a service's `realServers`. */
export function realServerSchema(): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['address'],
    properties: {
      address: { ...endpoint, description: 'the real server, address:port' },
      weight: {
        type: 'integer',
        minimum: 0,
        maximum: 65535,
        default: 1,
        description: '0 takes no new connections',
      },
      drain: {
        type: 'boolean',
        default: false,
        description: 'take the server out gracefully, per the service drain policy',
      },
    },
  };
}

/** The schema of one service, with the options schemas of the resolved plugins. */
export function serviceSchema(resolved?: ResolvedPlugins): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'listen'],
    properties: {
      name: {
        type: 'string',
        pattern: SERVICE_NAME,
        maxLength: 64,
        description: 'unique name of the virtual service',
      },
      protocol: { enum: ['tcp', 'udp'], default: 'tcp' },
      listen: { ...endpoint, description: 'the virtual address and port (VIP:port)' },
      scheduler: pluginRef('scheduler', resolved, 'the scheduling algorithm; wlc when absent, as ipvsadm'),
      persistence: {
        type: 'object',
        additionalProperties: false,
        required: ['timeout'],
        properties: {
          timeout: {
            duration: { min: '1s', max: '30d' },
            description: 'how long a client sticks to its server',
          },
        },
      },
      passthrough: pluginRef('passthrough', resolved, 'how the client address reaches the server'),
      synproxy: {
        type: 'boolean',
        default: false,
        description:
          'answer SYNs with SYN cookies and open the server connection only after a valid ACK (DPVS SYNPROXY); needs a dataplane with the synproxy capability',
      },
      healthChecks: {
        type: 'array',
        default: [],
        items: pluginRef('healthcheck', resolved, 'a health checker'),
      },
      onFailure: { enum: ['inhibit', 'drain', 'remove'], default: 'inhibit' },
      drain: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          idleClose: {
            duration: true,
            default: '30s',
            description: 'close a draining connection idle this long',
          },
          deadline: {
            duration: true,
            default: '5m',
            description: 'close what is left this long after draining starts',
          },
        },
      },
      maxConnections: {
        type: 'integer',
        minimum: 1,
        description: 'concurrent connections beyond which new ones are refused',
      },
      quorum: {
        type: 'integer',
        minimum: 1,
        default: 1,
        description: 'live weight needed to serve normally (keepalived quorum)',
      },
      hysteresis: { type: 'integer', minimum: 0, default: 0, description: 'keepalived hysteresis' },
      sorryServer: { ...endpoint, description: 'where connections go while the quorum is lost' },
      notify: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          up: command('run when a real server comes up (notify_up)'),
          down: command('run when a real server goes down (notify_down)'),
          quorumUp: command('run when the quorum is gained (quorum_up)'),
          quorumDown: command('run when the quorum is lost (quorum_down)'),
        },
      },
      localAddresses: {
        type: 'array',
        default: [],
        uniqueItems: true,
        items: { type: 'string', format: 'ip' },
        description: 'FULLNAT source addresses toward the servers',
      },
      realServers: { type: 'array', default: [], items: realServerSchema() },
    },
  };
}

/**
 * The one JSON Schema of a Fulcrum configuration: the kernel's, with every resolved
 * plugin's options schema in place. Without plugins it checks the kernel's part only
 * (what `fulcrum schema` prints for editors before any plugin is known).
 */
export function configSchema(resolved?: ResolvedPlugins): JsonSchema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Fulcrum configuration',
    type: 'object',
    additionalProperties: false,
    properties: {
      $schema: { type: 'string' },
      dataplane: pluginRef('dataplane', resolved, 'the dataplane; socket when absent'),
      admin: {
        type: 'object',
        additionalProperties: false,
        required: ['listen'],
        properties: {
          listen: { ...endpoint, description: 'admin HTTP API and /metrics' },
          tokenFile: {
            type: 'string',
            minLength: 1,
            description:
              'file holding the bearer token that write requests must carry (required off loopback)',
          },
        },
      },
      plugins: {
        type: 'array',
        default: [],
        items: { type: 'string', minLength: 1 },
        description: 'npm packages of plugins to load before names are resolved',
      },
      services: { type: 'array', default: [], items: serviceSchema(resolved) },
    },
  };
}

/** Defaults for plugin references, applied before validation. */
export const DEFAULT_DATAPLANE = 'socket';
export const DEFAULT_SCHEDULER = 'wlc';
