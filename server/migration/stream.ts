/**
 * The migration stream between sevd hosts. The outer container is sevd's own; the page
 * headers and the SEV records inside follow the AMD series (AMD's SEV live-migration series, AMDESE/qemu sev_live_migration_v4_1 migration/ram.c): be64
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
export const FLAG_MASK = 0xfff;
export const SUBTYPE_ENCRYPTED_PAGE = 0x1;
export const SUBTYPE_SHARED_REGIONS = 0x2;
const PAGE = 4096;
/** Limits on lengths inside records (the series: blobs up to 16 KiB). */
export const MAX_BLOB = 16384;

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
  /** [first gfn, end gfn) pairs; the parser hands a long list over in pieces, `more` until the last. */
  | { kind: 'shared'; ranges: [number, number][]; more?: boolean }
  | { kind: 'eos' }
  | { kind: 'device'; state: Record<string, unknown> };

const be32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const word = (addr: number, flags: number) => {
  const b = Buffer.alloc(8);
  writeWord(b, 0, addr, flags);
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
      const b = Buffer.allocUnsafe(encryptedRecordSize(r.header.length, r.trans.length, r.start));
      const views = writeEncryptedRecord(b, 0, r.gpa, r.header.length, r.trans.length, r.start);
      views.header.set(r.header);
      views.trans.set(r.trans);
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

/** Bytes of an ENCRYPTED_PAGE record (the SEND_START blob only in the first one). */
export function encryptedRecordSize(hdrLen: number, transLen: number, start?: SendStartBlob): number {
  return 8 + 4 + (start ? 12 + start.pdh.length + start.session.length : 0) + 4 + hdrLen + 4 + transLen;
}

/**
 * Writes the framing of an ENCRYPTED_PAGE record at `at` and returns the views the packet
 * header and transport buffer go into, so the firmware can write a batch of packets straight
 * into the outgoing buffer.
 */
export function writeEncryptedRecord(b: Buffer, at: number, gpa: number, hdrLen: number, transLen: number, start?: SendStartBlob): { header: Buffer; trans: Buffer; end: number } {
  writeWord(b, at, gpa, Flag.ENCRYPTED_DATA);
  b.writeUInt32BE(SUBTYPE_ENCRYPTED_PAGE, at + 8);
  at += 12;
  if (start) {
    b.writeUInt32BE(start.policy >>> 0, at);
    b.writeUInt32BE(start.pdh.length, at + 4);
    start.pdh.copy(b, at + 8);
    at += 8 + start.pdh.length;
    b.writeUInt32BE(start.session.length, at);
    start.session.copy(b, at + 4);
    at += 4 + start.session.length;
  }
  b.writeUInt32BE(hdrLen, at);
  const header = b.subarray(at + 4, at + 4 + hdrLen);
  at += 4 + hdrLen;
  b.writeUInt32BE(transLen, at);
  const trans = b.subarray(at + 4, at + 4 + transLen);
  return { header, trans, end: at + 4 + transLen };
}
