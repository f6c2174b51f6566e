/** A failure `fulcrum adm` reports: the API's code and message, or why the API could not be reached. */
export class AdmError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

interface ErrorBody {
  code?: string;
  message?: string;
}

/** A small JSON client for the admin API. */
export class AdminClient {
  readonly base: string;
  readonly #token: string | undefined;

  constructor(address: string, token?: string) {
    this.base = `http://${address}`;
    this.#token = token;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: {
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(this.#token !== undefined ? { authorization: `Bearer ${this.#token}` } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new AdmError(
        `cannot reach the admin API at ${this.base}: ${cause?.code ?? cause?.message ?? (e as Error).message} (is "fulcrum run" running with admin.listen there? set --admin HOST:PORT or FULCRUM_ADMIN)`,
        'FULCRUM_ADM_UNREACHABLE',
      );
    }
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      throw new AdmError(
        `${this.base}${path} answered ${res.status} with something that is not JSON`,
        'FULCRUM_ADM_PROTOCOL',
      );
    }
    if (!res.ok) {
      const err = (data ?? {}) as ErrorBody;
      // A ConfigError's message already lists every issue.
      throw new AdmError(err.message ?? `HTTP ${res.status}`, err.code ?? `HTTP_${res.status}`);
    }
    return data as T;
  }
}
