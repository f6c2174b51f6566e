import { V1_MAX_LENGTH, V1_PREFIX, V2_FIXED_LENGTH, V2_MAX_LENGTH } from './constants.js';
import { ProxyProtocolError, ProxyProtocolErrorCodes as Codes } from './errors.js';
import type { ProxyHeader } from './types.js';
import { decodeV1 } from './v1.js';
import { checkV2Byte, decodeV2 } from './v2.js';

export interface ParserOptions {
  /** Versions this receiver accepts; default both (the specification recommends v2 receivers also read v1). */
  versions?: readonly (1 | 2)[];
  /** Largest v2 header accepted, in bytes (16 + length field); default and maximum 65551. */
  maxV2Length?: number;
}

export type ParseResult =
  | { done: false }
  | {
      done: true;
      header: ProxyHeader;
      /** The bytes after the header in the chunk that completed it: a view, not a copy. */
      rest: Buffer;
    };

const NEED_MORE: ParseResult = Object.freeze({ done: false });

const preview = (bytes: Uint8Array) =>
  JSON.stringify(Buffer.from(bytes.subarray(0, 16)).toString('latin1')).slice(1, -1);

/**
 * Reads a PROXY protocol header from bytes as they arrive, in chunks of any size. Every byte
 * is checked as it comes, so a client that sends `GET /` is refused at the first byte, and a
 * header is cut at the specification's limits (107 bytes for v1, 16 + 65535 for v2). Holds
 * at most the header in memory; the payload after it is handed back untouched.
 */
export class ProxyProtocolParser {
  readonly #versions: ReadonlySet<number>;
  readonly #maxV2: number;
  #buf: Buffer = Buffer.allocUnsafe(V1_MAX_LENGTH);
  #n = 0;
  #kind: 0 | 1 | 2 = 0;
  #total = 0;
  #result: (ParseResult & { done: true }) | undefined;
  #error: ProxyProtocolError | undefined;

  constructor(options: ParserOptions = {}) {
    this.#versions = new Set(options.versions ?? [1, 2]);
    this.#maxV2 = Math.min(options.maxV2Length ?? V2_MAX_LENGTH, V2_MAX_LENGTH);
  }

  /** Bytes of a header received so far (0 before the first push and after completion). */
  get buffered(): number {
    return this.#result ? 0 : this.#n;
  }

  get done(): boolean {
    return this.#result !== undefined;
  }

  /**
   * Feeds the next chunk. Returns `{ done: false }` while the header is incomplete, then the
   * header and what followed it in this chunk. Throws a ProxyProtocolError as soon as the
   * bytes cannot be a valid header; the parser then stays failed.
   */
  push(chunk: Uint8Array): ParseResult {
    if (this.#error) throw this.#error;
    if (this.#result)
      return {
        done: true,
        header: this.#result.header,
        rest: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength),
      };
    try {
      return this.#push(chunk);
    } catch (e) {
      this.#error = e as ProxyProtocolError;
      throw e;
    }
  }

  /** The stream ended: throws FULCRUM_PROXY_PROTOCOL_TRUNCATED if a header had begun but not finished. */
  end(): void {
    if (this.#error) throw this.#error;
    if (!this.#result && this.#n > 0) {
      this.#error = new ProxyProtocolError(
        Codes.TRUNCATED,
        `the connection ended after ${this.#n} bytes of an incomplete PROXY v${this.#kind || '?'} header`,
        { received: this.#n },
      );
      throw this.#error;
    }
  }

  #push(chunk: Uint8Array): ParseResult {
    let i = 0;
    if (this.#kind === 0 && chunk.length > 0) {
      const first = chunk[0]!;
      if (first === V1_PREFIX[0]) this.#kind = 1;
      else if (first === 0x0d) this.#kind = 2;
      else
        throw new ProxyProtocolError(
          Codes.INVALID,
          `not a PROXY protocol header: the connection starts with "${preview(chunk)}"; is something connecting directly instead of through the proxy?`,
          { start: preview(chunk) },
        );
    }
    if (this.#kind === 1) {
      for (; i < chunk.length; i++) {
        const b = chunk[i]!;
        const at = this.#n;
        this.#buf[this.#n++] = b;
        if (at < V1_PREFIX.length) {
          if (b !== V1_PREFIX[at])
            throw new ProxyProtocolError(
              Codes.INVALID,
              `not a PROXY protocol header: the connection starts with "${preview(this.#buf.subarray(0, this.#n))}"`,
              { start: preview(this.#buf.subarray(0, this.#n)) },
            );
          if (at === V1_PREFIX.length - 1) this.#checkVersion(1);
          continue;
        }
        if (this.#buf[at - 1] === 0x0d) {
          if (b !== 0x0a) throw this.#v1Malformed('a CR not followed by LF');
          return this.#finish(decodeV1(this.#buf.subarray(0, this.#n)), chunk, i + 1);
        }
        if (b === 0x0a) throw this.#v1Malformed('a LF without CR before it');
        if (b !== 0x0d && (b < 0x20 || b > 0x7e) && !this.#v1Unknown())
          throw this.#v1Malformed(`byte 0x${b.toString(16).padStart(2, '0')} in the line`);
        if (this.#n >= V1_MAX_LENGTH) {
          throw new ProxyProtocolError(
            Codes.TOO_LONG,
            `PROXY v1 header has no CRLF in its first ${V1_MAX_LENGTH} bytes`,
            { version: 1, limit: V1_MAX_LENGTH },
          );
        }
      }
      return NEED_MORE;
    }
    // v2: check the fixed 16 bytes one by one, then copy the rest in bulk.
    for (; i < chunk.length && this.#n < V2_FIXED_LENGTH; i++) {
      this.#buf[this.#n] = chunk[i]!;
      checkV2Byte(this.#buf, this.#n++);
      if (this.#n === 13) this.#checkVersion(2);
      if (this.#n === V2_FIXED_LENGTH) {
        this.#total = V2_FIXED_LENGTH + this.#buf.readUInt16BE(14);
        if (this.#total > this.#maxV2) {
          throw new ProxyProtocolError(
            Codes.TOO_LONG,
            `PROXY v2 header announces ${this.#total} bytes; this receiver accepts at most ${this.#maxV2}`,
            { version: 2, length: this.#total, limit: this.#maxV2 },
          );
        }
        if (this.#total > this.#buf.length) {
          const grown = Buffer.allocUnsafe(this.#total);
          this.#buf.copy(grown, 0, 0, this.#n);
          this.#buf = grown;
        }
      }
    }
    if (this.#n < V2_FIXED_LENGTH) return NEED_MORE;
    const take = Math.min(this.#total - this.#n, chunk.length - i);
    this.#buf.set(chunk.subarray(i, i + take), this.#n);
    this.#n += take;
    i += take;
    if (this.#n < this.#total) return NEED_MORE;
    return this.#finish(decodeV2(this.#buf.subarray(0, this.#total)), chunk, i);
  }

  #checkVersion(v: 1 | 2): void {
    if (!this.#versions.has(v)) {
      throw new ProxyProtocolError(
        Codes.VERSION,
        `a PROXY v${v} header arrived, but this receiver accepts only v${[...this.#versions].join(' and v')}`,
        { version: v },
      );
    }
  }

  #v1Unknown(): boolean {
    return this.#n > 13 && this.#buf.subarray(6, 13).toString('latin1') === 'UNKNOWN';
  }

  #v1Malformed(what: string): ProxyProtocolError {
    return new ProxyProtocolError(Codes.MALFORMED, `malformed PROXY v1 header: ${what}`, {
      version: 1,
      line: this.#buf.subarray(0, this.#n).toString('latin1'),
    });
  }

  #finish(header: ProxyHeader, chunk: Uint8Array, at: number): ParseResult {
    const rest = Buffer.from(chunk.buffer, chunk.byteOffset + at, chunk.byteLength - at);
    this.#result = { done: true, header, rest };
    this.#buf = Buffer.alloc(0);
    return this.#result;
  }
}

/**
 * Decodes the header at the start of `data` (a received buffer, or one UDP datagram, which
 * must hold the whole header). Throws FULCRUM_PROXY_PROTOCOL_TRUNCATED when it is incomplete.
 */
export function decodeProxyHeader(
  data: Uint8Array,
  options?: ParserOptions,
): { header: ProxyHeader; rest: Buffer } {
  const parser = new ProxyProtocolParser(options);
  const r = parser.push(data);
  if (!r.done) {
    throw new ProxyProtocolError(Codes.TRUNCATED, `only ${data.length} bytes of an incomplete PROXY header`, {
      received: data.length,
    });
  }
  return { header: r.header, rest: r.rest };
}
