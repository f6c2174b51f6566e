import { realServerSchema, serviceSchema } from '@fulcrum/kernel';

type Schema = Record<string, unknown>;

/**
 * The kernel's config schema is draft-07 with one custom keyword (`duration`); OpenAPI 3.1
 * speaks JSON Schema 2020-12, so durations become what they accept on the wire.
 */
function toOpenApiSchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(toOpenApiSchema);
  if (s === null || typeof s !== 'object') return s;
  const out: Schema = {};
  for (const [k, v] of Object.entries(s as Schema)) {
    if (k === 'duration') {
      out.type = ['number', 'string'];
      out.description ??= 'a duration: seconds, or a string with a unit such as "30s" or "5m"';
    } else if (k === '$schema') continue;
    else out[k] = toOpenApiSchema(v);
  }
  return out;
}

/** The schema of a JSON merge patch of `schema`: any of its fields, each also null (removed). */
function mergePatchOf(schema: unknown): Schema {
  const { properties = {} } = schema as { properties?: Record<string, unknown> };
  return {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(
      Object.entries(properties).map(([k, v]) => [k, { anyOf: [v, { type: 'null' }] }]),
    ),
  };
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });

const errors = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((s) => [
      String(s),
      { $ref: `#/components/responses/${ERROR_RESPONSES[s as keyof typeof ERROR_RESPONSES]}` },
    ]),
  );

const ERROR_RESPONSES = {
  400: 'Invalid',
  401: 'Unauthorized',
  404: 'NotFound',
  409: 'Conflict',
  413: 'TooLarge',
  415: 'NotJson',
} as const;

const WRITE_ERRORS = [400, 401, 404, 409, 413, 415];

const serviceParam = {
  name: 'service',
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description: 'the service name',
};
const serverParam = {
  name: 'server',
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description: 'the real server, address:port (URL-encoded: [::1]:80 is %5B%3A%3A1%5D%3A80)',
};

const applied = (description: string, withService = true) => ({
  description,
  ...json(withService ? ref('ChangeWithService') : ref('ApplyResult')),
});

function write(summary: string, ok: string, okBody: object, body?: unknown, optionalBody = false) {
  return {
    summary,
    security: [{ bearer: [] }],
    ...(body ? { requestBody: { required: !optionalBody, ...json(body) } } : {}),
    responses: { [ok]: okBody, ...errors(...WRITE_ERRORS) },
  };
}

/** The OpenAPI 3.1 document of the admin API, served at `/openapi.json`. */
export function openApiDocument(version: string): Schema {
  const service = toOpenApiSchema(serviceSchema());
  const realServer = toOpenApiSchema(realServerSchema());
  const stats = {
    type: 'object',
    required: ['conns', 'inPkts', 'outPkts', 'inBytes', 'outBytes'],
    properties: Object.fromEntries(
      ['conns', 'inPkts', 'outPkts', 'inBytes', 'outBytes'].map((k) => [k, { type: 'integer' }]),
    ),
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Fulcrum admin API',
      version,
      description:
        'Reads are open. Writes need `Authorization: Bearer <token>` when the daemon has a token (admin.tokenFile or FULCRUM_ADMIN_TOKEN; required off loopback). Bodies are JSON, at most 1 MiB. Every change is validated whole and applied all or nothing: a rejected request changes nothing.',
    },
    paths: {
      '/healthz': {
        get: {
          summary: 'Liveness, the daemon version and the applied config version',
          responses: { '200': { description: 'running', ...json(ref('Health')) } },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          responses: { '200': { description: 'text exposition format', content: { 'text/plain': {} } } },
        },
      },
      '/openapi.json': {
        get: {
          summary: 'This document',
          responses: { '200': { description: 'OpenAPI 3.1', ...json({ type: 'object' }) } },
        },
      },
      '/api/v1/services': {
        get: {
          summary: 'Every service with its real servers, weights, health and counters (ipvsadm -Ln)',
          responses: {
            '200': { description: 'the services', ...json({ type: 'array', items: ref('ServiceStatus') }) },
          },
        },
        post: write(
          'Add a service',
          '201',
          applied('added; the new version and the service'),
          ref('ServiceInput'),
        ),
      },
      '/api/v1/services/{service}': {
        parameters: [serviceParam],
        get: {
          summary: 'One service',
          responses: { '200': { description: 'the service', ...json(ref('ServiceStatus')) }, ...errors(404) },
        },
        patch: write(
          'Change fields of a service (JSON merge patch: null removes a field; realServers replaces the list)',
          '200',
          applied('changed'),
          ref('ServicePatch'),
        ),
        delete: write('Remove a service', '200', applied('removed', false)),
      },
      '/api/v1/services/{service}/servers': {
        parameters: [serviceParam],
        post: write('Add a real server', '201', applied('added'), ref('RealServerInput')),
      },
      '/api/v1/services/{service}/servers/{server}': {
        parameters: [serviceParam, serverParam],
        patch: write(
          'Change a real server (weight, drain)',
          '200',
          applied('changed'),
          ref('RealServerPatch'),
        ),
        delete: write(
          'Remove a real server (its connections follow the service onFailure policy)',
          '200',
          applied('removed'),
        ),
      },
      '/api/v1/services/{service}/servers/{server}/weight': {
        parameters: [serviceParam, serverParam],
        put: write('Set the configured weight', '200', applied('set'), {
          type: 'object',
          required: ['weight'],
          properties: { weight: { type: 'integer', minimum: 0, maximum: 65535 } },
        }),
      },
      '/api/v1/services/{service}/servers/{server}/drain': {
        parameters: [serviceParam, serverParam],
        post: write(
          'Drain a real server: no new connections; existing ones end per the drain policy',
          '200',
          applied('draining'),
        ),
      },
      '/api/v1/connections': {
        get: {
          summary: 'The connection table (ipvsadm -Lnc), paged and filtered',
          parameters: [
            { name: 'service', in: 'query', schema: { type: 'string' } },
            { name: 'server', in: 'query', schema: { type: 'string' }, description: 'address:port' },
            {
              name: 'client',
              in: 'query',
              schema: { type: 'string' },
              description: 'address or address:port',
            },
            { name: 'templates', in: 'query', schema: { type: 'boolean', default: true } },
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 0, maximum: 10000, default: 100 },
            },
            { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 } },
          ],
          responses: {
            '200': { description: 'one page', ...json(ref('ConnectionPage')) },
            ...errors(400, 404),
          },
        },
      },
      '/api/v1/config': {
        get: {
          summary: 'The applied configuration, as given, and its version',
          responses: {
            '200': {
              description: 'the config',
              ...json({
                type: 'object',
                required: ['version', 'config'],
                properties: { version: { type: 'integer' }, config: { type: ['object', 'null'] } },
              }),
            },
          },
        },
      },
      '/api/v1/timeouts': {
        get: {
          summary: "The dataplane's idle timeouts in seconds (ipvsadm --timeout)",
          responses: { '200': { description: 'timeouts', ...json(ref('Timeouts')) } },
        },
      },
      '/api/v1/reload': {
        post: write(
          'Re-read the config file and apply the difference, as SIGHUP does',
          '200',
          applied('reloaded', false),
        ),
      },
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      responses: {
        Invalid: { description: 'invalid request or change (with every issue)', ...json(ref('Error')) },
        Unauthorized: { description: 'missing or wrong bearer token', ...json(ref('Error')) },
        NotFound: { description: 'no such service, server or endpoint', ...json(ref('Error')) },
        Conflict: { description: 'not possible in the current state', ...json(ref('Error')) },
        TooLarge: { description: 'body over 1 MiB', ...json(ref('Error')) },
        NotJson: { description: 'body not declared application/json', ...json(ref('Error')) },
      },
      schemas: {
        ServiceInput: service,
        RealServerInput: realServer,
        ServicePatch: mergePatchOf(service),
        RealServerPatch: mergePatchOf(realServer),
        Error: {
          type: 'object',
          required: ['code', 'message'],
          properties: {
            code: { type: 'string', examples: ['FULCRUM_CONFIG_INVALID', 'FULCRUM_SERVICE_NOT_FOUND'] },
            message: { type: 'string' },
            issues: {
              type: 'array',
              items: {
                type: 'object',
                required: ['path', 'message'],
                properties: {
                  path: { type: 'string' },
                  message: { type: 'string' },
                  code: { type: 'string' },
                },
              },
            },
          },
        },
        Health: {
          type: 'object',
          required: ['status', 'configVersion'],
          properties: {
            status: { const: 'ok' },
            version: { type: 'string' },
            configVersion: { type: 'integer' },
          },
        },
        ApplyResult: {
          type: 'object',
          required: ['version', 'added', 'updated', 'removed'],
          properties: {
            version: { type: 'integer', description: 'the config version after the change' },
            added: { type: 'array', items: { type: 'string' } },
            updated: { type: 'array', items: { type: 'string' } },
            removed: { type: 'array', items: { type: 'string' } },
          },
        },
        ChangeWithService: {
          allOf: [ref('ApplyResult'), { type: 'object', properties: { service: ref('ServiceStatus') } }],
        },
        Stats: stats,
        ServerStatus: {
          type: 'object',
          required: [
            'server',
            'weight',
            'configuredWeight',
            'health',
            'draining',
            'activeConns',
            'inactiveConns',
          ],
          properties: {
            server: { type: 'string' },
            address: { type: 'string' },
            port: { type: 'integer' },
            weight: { type: 'integer', description: 'effective weight' },
            configuredWeight: { type: 'integer' },
            health: { enum: ['up', 'down'] },
            healthReason: { type: 'string' },
            draining: { type: 'boolean' },
            sorry: { type: 'boolean' },
            inService: { type: 'boolean' },
            activeConns: { type: 'integer' },
            inactiveConns: { type: 'integer' },
            persistentConns: { type: 'integer' },
            stats: ref('Stats'),
          },
        },
        ServiceStatus: {
          type: 'object',
          required: ['name', 'protocol', 'virtual', 'scheduler', 'servers'],
          properties: {
            name: { type: 'string' },
            protocol: { enum: ['tcp', 'udp'] },
            virtual: { type: 'string' },
            scheduler: { type: 'string' },
            persistence: { type: 'integer', description: 'persistence timeout, seconds' },
            plan: { type: 'string' },
            version: { type: 'integer' },
            onFailure: { type: 'string' },
            quorum: { type: 'object' },
            maxConnections: { type: 'integer' },
            liveConns: { type: 'integer' },
            retiring: { type: 'boolean' },
            stats: ref('Stats'),
            servers: { type: 'array', items: ref('ServerStatus') },
          },
        },
        Connection: {
          type: 'object',
          required: ['protocol', 'state', 'expiresInMs', 'client', 'virtual', 'server', 'service'],
          properties: {
            protocol: { enum: ['TCP', 'UDP'] },
            state: { type: 'string' },
            expiresInMs: { type: 'integer' },
            client: { type: 'string' },
            virtual: { type: 'string' },
            server: { type: 'string' },
            service: { type: 'string' },
            local: { type: 'string' },
            template: { type: 'boolean' },
          },
        },
        ConnectionPage: {
          type: 'object',
          required: ['available', 'total', 'offset', 'limit', 'connections'],
          properties: {
            available: { type: 'boolean', description: 'false when the dataplane cannot list connections' },
            total: { type: 'integer' },
            offset: { type: 'integer' },
            limit: { type: 'integer' },
            connections: { type: 'array', items: ref('Connection') },
          },
        },
        Timeouts: {
          type: 'object',
          required: ['tcp', 'tcpFin', 'udp'],
          properties: { tcp: { type: 'integer' }, tcpFin: { type: 'integer' }, udp: { type: 'integer' } },
        },
      },
    },
  };
}
