import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { formatEndpoint, type Endpoint, type Kernel } from '@fulcrum/kernel';

/**
 * The admin HTTP listener: Prometheus `/metrics`, `/healthz`, and the read side of the
 * JSON API (services with their servers and effective weights; the applied config).
 */
export class AdminServer {
  readonly #kernel: Kernel;
  #server?: Server;

  constructor(kernel: Kernel) {
    this.#kernel = kernel;
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
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body, null, 2));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return json(405, { code: 'FULCRUM_ADMIN_METHOD', message: `${req.method} is not allowed here` });
    try {
      switch (url.pathname) {
        case '/metrics': {
          const registry = this.#kernel.metrics.registry;
          res.writeHead(200, { 'content-type': registry.contentType });
          return void res.end(await registry.metrics());
        }
        case '/healthz':
          return json(200, { status: 'ok', configVersion: this.#kernel.configVersion });
        case '/api/v1/services':
          return json(200, this.#kernel.snapshots());
        case '/api/v1/config':
          return json(200, { version: this.#kernel.configVersion, config: this.#kernel.input ?? null });
        default:
          return json(404, { code: 'FULCRUM_ADMIN_NOT_FOUND', message: `no such endpoint: ${url.pathname}` });
      }
    } catch (e) {
      json(500, { code: 'FULCRUM_ADMIN_ERROR', message: (e as Error).message });
    }
  }
}
