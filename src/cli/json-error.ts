/**
 * Where a JSON text stops being JSON (pure): the offset, line and column of the first error and what
 * was expected there. JSON.parse's messages differ between runtimes (Bun's name no position), so doctor
 * finds the position itself. The grammar is RFC 8259's, as Go's encoding/json (libcni) reads it.
 */

export interface JsonError {
  offset: number;
  /** From 1. */
  line: number;
  /** From 1, in characters of that line. */
  column: number;
  message: string;
}

class Stop extends Error {
  constructor(readonly at: number, message: string) {
    super(message);
  }
}

function describeChar(text: string, i: number): string {
  if (i >= text.length) return 'the end of the file';
  const code = text.codePointAt(i)!;
  const name = code === 0xfeff ? ' (a byte order mark)' : '';
  return code < 0x21 || code > 0x7e ? `U+${code.toString(16).toUpperCase().padStart(4, '0')}${name}` : JSON.stringify(text[i]);
}

/** The first syntax error of `text`, or undefined when it is valid JSON. */
export function jsonError(text: string): JsonError | undefined {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (expected: string): never => {
    throw new Stop(i, `expected ${expected}, found ${describeChar(text, i)}`);
  };
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail('a value');
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) fail('a closing \'"\'');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail('a character (control characters must be escaped in a string)');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
            i += 2;
            fail('four hex digits after \\u');
          }
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else {
          i++;
          fail('an escape (\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\uXXXX)');
        }
      } else i++;
    }
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m || m[0] === '-' || m[0] === '') fail('a value');
    i += m![0].length;
  };
  const value = (depth: number): void => {
    if (depth > 1000) fail('less nesting');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(text[i] === '}' ? 'a key (no comma before "}")' : 'a key in double quotes');
        string();
        ws();
        if (text[i] !== ':') fail('":"');
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail('"," or "}"');
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] === ']') fail('a value (no comma before "]")');
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail('"," or "]"');
      }
    }
    if (c === '"') return string();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    fail('a value');
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail('the end of the file (one JSON value only)');
    return undefined;
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
    const before = text.slice(0, err.at);
    const line = before.split('\n').length;
    const column = err.at - (before.lastIndexOf('\n') + 1) + 1;
    return { offset: err.at, line, column, message: err.message };
  }
}
