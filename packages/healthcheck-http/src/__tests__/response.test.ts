import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ResponseReader, parseStatusRanges, type ResponseExpectations } from '../index.js';
import type { ProbeResult } from '@fulcrum/healthcheck-active';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const base: ResponseExpectations = {
  status: [[200, 299]],
  maxHeadBytes: 1024,
  maxBodyBytes: 100,
};

/** Feeds `wire` in pieces of `size` bytes; `eof` closes the connection after the last one. */
function read(
  expect: Partial<ResponseExpectations>,
  wire: string,
  size: number,
  eof = true,
): ProbeResult | undefined {
  const r = new ResponseReader({ ...base, ...expect });
  const bytes = Buffer.from(wire, 'latin1');
  for (let i = 0; i < bytes.length; i += size) {
    const v = r.push(bytes.subarray(i, i + size));
    if (v) return v;
  }
  return eof ? r.end() : undefined;
}

const OK_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n';
const cases: [string, Partial<ResponseExpectations>, string, boolean, Partial<ProbeResult> | undefined][] = [
  [
    '2xx, body ignored: decided on the status line',
    {},
    'HTTP/1.0 204 No Content\r\n',
    false,
    { ok: true, reason: 'status 204' },
  ],
  ['no reason phrase', {}, 'HTTP/1.1 200\r\n\r\n', true, { ok: true, reason: 'status 200' }],
  [
    'status outside the ranges',
    {},
    'HTTP/1.1 503 Service Unavailable\r\n\r\n',
    true,
    { ok: false, code: 'status', reason: 'status 503' },
  ],
  [
    'a listed single code',
    { status: parseStatusRanges([404]) },
    'HTTP/1.1 404 Not Found\r\n\r\n',
    true,
    { ok: true },
  ],
  ['HTTP/2 preface is not HTTP/1.x', {}, 'HTTP/2 200\r\n\r\n', true, { ok: false, code: 'protocol' }],
  [
    'lowercase http',
    {},
    'http/1.1 200 OK\r\n\r\n',
    true,
    { ok: false, reason: 'malformed status line "http/1.1 200 OK"' },
  ],
  [
    'status line with three-digit garbage',
    {},
    'HTTP/1.1 2000 OK\r\n\r\n',
    true,
    { ok: false, code: 'protocol' },
  ],
  ['nothing at all', {}, '', true, { ok: false, reason: 'connection closed without a response' }],
  ['head cut short', { digest: md5('') }, 'HTTP/1.1 200 OK\r\nX: y', true, { ok: false, code: 'protocol' }],
  [
    'digest over a content-length body',
    { digest: md5('hello') },
    `${OK_HEAD}Content-Length: 5\r\n\r\nhello`,
    false,
    { ok: true, reason: `status 200, digest ${md5('hello')}` },
  ],
  [
    'bytes after content-length are not hashed',
    { digest: md5('hello') },
    `${OK_HEAD}Content-Length: 5\r\n\r\nhelloEXTRA`,
    false,
    { ok: true },
  ],
  [
    'digest of a body read to EOF',
    { digest: md5('a\r\nb\r\n\r\nc') },
    `${OK_HEAD}\r\na\r\nb\r\n\r\nc`,
    true,
    { ok: true },
  ],
  ['wrong digest', { digest: md5('x') }, `${OK_HEAD}\r\ny`, true, { ok: false, code: 'digest' }],
  [
    'HEAD: no body whatever Content-Length says',
    { head: true, digest: md5('') },
    `${OK_HEAD}Content-Length: 5\r\n\r\n`,
    false,
    { ok: true },
  ],
  [
    '204 has no body',
    { digest: md5('') },
    'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n',
    false,
    { ok: true },
  ],
  ['regex over the body', { bodyRegex: /"ok":true/ }, `${OK_HEAD}\r\n{"ok":true}`, true, { ok: true }],
  [
    'body too large',
    { digest: md5('') },
    `${OK_HEAD}\r\n${'z'.repeat(101)}`,
    false,
    { ok: false, reason: 'body exceeds 100 bytes' },
  ],
  [
    'head too large',
    { digest: md5('') },
    `HTTP/1.1 200 OK\r\n${'X-A: b\r\n'.repeat(200)}`,
    false,
    { ok: false, reason: 'response head exceeds 1024 bytes' },
  ],
];

describe('ResponseReader: one verdict whatever the pieces the bytes arrive in', () => {
  for (const [name, expect_, wire, eof, verdict] of cases) {
    it.each([1, 3, 7, 64, 100_000])(`${name} (pieces of %i bytes)`, (size) => {
      const v = read(expect_, wire, size, eof);
      if (verdict === undefined) expect(v).toBeUndefined();
      else expect(v).toMatchObject(verdict);
    });
  }

  it('end() after a verdict from the body gives the same verdict (no second digest)', () => {
    const r = new ResponseReader({ ...base, digest: md5('hi') });
    expect(r.push(Buffer.from(`${OK_HEAD}Content-Length: 2\r\n\r\nhi`))).toMatchObject({ ok: true });
    expect(r.end()).toMatchObject({ ok: true });
  });
});
