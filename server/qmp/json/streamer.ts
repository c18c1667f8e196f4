/**
 * Message assembly (QEMU's qobject/json-streamer.c): counts braces and brackets over the
 * lexer's tokens, enforces the size, count and nesting limits, and hands each complete
 * message to the parser. Every error resets the queue, so one bad message never
 * desynchronises the stream.
 */
import { JsonLexer, Tok } from './lexer.js';
import { parseTokens, type Token } from './parser.js';
import { decodeLenient } from './utf8.js';
import type { QObject } from './qobject.js';

export interface StreamerLimits {
  /** Total token text of one message (QEMU MAX_TOKEN_SIZE, 64 MiB). */
  maxTokenBytes?: number;
  /** Tokens in one message (QEMU MAX_TOKEN_COUNT, 2 Mi). */
  maxTokens?: number;
  /** Open braces plus brackets (QEMU MAX_NESTING, 1024). */
  maxNesting?: number;
}

/** One parsed message, or the QMP error text for input that could not be read. */
export type StreamItem = { value: QObject; error?: undefined } | { value?: undefined; error: string };

export class JsonStreamer {
  private readonly lexer: JsonLexer;
  private tokens: Token[] = [];
  private tokenBytes = 0;
  private braces = 0;
  private brackets = 0;
  private readonly maxTokenBytes: number;
  private readonly maxTokens: number;
  private readonly maxNesting: number;

  constructor(private readonly emit: (item: StreamItem) => void, limits: StreamerLimits = {}) {
    this.maxTokenBytes = limits.maxTokenBytes ?? 64 * 1024 * 1024;
    this.maxTokens = limits.maxTokens ?? 2 * 1024 * 1024;
    this.maxNesting = limits.maxNesting ?? 1024;
    this.lexer = new JsonLexer((type, text) => this.token(type, text), { maxTokenBytes: this.maxTokenBytes });
  }

  feed(chunk: Uint8Array): void {
    this.lexer.feed(chunk);
  }

  flush(): void {
    this.lexer.flush();
  }

  /** Bytes held for an incomplete message (for resource accounting). */
  get pendingBytes(): number {
    return this.tokenBytes;
  }

  private token(type: number, text: Uint8Array): void {
    switch (type) {
      case Tok.LCurly: this.braces++; break;
      case Tok.RCurly: this.braces--; break;
      case Tok.LSquare: this.brackets++; break;
      case Tok.RSquare: this.brackets--; break;
      case Tok.Error:
        return this.fail(`JSON parse error, stray '${decodeLenient(text)}'`);
      case Tok.EndOfInput: {
        if (this.tokens.length === 0) return;
        return this.finish();
      }
      default: break;
    }
    const structural = type >= Tok.LCurly && type < Tok.Integer;
    // A structural token's text is its one byte (the lexer does not hand it over).
    const len = structural ? 1 : text.length;
    if (this.tokenBytes + len + 1 > this.maxTokenBytes) return this.fail('JSON token size limit exceeded');
    if (this.tokens.length + 1 > this.maxTokens) return this.fail('JSON token count limit exceeded');
    if (this.braces + this.brackets > this.maxNesting) return this.fail('JSON nesting depth limit exceeded');
    // Structural tokens carry no text: share one immutable token object per type.
    this.tokens.push(structural ? STRUCTURAL[type - Tok.LCurly]! : { type, text: text.slice() });
    this.tokenBytes += len;
    // QEMU tests the bracket counter twice and the brace counter never (reproduced).
    if ((this.braces > 0 || this.brackets > 0) && this.brackets >= 0) return;
    this.finish();
  }

  private finish(): void {
    const result = parseTokens(this.tokens);
    this.clear();
    this.emit(result);
  }

  private fail(error: string): void {
    this.clear();
    this.emit({ error });
  }

  private clear(): void {
    this.tokens = [];
    this.tokenBytes = 0;
    this.braces = 0;
    this.brackets = 0;
  }
}

const EMPTY = new Uint8Array(0);
const STRUCTURAL: readonly Token[] = [Tok.LCurly, Tok.RCurly, Tok.LSquare, Tok.RSquare, Tok.Colon, Tok.Comma].map((type) =>
  Object.freeze({ type, text: EMPTY }),
);
