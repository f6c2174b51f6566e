import { createHash, type Hash } from 'node:crypto';
import type { ProbeResult } from '@fulcrum/healthcheck-active';

export interface ResponseExpectations {
  /** Accepted status codes, as [low, high] ranges. */
  status: readonly (readonly [number, number])[];
  bodyRegex?: RegExp;
  /** MD5 of the body, lowercase hex, as keepalived's genhash prints it. */
  digest?: string;
  /** Largest head (status line and headers) read, in bytes. */
  maxHeadBytes: number;
  /** Largest body read when the body is checked, in bytes. */
  maxBodyBytes: number;
  /** The request was HEAD: the answer has no body whatever its Content-Length says. */
  head?: boolean;
}

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/;
const printable = (s: string) => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);

/**
 * Reads one HTTP/1.x response as it arrives and decides as early as it can: on the status
 * line when the body does not matter, else at the end of the body. Memory is bounded by
 * `maxHeadBytes` and, only when a regex needs the text, `maxBodyBytes`.
 */
export class ResponseReader {
  readonly #expect: ResponseExpectations;
  #head: Buffer[] = [];
  #headBytes = 0;
  #status = 0;
  #bodyStarted = false;
  #contentLength: number | undefined;
  #bodyBytes = 0;
  #body: Buffer[] = [];
  #md5: Hash | undefined;
  #verdict: ProbeResult | undefined;

  constructor(expect: ResponseExpectations) {
    this.#expect = expect;
  }

  get #needsBody(): boolean {
    return this.#expect.digest !== undefined || this.#expect.bodyRegex !== undefined;
  }

  /** Feeds bytes; returns the verdict once known. */
  push(chunk: Buffer): ProbeResult | undefined {
    if (!this.#bodyStarted) {
      this.#head.push(chunk);
      this.#headBytes += chunk.length;
      const all = Buffer.concat(this.#head);
      this.#head = [all];
      const end = all.indexOf('\r\n\r\n');
      const lineEnd = all.indexOf('\r\n');
      // the status line can be judged before the headers end
      if (lineEnd >= 0 || all.length >= 64) {
        const line = all.subarray(0, lineEnd >= 0 ? lineEnd : Math.min(all.length, 128)).toString('latin1');
        const m = STATUS_LINE.exec(line);
        if (!m) return { ok: false, reason: `malformed status line ${printable(line)}`, code: 'protocol' };
        this.#status = Number(m[1]);
        if (!this.#expect.status.some(([lo, hi]) => this.#status >= lo && this.#status <= hi))
          return { ok: false, reason: `status ${this.#status}`, code: 'status' };
        if (!this.#needsBody) return { ok: true, reason: `status ${this.#status}` };
      }
      if (end < 0) {
        if (this.#headBytes > this.#expect.maxHeadBytes)
          return {
            ok: false,
            reason: `response head exceeds ${this.#expect.maxHeadBytes} bytes`,
            code: 'protocol',
          };
        return undefined;
      }
      const headers = all.subarray(0, end).toString('latin1').split('\r\n').slice(1);
      for (const h of headers) {
        const m = /^content-length:\s*(\d+)\s*$/i.exec(h);
        if (m) this.#contentLength = Number(m[1]);
      }
      if (this.#expect.head || this.#status === 204 || this.#status === 304) this.#contentLength = 0;
      this.#bodyStarted = true;
      this.#head = [];
      this.#md5 = createHash('md5');
      return this.#pushBody(all.subarray(end + 4));
    }
    return this.#pushBody(chunk);
  }

  /** The server closed the connection: the body, if any, is complete. */
  end(): ProbeResult {
    if (!this.#bodyStarted) {
      const got = Buffer.concat(this.#head).toString('latin1');
      return got.length === 0
        ? { ok: false, reason: 'connection closed without a response', code: 'protocol' }
        : { ok: false, reason: `connection closed in the response head ${printable(got)}`, code: 'protocol' };
    }
    if (this.#contentLength !== undefined && this.#bodyBytes < this.#contentLength)
      return {
        ok: false,
        reason: `body ended after ${this.#bodyBytes} of ${this.#contentLength} bytes`,
        code: 'protocol',
      };
    return this.#judgeBody();
  }

  #pushBody(chunk: Buffer): ProbeResult | undefined {
    if (this.#contentLength !== undefined) chunk = chunk.subarray(0, this.#contentLength - this.#bodyBytes);
    this.#bodyBytes += chunk.length;
    if (this.#bodyBytes > this.#expect.maxBodyBytes)
      return { ok: false, reason: `body exceeds ${this.#expect.maxBodyBytes} bytes`, code: 'body' };
    this.#md5!.update(chunk);
    if (this.#expect.bodyRegex) this.#body.push(chunk);
    if (this.#contentLength !== undefined && this.#bodyBytes >= this.#contentLength) return this.#judgeBody();
    return undefined;
  }

  #judgeBody(): ProbeResult {
    this.#verdict ??= this.#judge();
    return this.#verdict;
  }

  #judge(): ProbeResult {
    const { digest, bodyRegex } = this.#expect;
    const md5 = this.#md5!.digest('hex');
    if (digest !== undefined && md5 !== digest)
      return { ok: false, reason: `status ${this.#status}, digest ${md5} is not ${digest}`, code: 'digest' };
    if (bodyRegex && !bodyRegex.test(Buffer.concat(this.#body).toString('utf8')))
      return { ok: false, reason: `status ${this.#status}, body does not match ${bodyRegex}`, code: 'body' };
    return { ok: true, reason: `status ${this.#status}${digest ? `, digest ${md5}` : ''}` };
  }
}
