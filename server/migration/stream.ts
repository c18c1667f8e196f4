/**
 * The migration stream between sevd hosts. The outer container is sevd's own; the page
 * headers and the SEV records inside follow the AMD series (qmp-protocol.md §17.4): be64
 * (gpa | flags) page words, RAM_SAVE_FLAG_ENCRYPTED_DATA records with the SEND_START blob in
 * the first one, and the shared-regions list. All framing integers are big-endian.
 */
export const STREAM_MAGIC = Buffer.from('SEVDMIG\0', 'latin1');
export const STREAM_VERSION = 1;

export const Flag = {
  ZERO: 0x02,
  MEM_SIZE: 0x04,
  PAGE: 0x08,
  EOS: 0x10,
  ENCRYPTED_DATA: 0x200,
  /** sevd's own (unused by QEMU's RAM flags): the device state that ends the stream. */
  DEVICE_STATE: 0x800,
} as const;
/** Flags live in the low 12 bits: page addresses are 4 KiB aligned. */
const FLAG_MASK = 0xfff;
export const SUBTYPE_ENCRYPTED_PAGE = 0x1;
export const SUBTYPE_SHARED_REGIONS = 0x2;
const PAGE = 4096;

export interface SendStartBlob {
  policy: number;
  pdh: Buffer;
  session: Buffer;
}

export type StreamRecord =
  | { kind: 'config'; ramBytes: number; config: Record<string, unknown> }
  | { kind: 'page'; gpa: number; data: Buffer }
  | { kind: 'zero'; gpa: number }
  | { kind: 'encrypted'; gpa: number; start?: SendStartBlob; header: Buffer; trans: Buffer }
  | { kind: 'shared'; ranges: [number, number][] }
  | { kind: 'eos' }
  | { kind: 'device'; state: Record<string, unknown> };

const be32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const word = (addr: number, flags: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(addr) | BigInt(flags));
  return b;
};
const withLen = (b: Buffer) => Buffer.concat([be32(b.length), b]);
/** be64 (addr | flags) without BigInt: flags live in the low 12 bits of the low word. */
function writeWord(b: Buffer, at: number, addr: number, flags: number): void {
  b.writeUInt32BE(Math.floor(addr / 2 ** 32), at);
  b.writeUInt32BE(((addr % 2 ** 32) | flags) >>> 0, at + 4);
}

export function encodeHeader(): Buffer {
  return Buffer.concat([STREAM_MAGIC, be32(STREAM_VERSION)]);
}

export function encodeRecord(r: StreamRecord): Buffer {
  switch (r.kind) {
    case 'config':
      return Buffer.concat([word(r.ramBytes - (r.ramBytes % PAGE), Flag.MEM_SIZE), withLen(Buffer.from(JSON.stringify(r.config)))]);
    case 'page': {
      const b = Buffer.allocUnsafe(8 + PAGE);
      writeWord(b, 0, r.gpa, Flag.PAGE);
      r.data.copy(b, 8);
      return b;
    }
    case 'zero':
      return Buffer.concat([word(r.gpa, Flag.ZERO), Buffer.from([0])]);
    case 'encrypted': {
      if (r.start) {
        return Buffer.concat([word(r.gpa, Flag.ENCRYPTED_DATA), be32(SUBTYPE_ENCRYPTED_PAGE), be32(r.start.policy),
          withLen(r.start.pdh), withLen(r.start.session), withLen(r.header), withLen(r.trans)]);
      }
      // The per-page record, built in one allocation.
      const b = Buffer.allocUnsafe(8 + 4 + 4 + r.header.length + 4 + r.trans.length);
      writeWord(b, 0, r.gpa, Flag.ENCRYPTED_DATA);
      b.writeUInt32BE(SUBTYPE_ENCRYPTED_PAGE, 8);
      b.writeUInt32BE(r.header.length, 12);
      r.header.copy(b, 16);
      const at = 16 + r.header.length;
      b.writeUInt32BE(r.trans.length, at);
      r.trans.copy(b, at + 4);
      return b;
    }
    case 'shared': {
      const parts = [word(0, Flag.ENCRYPTED_DATA), be32(SUBTYPE_SHARED_REGIONS)];
      for (const [a, b] of r.ranges) parts.push(be32(1), be32(a), be32(b));
      parts.push(be32(2));
      return Buffer.concat(parts);
    }
    case 'eos':
      return word(0, Flag.EOS);
    case 'device':
      return Buffer.concat([word(0, Flag.DEVICE_STATE), withLen(Buffer.from(JSON.stringify(r.state)))]);
  }
}

/** Pull-style reader over any byte source (socket, file): `read(n)` resolves with exactly n bytes. */
export class ByteReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private ended: Error | null = null;
  private wake: (() => void) | null = null;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.have += chunk.length;
    this.wake?.();
  }

  end(err?: Error): void {
    this.ended = err ?? new Error('migration stream ended early');
    this.wake?.();
  }

  get buffered(): number {
    return this.have;
  }

  async read(n: number): Promise<Buffer> {
    while (this.have < n) {
      if (this.ended) throw this.ended;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const take = Math.min(c.length, n - at);
      c.copy(out, at, 0, take);
      at += take;
      if (take === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    this.have -= n;
    return out;
  }
}

/** Limits on lengths inside records (the series: blobs up to 16 KiB). */
const MAX_BLOB = 16384;

export class StreamFormatError extends Error {}

export class StreamDecoder {
  private sawStart = false;

  constructor(private readonly r: ByteReader) {}

  async header(): Promise<void> {
    const h = await this.r.read(12);
    if (!h.subarray(0, 8).equals(STREAM_MAGIC)) throw new StreamFormatError('not a sevd migration stream');
    if (h.readUInt32BE(8) !== STREAM_VERSION) throw new StreamFormatError(`migration stream version ${h.readUInt32BE(8)} is not supported`);
  }

  private async blob(): Promise<Buffer> {
    const len = (await this.r.read(4)).readUInt32BE(0);
    if (len > MAX_BLOB) throw new StreamFormatError(`invalid length max=${MAX_BLOB} got=${len}`);
    return this.r.read(len);
  }

  async next(): Promise<StreamRecord> {
    const w = (await this.r.read(8)).readBigUInt64BE(0);
    const flags = Number(w & BigInt(FLAG_MASK));
    const addr = Number(w & ~BigInt(FLAG_MASK) & ((1n << 64n) - 1n));
    if (flags & Flag.MEM_SIZE) return { kind: 'config', ramBytes: addr, config: JSON.parse((await this.blob()).toString()) };
    if (flags & Flag.EOS) return { kind: 'eos' };
    if (flags & Flag.DEVICE_STATE) return { kind: 'device', state: JSON.parse((await this.blob()).toString()) };
    if (flags & Flag.PAGE) return { kind: 'page', gpa: addr, data: await this.r.read(PAGE) };
    if (flags & Flag.ZERO) {
      await this.r.read(1);
      return { kind: 'zero', gpa: addr };
    }
    if (flags & Flag.ENCRYPTED_DATA) {
      const sub = (await this.r.read(4)).readUInt32BE(0);
      if (sub === SUBTYPE_SHARED_REGIONS) {
        const ranges: [number, number][] = [];
        for (;;) {
          const tag = (await this.r.read(4)).readUInt32BE(0);
          if (tag === 2) break;
          if (tag !== 1) throw new StreamFormatError(`bad shared-regions tag ${tag}`);
          const b = await this.r.read(8);
          ranges.push([b.readUInt32BE(0), b.readUInt32BE(4)]);
        }
        return { kind: 'shared', ranges };
      }
      if (sub !== SUBTYPE_ENCRYPTED_PAGE) throw new StreamFormatError(`unknown encrypted sub-type ${sub}`);
      let start: SendStartBlob | undefined;
      if (!this.sawStart) {
        const policy = (await this.r.read(4)).readUInt32BE(0);
        start = { policy, pdh: await this.blob(), session: await this.blob() };
        this.sawStart = true;
      }
      const header = await this.blob();
      const trans = await this.blob();
      return { kind: 'encrypted', gpa: addr, ...(start ? { start } : {}), header, trans };
    }
    throw new StreamFormatError(`unknown page flags 0x${flags.toString(16)}`);
  }
}
