/** One keepalived statement: its words, where it is, and its block if it opens one. */
export interface KeepalivedNode {
  words: string[];
  line: number;
  children?: KeepalivedNode[];
}

export interface ParseOptions {
  /** keepalived's `-i NAME`: lines prefixed `@NAME` apply, `@^NAME` do not. */
  instance?: string;
  /** Lines skipped because of their `@condition` (reported by the importer). */
  onConditional?: (line: number, condition: string) => void;
}

interface Token {
  text: string;
  line: number;
  /** The token starts a new line (statements end at line ends). */
  first: boolean;
}

/**
 * Splits keepalived.conf text into tokens: words, quoted strings (quotes removed), `{` and
 * `}` as tokens of their own; `!` or `#` starts a comment to the end of the line, as in
 * keepalived's parser. Lines with an `@condition` prefix are kept only when it matches.
 */
function tokenize(text: string, opts: ParseOptions): Token[] {
  const tokens: Token[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const lineNo = i + 1;
    let line = raw;
    const cond = /^\s*@(\^?)(\S+)\s+/.exec(line);
    if (cond) {
      const [, negate, name] = cond;
      const applies =
        opts.instance !== undefined && (negate ? name !== opts.instance : name === opts.instance);
      if (!applies) {
        opts.onConditional?.(lineNo, `@${negate}${name}`);
        return;
      }
      line = line.slice(cond[0].length);
    }
    let first = true;
    const re = /"([^"]*)"|([{}])|([!#].*$)|([^\s{}"]+)/g;
    for (let m = re.exec(line); m; m = re.exec(line)) {
      if (m[3] !== undefined) break; // a comment
      tokens.push({ text: m[1] ?? m[2] ?? m[4]!, line: lineNo, first });
      first = false;
    }
  });
  return tokens;
}

export class KeepalivedParseError extends Error {
  readonly line: number;
  readonly code = 'FULCRUM_IMPORT_PARSE';
  constructor(message: string, line: number) {
    super(`line ${line}: ${message}`);
    this.line = line;
  }
}

/** Parses keepalived.conf into a tree of statements; unbalanced braces are an error. */
export function parseKeepalived(text: string, opts: ParseOptions = {}): KeepalivedNode[] {
  const tokens = tokenize(text, opts);
  let pos = 0;
  const block = (depth: number, openLine: number): KeepalivedNode[] => {
    const nodes: KeepalivedNode[] = [];
    let current: KeepalivedNode | undefined;
    while (pos < tokens.length) {
      const t = tokens[pos++]!;
      if (t.text === '}') {
        if (depth === 0) throw new KeepalivedParseError('"}" without a matching "{"', t.line);
        return nodes;
      }
      if (t.text === '{') {
        // A block opens for the statement before it (even when "{" is on a line of its own).
        const owner = current ?? { words: [], line: t.line };
        if (!current) nodes.push(owner);
        owner.children = block(depth + 1, t.line);
        current = undefined;
        continue;
      }
      if (t.first || !current) {
        current = { words: [t.text], line: t.line };
        nodes.push(current);
      } else current.words.push(t.text);
    }
    if (depth > 0) throw new KeepalivedParseError('"{" is never closed', openLine);
    return nodes;
  };
  return block(0, 0);
}
