/**
 * JSON parser over one message's tokens, QEMU's qobject/json-parser.c: the same
 * recursive descent, the same first-error-wins rule and the same error texts.
 */
import { Tok } from './lexer.js';
import { isValidCodepoint, modUtf8Codepoint } from './utf8.js';
import type { QDict, QObject } from './qobject.js';

export interface Token {
  type: number;
  text: Uint8Array;
}

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

class ParseError extends Error {}

/** Parses one value from `tokens`. Throws nothing: returns the value or the error text. */
export function parseTokens(tokens: Token[]): { value: QObject } | { error: string } {
  const p = new Parser(tokens);
  try {
    return { value: p.parseValue() };
  } catch (e) {
    if (e instanceof ParseError) return { error: 'JSON parse error, ' + e.message };
    throw e;
  }
}

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private pop(): Token | undefined {
    return this.tokens[this.pos++];
  }

  private fail(msg: string): never {
    throw new ParseError(msg);
  }

  parseValue(): QObject {
    const t = this.peek();
    if (!t) this.fail('premature EOI');
    switch (t.type) {
      case Tok.LCurly: return this.parseObject();
      case Tok.LSquare: return this.parseArray();
      case Tok.Integer:
      case Tok.Float:
      case Tok.String:
        this.pos++;
        return parseLiteral(t);
      case Tok.Keyword:
        this.pos++;
        return parseKeyword(t);
      default:
        return this.fail('expecting value');
    }
  }

  private parseObject(): QDict {
    this.pop();
    const dict: QDict = new Map();
    const t = this.peek();
    if (!t) this.fail('premature EOI');
    if (t.type === Tok.RCurly) {
      this.pop();
      return dict;
    }
    this.parsePair(dict);
    for (;;) {
      const sep = this.pop();
      if (!sep) this.fail('premature EOI');
      if (sep.type === Tok.RCurly) return dict;
      if (sep.type !== Tok.Comma) this.fail('expected separator in dict');
      this.parsePair(dict);
    }
  }

  private parsePair(dict: QDict): void {
    if (!this.peek()) this.fail('premature EOI');
    const key = this.parseValue();
    if (typeof key !== 'string') this.fail('key is not a string in object');
    const colon = this.pop();
    if (!colon) this.fail('premature EOI');
    if (colon.type !== Tok.Colon) this.fail('missing : in object pair');
    const value = this.parseValue();
    if (dict.has(key)) this.fail('duplicate key');
    dict.set(key, value);
  }

  private parseArray(): QObject[] {
    this.pop();
    const list: QObject[] = [];
    const t = this.peek();
    if (!t) this.fail('premature EOI');
    if (t.type === Tok.RSquare) {
      this.pop();
      return list;
    }
    list.push(this.parseValue());
    for (;;) {
      const sep = this.pop();
      if (!sep) this.fail('premature EOI');
      if (sep.type === Tok.RSquare) return list;
      if (sep.type !== Tok.Comma) this.fail('expected separator in list');
      list.push(this.parseValue());
    }
  }
}

function ascii(text: Uint8Array): string {
  return Buffer.from(text.buffer, text.byteOffset, text.length).toString('latin1');
}

function parseKeyword(t: Token): QObject {
  const word = ascii(t.text);
  if (word === 'true') return true;
  if (word === 'false') return false;
  if (word === 'null') return null;
  throw new ParseError(`invalid keyword '${word}'`);
}

function parseLiteral(t: Token): QObject {
  if (t.type === Tok.String) return parseString(t.text);
  const text = ascii(t.text);
  if (t.type === Tok.Integer) {
    // int64 if it fits, else uint64 if non-negative and fits, else a double (as QEMU).
    const v = BigInt(text);
    if (v >= I64_MIN && v <= U64_MAX) return v;
  }
  return Number(text);
}

function hex4(b: Uint8Array, at: number): number {
  let cp = 0;
  for (let i = 0; i < 4; i++) {
    const ch = at + i < b.length ? b[at + i]! : 0;
    let d: number;
    if (ch >= 0x30 && ch <= 0x39) d = ch - 0x30;
    else if (ch >= 0x41 && ch <= 0x46) d = ch - 0x37;
    else if (ch >= 0x61 && ch <= 0x66) d = ch - 0x57;
    else return -1;
    cp = (cp << 4) | d;
  }
  return cp;
}

const SIMPLE_ESCAPES: Record<number, string> = {
  0x22: '"', 0x27: "'", 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t',
};

/** parse_string(): the token still has its quotes; escapes and raw UTF-8 are validated. */
function parseString(b: Uint8Array): string {
  const quote = b[0]!;
  const end = b.length - 1; // the closing quote
  let out = '';
  let p = 1;
  // Fast path: printable ASCII without escapes.
  let q = p;
  while (q < end && b[q]! >= 0x20 && b[q]! < 0x7f && b[q] !== 0x5c) q++;
  if (q === end && b[end] === quote) return ascii(b.subarray(1, end));
  while (p < end) {
    const ch = b[p]!;
    if (ch === 0x5c) {
      const beg = p;
      const e = b[p + 1]!;
      p += 2;
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        continue;
      }
      if (e !== 0x75) throw new ParseError('invalid escape sequence in string');
      let cp = hex4(b, p);
      p += 4;
      if (cp >= 0xd800 && cp <= 0xdbff && b[p] === 0x5c && b[p + 1] === 0x75) {
        const trailing = hex4(b, p + 2);
        if (trailing >= 0xdc00 && trailing <= 0xdfff) {
          cp = 0x10000 + ((cp & 0x3ff) << 10) + (trailing & 0x3ff);
          p += 6;
        } else {
          cp = -1;
        }
      }
      if (!isValidCodepoint(cp)) {
        // QEMU prints "%.*s" of the escape: stops at the end of the C string.
        const shown = ascii(b.subarray(beg, Math.min(p, b.length)));
        throw new ParseError(`${shown} is not a valid Unicode character`);
      }
      out += String.fromCodePoint(cp);
      continue;
    }
    const [cp, nextPos] = modUtf8Codepoint(b, p, b.length);
    if (cp < 0) throw new ParseError('invalid UTF-8 sequence in string');
    out += String.fromCodePoint(cp);
    p = nextPos;
  }
  return out;
}
