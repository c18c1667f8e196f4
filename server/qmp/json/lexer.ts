/**
 * JSON lexer: a byte-level state machine, transition for transition the one in QEMU's
 * qobject/json-lexer.c, so that token boundaries, lexical errors and error recovery are
 * QEMU's. Input may arrive in any chunking; state carries over between chunks.
 */

export const enum Tok {
  Error = 0,
  LCurly = 100,
  RCurly,
  LSquare,
  RSquare,
  Colon,
  Comma,
  Integer,
  Float,
  Keyword,
  String,
  EndOfInput,
}

// Lexer states (below 100, like QEMU's).
const IN_RECOVERY = 1;
const IN_DQ_STRING_ESCAPE = 2;
const IN_DQ_STRING = 3;
const IN_SQ_STRING_ESCAPE = 4;
const IN_SQ_STRING = 5;
const IN_ZERO = 6;
const IN_EXP_DIGITS = 7;
const IN_EXP_SIGN = 8;
const IN_EXP_E = 9;
const IN_MANTISSA = 10;
const IN_MANTISSA_DIGITS = 11;
const IN_DIGITS = 12;
const IN_SIGN = 13;
const IN_KEYWORD = 14;
const IN_START = 15;
const NSTATES = 16;
const LOOKAHEAD = 0x80;

/** transition[state * 256 + byte] = next state or token type, with LOOKAHEAD in bit 7 of a separate table. */
const next = new Uint8Array(NSTATES * 256);
const lookahead = new Uint8Array(NSTATES * 256);

function set(state: number, from: number, to: number, value: number, la = false): void {
  for (let b = from; b <= to; b++) {
    next[state * 256 + b] = value;
    lookahead[state * 256 + b] = la ? 1 : 0;
  }
}
const c = (s: string): number => s.charCodeAt(0);
/** QEMU's TERMINAL(): bytes 0..0x7F end the token without consuming; 0x80..0xFF are errors. */
function terminal(state: number, token: number): void {
  set(state, 0, 0x7f, token, true);
}

set(IN_RECOVERY, 0, 0x1f, IN_START, true);
set(IN_RECOVERY, 0x20, 0xfd, IN_RECOVERY);
set(IN_RECOVERY, 0xfe, 0xff, IN_START, true);
set(IN_RECOVERY, c('\t'), c('\t'), IN_RECOVERY);
for (const ch of '[]{}:,') set(IN_RECOVERY, c(ch), c(ch), IN_START, true);

set(IN_DQ_STRING_ESCAPE, 0x20, 0xfd, IN_DQ_STRING);
set(IN_DQ_STRING, 0x20, 0xfd, IN_DQ_STRING);
set(IN_DQ_STRING, c('\\'), c('\\'), IN_DQ_STRING_ESCAPE);
set(IN_DQ_STRING, c('"'), c('"'), Tok.String);

set(IN_SQ_STRING_ESCAPE, 0x20, 0xfd, IN_SQ_STRING);
set(IN_SQ_STRING, 0x20, 0xfd, IN_SQ_STRING);
set(IN_SQ_STRING, c('\\'), c('\\'), IN_SQ_STRING_ESCAPE);
set(IN_SQ_STRING, c("'"), c("'"), Tok.String);

terminal(IN_ZERO, Tok.Integer);
set(IN_ZERO, c('0'), c('9'), Tok.Error);
set(IN_ZERO, c('.'), c('.'), IN_MANTISSA);

terminal(IN_EXP_DIGITS, Tok.Float);
set(IN_EXP_DIGITS, c('0'), c('9'), IN_EXP_DIGITS);
set(IN_EXP_SIGN, c('0'), c('9'), IN_EXP_DIGITS);
set(IN_EXP_E, c('-'), c('-'), IN_EXP_SIGN);
set(IN_EXP_E, c('+'), c('+'), IN_EXP_SIGN);
set(IN_EXP_E, c('0'), c('9'), IN_EXP_DIGITS);

terminal(IN_MANTISSA_DIGITS, Tok.Float);
set(IN_MANTISSA_DIGITS, c('0'), c('9'), IN_MANTISSA_DIGITS);
set(IN_MANTISSA_DIGITS, c('e'), c('e'), IN_EXP_E);
set(IN_MANTISSA_DIGITS, c('E'), c('E'), IN_EXP_E);
set(IN_MANTISSA, c('0'), c('9'), IN_MANTISSA_DIGITS);

terminal(IN_DIGITS, Tok.Integer);
set(IN_DIGITS, c('0'), c('9'), IN_DIGITS);
set(IN_DIGITS, c('e'), c('e'), IN_EXP_E);
set(IN_DIGITS, c('E'), c('E'), IN_EXP_E);
set(IN_DIGITS, c('.'), c('.'), IN_MANTISSA);

set(IN_SIGN, c('0'), c('0'), IN_ZERO);
set(IN_SIGN, c('1'), c('9'), IN_DIGITS);

terminal(IN_KEYWORD, Tok.Keyword);
set(IN_KEYWORD, c('a'), c('z'), IN_KEYWORD);


set(IN_START, c('"'), c('"'), IN_DQ_STRING);
set(IN_START, c("'"), c("'"), IN_SQ_STRING);
set(IN_START, c('0'), c('0'), IN_ZERO);
set(IN_START, c('1'), c('9'), IN_DIGITS);
set(IN_START, c('-'), c('-'), IN_SIGN);
set(IN_START, c('{'), c('{'), Tok.LCurly);
set(IN_START, c('}'), c('}'), Tok.RCurly);
set(IN_START, c('['), c('['), Tok.LSquare);
set(IN_START, c(']'), c(']'), Tok.RSquare);
set(IN_START, c(','), c(','), Tok.Comma);
set(IN_START, c(':'), c(':'), Tok.Colon);
set(IN_START, c('a'), c('z'), IN_KEYWORD);
// Whitespace is consumed and dropped at once (its text never accumulates).
for (const ch of ' \t\r\n') set(IN_START, c(ch), c(ch), IN_START);

/** Receives each token; `text` is only valid during the call (copy to keep). `type` may be a lexer state when a token is cut at the size limit. */
export type TokenSink = (type: number, text: Uint8Array) => void;

export interface LexerOptions {
  /** QEMU's MAX_TOKEN_SIZE: a token longer than this is cut and handed on as is. */
  maxTokenBytes?: number;
}

const NO_TEXT = new Uint8Array(0);

export class JsonLexer {
  private state = IN_START;
  private buf: Uint8Array = new Uint8Array(256);
  private len = 0;
  private readonly maxTokenBytes: number;

  constructor(private readonly sink: TokenSink, opts: LexerOptions = {}) {
    this.maxTokenBytes = opts.maxTokenBytes ?? 64 * 1024 * 1024;
  }

  private append(b: number): void {
    if (this.len === this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.len++] = b;
  }

  private text(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  /** Shrinks the token buffer after a huge token so an idle connection does not keep it. */
  private reset(): void {
    this.len = 0;
    if (this.buf.length > 65536) this.buf = new Uint8Array(256);
  }

  feed(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) this.feedByte(chunk[i]!, false);
  }

  /** End of input (one text frame): finish a pending token, then parse what is queued. */
  flush(): void {
    this.feedByte(0, true);
    this.sink(Tok.EndOfInput, this.text());
  }

  private feedByte(ch: number, flush: boolean): void {
    let consumed = false;
    while (flush ? this.state !== IN_START : !consumed) {
      const idx = this.state * 256 + ch;
      let newState = next[idx]!;
      consumed = !flush && lookahead[idx] === 0;
      if (consumed) this.append(ch);
      if (newState >= Tok.LCurly) {
        this.sink(newState, newState >= Tok.Integer ? this.text() : NO_TEXT);
        this.reset();
        newState = IN_START;
      } else if (newState === IN_START) {
        this.len = 0;
      } else if (newState === Tok.Error) {
        this.sink(Tok.Error, this.text());
        this.reset();
        newState = IN_RECOVERY;
      } else if (newState === IN_RECOVERY) {
        this.len = 0;
      }
      this.state = newState;
    }
    if (this.len > this.maxTokenBytes) {
      this.sink(this.state, this.text());
      this.reset();
      this.state = IN_START;
    }
  }
}
