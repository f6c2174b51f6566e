import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ConfigError,
  ErrorCodes,
  formatEndpoint,
  formatIssue,
  isFulcrumError,
  parseEndpoint,
} from '@fulcrum/kernel';

/** Request bodies larger than this are refused with 413. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Past this the rest of a refused body is not even read: the connection is closed. */
const DISCARD_LIMIT_BYTES = 64 * MAX_BODY_BYTES;

/** An error the admin API answers with: its status, and `{ code, message, issues? }` as the body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface ErrorBody {
  code: string;
  message: string;
  issues?: { path: string; message: string; code?: string }[];
}

const STATUS_BY_CODE: Record<string, number> = {
  [ErrorCodes.SERVICE_NOT_FOUND]: 404,
  [ErrorCodes.SERVER_NOT_FOUND]: 404,
  [ErrorCodes.STATE]: 409,
  [ErrorCodes.CAPABILITY]: 400,
};

/**
 * A run-time change is checked as an edit of the config file, so the kernel names the file
 * even though the problem is in the request; only a located issue (a reload) keeps it.
 */
function configMessage(e: ConfigError): string {
  const lines = e.issues.map((i) => formatIssue(i.line === undefined ? { ...i, file: undefined } : i));
  return lines.length === 1
    ? lines[0]!
    : `${lines.length} problems:\n${lines.map((l) => `  - ${l}`).join('\n')}`;
}

/** Maps anything a handler throws to a status and the JSON error body. */
export function errorResponse(e: unknown): {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
} {
  if (e instanceof HttpError)
    return { status: e.status, body: { code: e.code, message: e.message }, headers: e.headers };
  if (e instanceof ConfigError) {
    return {
      status: 400,
      headers: {},
      body: {
        code: e.code,
        message: configMessage(e),
        issues: e.issues.map((i) => ({
          path: i.path,
          message: i.message,
          ...(i.code ? { code: i.code } : {}),
        })),
      },
    };
  }
  if (isFulcrumError(e))
    return { status: STATUS_BY_CODE[e.code] ?? 500, headers: {}, body: { code: e.code, message: e.message } };
  return {
    status: 500,
    headers: {},
    body: { code: 'FULCRUM_ADMIN_ERROR', message: (e as Error)?.message ?? String(e) },
  };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/**
 * Reads a JSON request body: none at all is `undefined`; anything else must be declared
 * `application/json`, parse, and fit in MAX_BODY_BYTES. A refused body is still read to its
 * end (up to a bound) so that the client gets the answer rather than a reset connection.
 */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (!chunked && (Number.isNaN(declared) || declared === 0)) {
    req.resume();
    return undefined;
  }
  if (declared > DISCARD_LIMIT_BYTES) {
    req.destroy();
    throw new HttpError(413, 'FULCRUM_ADMIN_TOO_LARGE', `the body is over ${MAX_BODY_BYTES} bytes`, {
      connection: 'close',
    });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > DISCARD_LIMIT_BYTES) {
      req.destroy();
      break;
    }
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  if (size > MAX_BODY_BYTES)
    throw new HttpError(413, 'FULCRUM_ADMIN_TOO_LARGE', `the body is over ${MAX_BODY_BYTES} bytes`, {
      connection: 'close',
    });
  const type = String(req.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  if (type !== 'application/json' && !type.endsWith('+json'))
    throw new HttpError(
      415,
      'FULCRUM_ADMIN_MEDIA_TYPE',
      `the body must be JSON with content-type application/json, not "${type || 'none'}"`,
    );
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new HttpError(400, 'FULCRUM_ADMIN_BAD_JSON', `the body is not valid JSON: ${(e as Error).message}`);
  }
}

/** The body as a JSON object, or a 400 that says what was expected. */
export function objectBody(body: unknown, what: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(400, 'FULCRUM_ADMIN_BAD_REQUEST', `the body must be a JSON object: ${what}`);
  return body as Record<string, unknown>;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Checks `Authorization: Bearer <token>` in constant time (both sides hashed to equal length first). */
export function checkBearer(req: IncomingMessage, token: string): void {
  const header = req.headers.authorization ?? '';
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  const challenge = { 'www-authenticate': 'Bearer realm="fulcrum-admin"' };
  if (!m)
    throw new HttpError(
      401,
      'FULCRUM_ADMIN_UNAUTHORIZED',
      'this request changes state: send Authorization: Bearer <token>',
      challenge,
    );
  if (!timingSafeEqual(digest(m[1]!), digest(token)))
    throw new HttpError(401, 'FULCRUM_ADMIN_UNAUTHORIZED', 'the bearer token is wrong', challenge);
}

/** `server` named as address:port, normalised the way the kernel keys servers. */
export function serverParam(text: string): string {
  const e = parseEndpoint(text);
  if (!e)
    throw new HttpError(
      400,
      'FULCRUM_ADMIN_BAD_REQUEST',
      `"${text}" is not a server address and port, such as 10.0.0.1:80 or [::1]:80`,
    );
  return formatEndpoint(e);
}
