/**
 * The receiving side of the stream format (stream.ts) as a synchronous parser: bytes are
 * pushed as they arrive and `next()` returns each complete record, or null until more bytes
 * come. Records inside one chunk are views of it (no copy); only a record split across
 * chunks is gathered into a buffer of its own, sized from its length fields.
 */
import {
  Flag, FLAG_MASK, MAX_BLOB, STREAM_MAGIC, STREAM_VERSION, SUBTYPE_ENCRYPTED_PAGE, SUBTYPE_SHARED_REGIONS,
  type SendStartBlob, type StreamRecord,
} from './stream.js';

const PAGE = 4096;
const HEADER_SIZE = STREAM_MAGIC.length + 4;

export class StreamFormatError extends Error {}

/** Not enough bytes: the record needs at least `bytes` from its start. */
class Need {
  constructor(readonly bytes: number) {}
}

/** Reads fields of one record from `pos`; throws Need when the buffer ends first. */
class Cursor {
  constructor(private readonly b: Buffer, private readonly start: number, public at: number) {}

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
    if (len > MAX_BLOB) throw new StreamFormatError(`invalid length max=${MAX_BLOB} got=${len}`);
    return this.bytes(len);
  }
}

export class StreamParser {
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  readonly #queue: Buffer[] = [];
  #queued = 0;
  #sawHeader = false;
  #sawStart = false;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#queue.push(chunk);
    this.#queued += chunk.length;
  }

  /** Bytes received and not yet returned as records. */
  get buffered(): number {
    return this.#buf.length - this.#pos + this.#queued;
  }

  /** The next complete record, or null until more bytes are pushed. */
  next(): StreamRecord | null {
    for (;;) {
      if (this.#pos === this.#buf.length) {
        const c = this.#queue.shift();
        if (!c) return null;
        this.#queued -= c.length;
        this.#buf = c;
        this.#pos = 0;
      }
      let r: StreamRecord | null;
      try {
        r = this.#decode(new Cursor(this.#buf, this.#pos, this.#pos));
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
      const c = this.#queue[0]!;
      const take = Math.min(c.length, need - at);
      c.copy(joined, at, 0, take);
      at += take;
      this.#queued -= take;
      if (take === c.length) this.#queue.shift();
      else this.#queue[0] = c.subarray(take);
    }
    this.#buf = joined;
    this.#pos = 0;
    return true;
  }

  /** One record (or the stream header, which yields null) at the cursor; advances #pos when complete. */
  #decode(c: Cursor): StreamRecord | null {
    if (!this.#sawHeader) {
      const h = c.bytes(HEADER_SIZE);
      if (!h.subarray(0, STREAM_MAGIC.length).equals(STREAM_MAGIC)) throw new StreamFormatError('not a sevd migration stream');
      const version = h.readUInt32BE(STREAM_MAGIC.length);
      if (version !== STREAM_VERSION) throw new StreamFormatError(`migration stream version ${version} is not supported`);
      this.#sawHeader = true;
      this.#pos = c.at;
      return null;
    }
    const hi = c.u32();
    const lo = c.u32();
    const flags = lo & FLAG_MASK;
    const addr = hi * 2 ** 32 + (lo - flags);
    let rec: StreamRecord;
    if (flags & Flag.MEM_SIZE) rec = { kind: 'config', ramBytes: addr, config: this.#json(c.blob()) };
    else if (flags & Flag.EOS) rec = { kind: 'eos' };
    else if (flags & Flag.DEVICE_STATE) rec = { kind: 'device', state: this.#json(c.blob()) };
    else if (flags & Flag.PAGE) rec = { kind: 'page', gpa: addr, data: c.bytes(PAGE) };
    else if (flags & Flag.ZERO) {
      c.bytes(1);
      rec = { kind: 'zero', gpa: addr };
    } else if (flags & Flag.ENCRYPTED_DATA) rec = this.#encrypted(c, addr);
    else throw new StreamFormatError(`unknown page flags 0x${flags.toString(16)}`);
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
    throw new StreamFormatError('bad JSON object in the migration stream');
  }

  #encrypted(c: Cursor, gpa: number): StreamRecord {
    const sub = c.u32();
    if (sub === SUBTYPE_SHARED_REGIONS) {
      const ranges: [number, number][] = [];
      for (;;) {
        const tag = c.u32();
        if (tag === 2) return { kind: 'shared', ranges };
        if (tag !== 1) throw new StreamFormatError(`bad shared-regions tag ${tag}`);
        ranges.push([c.u32(), c.u32()]);
      }
    }
    if (sub !== SUBTYPE_ENCRYPTED_PAGE) throw new StreamFormatError(`unknown encrypted sub-type ${sub}`);
    let start: SendStartBlob | undefined;
    if (!this.#sawStart) start = { policy: c.u32(), pdh: c.blob(), session: c.blob() };
    const header = c.blob();
    const trans = c.blob();
    if (start) this.#sawStart = true; // only once the whole record is here
    return { kind: 'encrypted', gpa, ...(start ? { start } : {}), header, trans };
  }
}
