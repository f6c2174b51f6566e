import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  formatEndpoint,
  type ApplyResult,
  type Endpoint,
  type FulcrumEventMap,
  type Kernel,
} from '@fulcrum/kernel';
import { checkBearer, errorResponse, HttpError, readJson, sendJson, serverParam } from './http.js';
import { openApiDocument } from './openapi.js';
import { allServices, connections, dataplaneServices, serviceView, timeouts } from './status.js';
import { writeRoutes } from './writes.js';

export interface AdminOptions {
  /** Bearer token every write request must carry; none means writes are open (loopback only). */
  token?: string;
  /** Re-reads and applies the config file, as SIGHUP does. */
  reload?: () => Promise<ApplyResult>;
  /** The daemon's version, reported by /healthz. */
  version?: string;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  pattern: RegExp;
  write: boolean;
  handle: (ctx: RouteContext) => Promise<[number, unknown]> | [number, unknown];
}

export interface RouteContext {
  kernel: Kernel;
  params: string[];
  query: URLSearchParams;
  body: () => Promise<unknown>;
  options: AdminOptions;
  reasons: ReadonlyMap<string, string>;
}

/**
 * The admin HTTP listener: Prometheus `/metrics`, `/healthz`, `/openapi.json` and the JSON
 * API under `/api/v1` (reads are open; writes need the bearer token when one is set). Every
 * write goes through the kernel's all-or-nothing change path, so a rejected request leaves
 * the running state and the config version untouched.
 */
export class AdminServer {
  readonly #kernel: Kernel;
  readonly #options: AdminOptions;
  readonly #routes: Route[];
  readonly #reasons = new Map<string, string>();
  // The last verdict's reason per server, worded as the kernel's aggregate ("http: status 503").
  readonly #onVerdict = (e: FulcrumEventMap['server:health']) =>
    this.#reasons.set(`${e.service}\0${e.server}`, `${e.checker}: ${e.reason}`);
  readonly #onState = (e: FulcrumEventMap['server:state']) =>
    this.#reasons.set(`${e.service}\0${e.server}`, e.reason);
  readonly #onRemoved = (e: { service: string; server?: string }) => {
    for (const key of this.#reasons.keys())
      if (key === `${e.service}\0${e.server}` || (e.server === undefined && key.startsWith(`${e.service}\0`)))
        this.#reasons.delete(key);
  };
  #server?: Server;

  constructor(kernel: Kernel, options: AdminOptions = {}) {
    this.#kernel = kernel;
    this.#options = options;
    this.#routes = [...readRoutes, ...writeRoutes];
    kernel.events.on('server:health', this.#onVerdict);
    kernel.events.on('server:state', this.#onState);
    kernel.events.on('server:removed', this.#onRemoved);
    kernel.events.on('service:removed', this.#onRemoved);
  }

  async listen(at: Endpoint): Promise<void> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
  }

  address(): string | undefined {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? formatEndpoint({ address: a.address, port: a.port }) : undefined;
  }

  async close(): Promise<void> {
    this.#kernel.events.off('server:health', this.#onVerdict);
    this.#kernel.events.off('server:state', this.#onState);
    this.#kernel.events.off('server:removed', this.#onRemoved);
    this.#kernel.events.off('service:removed', this.#onRemoved);
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://admin');
      if (url.pathname === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
        req.resume();
        const registry = this.#kernel.metrics.registry;
        res.writeHead(200, { 'content-type': registry.contentType });
        return void res.end(await registry.metrics());
      }
      const matching = this.#routes
        .map((r) => ({ r, m: r.pattern.exec(url.pathname) }))
        .filter((x) => x.m !== null);
      if (matching.length === 0 && url.pathname !== '/metrics')
        throw new HttpError(404, 'FULCRUM_ADMIN_NOT_FOUND', `no such endpoint: ${url.pathname}`);
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      const hit = matching.find((x) => x.r.method === method);
      if (!hit) {
        const allow = [...new Set(matching.map((x) => x.r.method))];
        if (url.pathname === '/metrics') allow.push('GET');
        throw new HttpError(
          405,
          'FULCRUM_ADMIN_METHOD',
          `${req.method} is not allowed on ${url.pathname} (allowed: ${allow.join(', ')})`,
          { allow: allow.join(', ') },
        );
      }
      if (hit.r.write && this.#options.token !== undefined) checkBearer(req, this.#options.token);
      let body: Promise<unknown> | undefined;
      const [status, payload] = await hit.r.handle({
        kernel: this.#kernel,
        params: hit.m!.slice(1).map((p) => decodeURIComponent(p)),
        query: url.searchParams,
        body: () => (body ??= readJson(req)),
        options: this.#options,
        reasons: this.#reasons,
      });
      if (!body) req.resume();
      sendJson(res, status, payload);
    } catch (e) {
      const { status, body, headers } = errorResponse(e);
      req.resume();
      sendJson(res, status, body, headers);
    }
  }
}

const SERVICE = '([^/]+)';

function intParam(query: URLSearchParams, name: string, fallback: number, max: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) > max)
    throw new HttpError(
      400,
      'FULCRUM_ADMIN_BAD_REQUEST',
      `${name} must be an integer from 0 to ${max}, not "${raw}"`,
    );
  return Number(raw);
}

export const MAX_PAGE = 10_000;

const readRoutes: Route[] = [
  {
    method: 'GET',
    pattern: /^\/healthz$/,
    write: false,
    handle: ({ kernel, options }) => [
      200,
      { status: 'ok', version: options.version, configVersion: kernel.configVersion },
    ],
  },
  {
    method: 'GET',
    pattern: /^\/openapi\.json$/,
    write: false,
    handle: ({ options }) => [200, openApiDocument(options.version ?? '0.0.0')],
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/services$/,
    write: false,
    handle: ({ kernel, reasons }) => [200, allServices(kernel, reasons)],
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/api/v1/services/${SERVICE}$`),
    write: false,
    handle: ({ kernel, params, reasons }) => {
      const snap = kernel.snapshot(params[0]!);
      return [200, serviceView(kernel, snap, dataplaneServices(kernel).get(snap.name), reasons)];
    },
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/connections$/,
    write: false,
    handle: async ({ kernel, query }) => {
      const limit = intParam(query, 'limit', 100, MAX_PAGE);
      const offset = intParam(query, 'offset', 0, Number.MAX_SAFE_INTEGER);
      const service = query.get('service') ?? undefined;
      if (service !== undefined) kernel.snapshot(service);
      const server = query.has('server') ? serverParam(query.get('server')!) : undefined;
      const templates = query.get('templates');
      if (templates !== null && templates !== 'true' && templates !== 'false')
        throw new HttpError(400, 'FULCRUM_ADMIN_BAD_REQUEST', 'templates must be true or false');
      const rows = await connections(kernel, {
        ...(service !== undefined ? { service } : {}),
        ...(server !== undefined ? { server } : {}),
        ...(query.has('client') ? { client: query.get('client')! } : {}),
        templates: templates !== 'false',
      });
      return [
        200,
        {
          available: rows !== undefined,
          total: rows?.length ?? 0,
          offset,
          limit,
          connections: (rows ?? []).slice(offset, offset + limit),
        },
      ];
    },
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/config$/,
    write: false,
    handle: ({ kernel }) => [200, { version: kernel.configVersion, config: kernel.input ?? null }],
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/timeouts$/,
    write: false,
    handle: ({ kernel }) => [200, timeouts(kernel) ?? { tcp: 0, tcpFin: 0, udp: 0 }],
  },
];
