/**
 * The receiving side of the stream format (stream.ts) as a synchronous parser: bytes are
 * pushed as they arrive and `next()` returns each complete record, or null until more bytes
 * come. Records inside one chunk are views of it (no copy); only a record split across
 * chunks is gathered into a buffer of its own, sized from its length fields.
 *
 * The peer is not trusted, so the work is linear in the bytes received: a record's fixed
 * fields are re-read only when one of its (bounded) length fields needed more bytes, and the
 * one record of unbounded length, the shared-regions list, is read range by range with its
 * state kept across chunks and handed over in pieces. Limits are options with defaults.
 */
import {
  Flag, FLAG_MASK, MAX_BLOB, STREAM_MAGIC, STREAM_VERSION, SUBTYPE_ENCRYPTED_PAGE, SUBTYPE_SHARED_REGIONS,
  type SendStartBlob, type StreamRecord,
} from './stream.js';
import { StreamErrorCode as Code, StreamFormatError } from './stream-errors.js';

export { StreamFormatError } from './stream-errors.js';

const PAGE = 4096;
const HEADER_SIZE = STREAM_MAGIC.length + 4;
const RANGE_SIZE = 12; // tag 1, first gfn, end gfn

export interface StreamParserOptions {
  /** Longest length-prefixed field (SEND_START PDH and session, packet header and transport, JSON); the series: 16 KiB. */
  maxBlobBytes?: number;
  /** Most ranges in the shared-regions list (the loader lowers it to the guest's page count). */
  maxSharedRanges?: number;
  /** End (exclusive) of the page frame numbers a shared range may name (the loader: the guest's RAM end). */
  maxPfn?: number;
  /** A long shared-regions list is handed over in pieces of at most this many ranges. */
  rangesPerPiece?: number;
}

export const PARSER_DEFAULTS: Required<StreamParserOptions> = {
  maxBlobBytes: MAX_BLOB,
  maxSharedRanges: 1 << 20,
  maxPfn: 2 ** 32,
  rangesPerPiece: 1024,
};

/** Not enough bytes: the record needs at least `bytes` from its start. */
class Need {
  constructor(readonly bytes: number) {}
}

/** Reads fields of one record from `pos`; throws Need when the buffer ends first. */
class Cursor {
  constructor(private readonly b: Buffer, private readonly start: number, public at: number, private readonly maxBlob: number) {}

  private want(n: number): void {
    if (this.at + n > this.b.length) throw new Need(this.at + n - this.start);
  }

  u32(): number {
    this.want(4);
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  bytes(n: number): Buffer {
    this.want(n);
    const v = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  blob(): Buffer {
    const len = this.u32();
    if (len > this.maxBlob) throw new StreamFormatError(Code.BAD_LENGTH, `invalid length max=${this.maxBlob} got=${len}`);
    return this.bytes(len);
  }
}

/** Where the shared-regions list being read stands. */
interface RangeList {
  count: number;
  prevEnd: number;
}

export class StreamParser {
  readonly #opt: Required<StreamParserOptions>;
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  /** Chunks not yet read, from #head on (no Array.shift: a peer may send many tiny chunks). */
  #queue: Buffer[] = [];
  #head = 0;
  #queued = 0;
  #sawHeader = false;
  #sawStart = false;
  #ranges: RangeList | null = null;

  constructor(options: StreamParserOptions = {}) {
    this.#opt = { ...PARSER_DEFAULTS, ...options };
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#queue.push(chunk);
    this.#queued += chunk.length;
  }

  /** Bytes received and not yet returned as records. */
  get buffered(): number {
    return this.#buf.length - this.#pos + this.#queued;
  }

  #shift(): Buffer | undefined {
    if (this.#head === this.#queue.length) return undefined;
    const c = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as unknown as Buffer;
    if (this.#head === this.#queue.length || this.#head > 1024) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return c;
  }

  /** The next complete record (or piece of the shared-regions list), or null until more bytes are pushed. */
  next(): StreamRecord | null {
    for (;;) {
      if (this.#pos === this.#buf.length) {
        const c = this.#shift();
        if (!c) return null;
        this.#queued -= c.length;
        this.#buf = c;
        this.#pos = 0;
      }
      let r: StreamRecord | null;
      try {
        const c = new Cursor(this.#buf, this.#pos, this.#pos, this.#opt.maxBlobBytes);
        r = this.#ranges ? this.#rangePiece(c, this.#ranges) : this.#decode(c);
      } catch (e) {
        if (!(e instanceof Need)) throw e;
        if (!this.#gather(e.bytes)) return null;
        continue;
      }
      if (r) return r;
    }
  }

  /** Joins the rest of the current chunk with the head of the next ones into `need` bytes. */
  #gather(need: number): boolean {
    const have = this.#buf.length - this.#pos;
    if (have + this.#queued < need) return false;
    const joined = Buffer.allocUnsafe(need);
    this.#buf.copy(joined, 0, this.#pos);
    for (let at = have; at < need; ) {
      const c = this.#queue[this.#head]!;
      const take = Math.min(c.length, need - at);
      c.copy(joined, at, 0, take);
      at += take;
      this.#queued -= take;
      if (take === c.length) this.#shift();
      else this.#queue[this.#head] = c.subarray(take);
    }
    this.#buf = joined;
    this.#pos = 0;
    return true;
  }

  /** One record (or the stream header, which yields null) at the cursor; advances #pos when complete. */
  #decode(c: Cursor): StreamRecord | null {
    if (!this.#sawHeader) {
      const h = c.bytes(HEADER_SIZE);
      if (!h.subarray(0, STREAM_MAGIC.length).equals(STREAM_MAGIC)) throw new StreamFormatError(Code.BAD_MAGIC, 'not a sevd migration stream');
      const version = h.readUInt32BE(STREAM_MAGIC.length);
      if (version !== STREAM_VERSION) throw new StreamFormatError(Code.BAD_VERSION, `migration stream version ${version} is not supported`);
      this.#sawHeader = true;
      this.#pos = c.at;
      return null;
    }
    const hi = c.u32();
    const lo = c.u32();
    const flags = lo & FLAG_MASK;
    const addr = hi * 2 ** 32 + (lo - flags);
    let rec: StreamRecord | null;
    if (flags & Flag.MEM_SIZE) rec = { kind: 'config', ramBytes: addr, config: this.#json(c.blob()) };
    else if (flags & Flag.EOS) rec = { kind: 'eos' };
    else if (flags & Flag.DEVICE_STATE) rec = { kind: 'device', state: this.#json(c.blob()) };
    else if (flags & Flag.PAGE) rec = { kind: 'page', gpa: addr, data: c.bytes(PAGE) };
    else if (flags & Flag.ZERO) {
      c.bytes(1);
      rec = { kind: 'zero', gpa: addr };
    } else if (flags & Flag.ENCRYPTED_DATA) rec = this.#encrypted(c, addr);
    // QEMU's ram_load text.
    else throw new StreamFormatError(Code.BAD_FLAGS, `Unknown combination of migration flags: 0x${flags.toString(16)}`);
    this.#pos = c.at;
    return rec;
  }

  #json(b: Buffer): Record<string, unknown> {
    try {
      const v: unknown = JSON.parse(b.toString());
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // reported below
    }
    throw new StreamFormatError(Code.BAD_JSON, 'bad JSON object in the migration stream');
  }

  /** An encrypted-data record; the shared-regions sub-type only opens its list (null). */
  #encrypted(c: Cursor, gpa: number): StreamRecord | null {
    const sub = c.u32();
    if (sub === SUBTYPE_SHARED_REGIONS) {
      this.#ranges = { count: 0, prevEnd: 0 };
      return null;
    }
    if (sub !== SUBTYPE_ENCRYPTED_PAGE) throw new StreamFormatError(Code.BAD_SUBTYPE, `unknown encrypted sub-type ${sub}`);
    let start: SendStartBlob | undefined;
    if (!this.#sawStart) start = { policy: c.u32(), pdh: c.blob(), session: c.blob() };
    const header = c.blob();
    const trans = c.blob();
    if (start) this.#sawStart = true; // only once the whole record is here
    return { kind: 'encrypted', gpa, ...(start ? { start } : {}), header, trans };
  }

  /**
   * The ranges that are here (up to rangesPerPiece), each checked as it is read: in order,
   * not empty, below maxPfn, at most maxSharedRanges. `more` until the end tag.
   */
  #rangePiece(c: Cursor, list: RangeList): StreamRecord | null {
    const o = this.#opt;
    const ranges: [number, number][] = [];
    for (;;) {
      let tag: number;
      try {
        tag = c.u32();
      } catch (e) {
        if (e instanceof Need && ranges.length) return { kind: 'shared', ranges, more: true };
        throw e;
      }
      if (tag === 2) {
        this.#pos = c.at;
        this.#ranges = null;
        return { kind: 'shared', ranges };
      }
      if (tag !== 1) throw new StreamFormatError(Code.BAD_TAG, `bad shared-regions tag ${tag}`);
      if (c.at + 8 > this.#buf.length) {
        if (ranges.length) return { kind: 'shared', ranges, more: true };
        throw new Need(RANGE_SIZE);
      }
      const first = c.u32();
      const end = c.u32();
      if (++list.count > o.maxSharedRanges) {
        throw new StreamFormatError(Code.TOO_MANY_RANGES, `shared-regions list longer than ${o.maxSharedRanges} ranges`);
      }
      if (first >= end || first < list.prevEnd || end > o.maxPfn) {
        const what = end > o.maxPfn ? `beyond guest frame 0x${o.maxPfn.toString(16)}` : 'empty or out of order';
        throw new StreamFormatError(Code.BAD_RANGE, `shared-regions range [0x${first.toString(16)}, 0x${end.toString(16)}) is ${what}`);
      }
      list.prevEnd = end;
      ranges.push([first, end]);
      this.#pos = c.at;
      if (ranges.length === o.rangesPerPiece) return { kind: 'shared', ranges, more: true };
    }
  }
}
