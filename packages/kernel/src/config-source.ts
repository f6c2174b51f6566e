import { readFile } from 'node:fs/promises';
import { isMap, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError, ErrorCodes, FulcrumError } from './errors.js';
import type { PathSegment } from './validation.js';

/** A configuration as read, and a way back from a path to where it was written. */
export interface ConfigSource {
  /** The file it came from, for messages. */
  readonly file?: string;
  readonly data: unknown;
  /** Line and column (1-based) of the value at `path`, or of its nearest written ancestor. */
  locate(path: readonly PathSegment[]): { line: number; column: number } | undefined;
}

const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** Parses YAML (JSON is YAML 1.2 too); duplicate keys and alias bombs are errors. */
export function parseConfigText(text: string, file?: string): ConfigSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return {
          path: '',
          message: e.message.split('\n')[0]!,
          code: ErrorCodes.CONFIG_PARSE,
          ...(file ? { file } : {}),
          line: pos.line,
          column: pos.col,
        };
      }),
      ErrorCodes.CONFIG_PARSE,
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    throw new ConfigError(
      [{ path: '', message: (e as Error).message, code: ErrorCodes.CONFIG_PARSE, ...(file ? { file } : {}) }],
      ErrorCodes.CONFIG_PARSE,
    );
  }
  return { ...(file ? { file } : {}), data: data ?? {}, locate: (path) => locate(doc, lineCounter, path) };
}

export async function readConfigFile(file: string): Promise<ConfigSource> {
  let text: string;
  try {
    const buf = await readFile(file);
    if (buf.length > MAX_CONFIG_BYTES) throw new Error(`file is larger than ${MAX_CONFIG_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (e) {
    throw new FulcrumError(ErrorCodes.CONFIG_READ, `cannot read config ${file}: ${(e as Error).message}`, {
      cause: e,
      details: { file },
    });
  }
  return parseConfigText(text, file);
}

/** A configuration given as an object (the library API, the admin API): no positions. */
export function objectSource(data: unknown, file?: string): ConfigSource {
  return { ...(file ? { file } : {}), data, locate: () => undefined };
}

function locate(
  doc: Document,
  lc: LineCounter,
  path: readonly PathSegment[],
): { line: number; column: number } | undefined {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0];
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === seg);
      if (!pair) break;
      // Point at the key for a map entry: that is where an operator looks.
      offset = (pair.key as Node | null)?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  if (offset === undefined) return undefined;
  const pos = lc.linePos(offset);
  return { line: pos.line, column: pos.col };
}
