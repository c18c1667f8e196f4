/**
 * SNP guest messages (SNP_GUEST_REQUEST; linux asm/sev.h `snp_guest_msg`, sev-guest.h): a
 * 0x60-byte header — AES-256-GCM tag, sequence number, algorithm 1, header version 1,
 * header size, message type/version/size, VMPCK id — then the payload encrypted with the
 * VMPCK: IV = the sequence number (little endian, zero padded), AAD = the header from the
 * algorithm field on. The guest and the firmware both use this codec.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';

export const MSG_HDR_SIZE = 0x60;
export const MsgType = { KEY_REQ: 3, KEY_RSP: 4, REPORT_REQ: 5, REPORT_RSP: 6 } as const;
/** snp_report_req's size: REPORT_DATA, VMPL, key select, reserved to 0x60. */
export const REPORT_REQ_SIZE = 96;
/** snp_derived_key_req's size. */
export const KEY_REQ_SIZE = 32;

export interface GuestMessage {
  seqno: bigint;
  type: number;
  version: number;
  vmpck: number;
  payload: Buffer;
}

function iv(seqno: bigint): Buffer {
  const b = Buffer.alloc(12);
  b.writeBigUInt64LE(seqno);
  return b;
}

function header(m: Omit<GuestMessage, 'payload'>, size: number): Buffer {
  const h = Buffer.alloc(MSG_HDR_SIZE);
  h.writeBigUInt64LE(m.seqno, 32);
  h[48] = 1; // AES-256-GCM
  h[49] = 1; // header version
  h.writeUInt16LE(MSG_HDR_SIZE, 50);
  h[52] = m.type;
  h[53] = m.version;
  h.writeUInt16LE(size, 54);
  h[60] = m.vmpck;
  return h;
}

export function sealGuestMessage(vmpck: Uint8Array, m: GuestMessage): Buffer {
  const h = header(m, m.payload.length);
  const c = createCipheriv('aes-256-gcm', vmpck, iv(m.seqno));
  c.setAAD(h.subarray(48));
  const ct = Buffer.concat([c.update(m.payload), c.final()]);
  c.getAuthTag().copy(h, 0);
  return Buffer.concat([h, ct]);
}

/** The header's fields without decrypting (to pick the VMPCK). */
export function peekGuestMessage(raw: Uint8Array): Omit<GuestMessage, 'payload'> & { size: number } {
  const b = Buffer.from(raw);
  if (b.length < MSG_HDR_SIZE || b[48] !== 1 || b[49] !== 1 || b.readUInt16LE(50) !== MSG_HDR_SIZE) throw new Error('not an SNP guest message');
  return { seqno: b.readBigUInt64LE(32), type: b[52]!, version: b[53]!, vmpck: b[60]!, size: b.readUInt16LE(54) };
}

/** Decrypts and authenticates; throws if the tag does not match. */
export function openGuestMessage(vmpck: Uint8Array, raw: Uint8Array): GuestMessage {
  const b = Buffer.from(raw);
  const h = peekGuestMessage(b);
  if (b.length < MSG_HDR_SIZE + h.size) throw new Error('truncated SNP guest message');
  const d = createDecipheriv('aes-256-gcm', vmpck, iv(h.seqno));
  d.setAAD(b.subarray(48, MSG_HDR_SIZE));
  d.setAuthTag(b.subarray(0, 16));
  const payload = Buffer.concat([d.update(b.subarray(MSG_HDR_SIZE, MSG_HDR_SIZE + h.size)), d.final()]);
  return { seqno: h.seqno, type: h.type, version: h.version, vmpck: h.vmpck, payload };
}

/** MSG_REPORT_REQ: user data (REPORT_DATA), VMPL, key select (0 as loaded, 1 VCEK, 2 VLEK). */
export function encodeReportRequest(r: { reportData: Uint8Array; vmpl: number; keySelect: number }): Buffer {
  const b = Buffer.alloc(REPORT_REQ_SIZE);
  Buffer.from(r.reportData).copy(b, 0, 0, 64);
  b.writeUInt32LE(r.vmpl, 64);
  b.writeUInt32LE(r.keySelect & 3, 68);
  return b;
}

/** Throws a RangeError on a payload shorter than the structure (the firmware's INVALID_PARAM). */
export function decodeReportRequest(b: Buffer): { reportData: Buffer; vmpl: number; keySelect: number } {
  if (b.length < REPORT_REQ_SIZE) throw new RangeError(`MSG_REPORT_REQ is ${REPORT_REQ_SIZE} bytes, got ${b.length}`);
  return { reportData: b.subarray(0, 64), vmpl: b.readUInt32LE(64), keySelect: b.readUInt32LE(68) & 3 };
}

/** MSG_REPORT_RSP: status, report size, the report. */
export function encodeReportResponse(status: number, report: Buffer | null): Buffer {
  const b = Buffer.alloc(32 + (report?.length ?? 0));
  b.writeUInt32LE(status, 0);
  b.writeUInt32LE(report?.length ?? 0, 4);
  report?.copy(b, 32);
  return b;
}

export function decodeReportResponse(b: Buffer): { status: number; report: Buffer } {
  return { status: b.readUInt32LE(0), report: b.subarray(32, 32 + b.readUInt32LE(4)) };
}

/** MSG_KEY_REQ (snp_derived_key_req). */
export interface KeyRequest {
  /** 0: VCEK-derived root, 1: the VM root key (VMRK). */
  rootKeySelect: number;
  /** Bits: 0 policy, 1 image id, 2 family id, 3 measurement, 4 guest SVN, 5 TCB version. */
  guestFieldSelect: bigint;
  vmpl: number;
  guestSvn: number;
  tcbVersion: bigint;
}

export function encodeKeyRequest(k: KeyRequest): Buffer {
  const b = Buffer.alloc(KEY_REQ_SIZE);
  b.writeUInt32LE(k.rootKeySelect, 0);
  b.writeBigUInt64LE(k.guestFieldSelect, 8);
  b.writeUInt32LE(k.vmpl, 16);
  b.writeUInt32LE(k.guestSvn, 20);
  b.writeBigUInt64LE(k.tcbVersion, 24);
  return b;
}

/** Throws a RangeError on a payload shorter than the structure (the firmware's INVALID_PARAM). */
export function decodeKeyRequest(b: Buffer): KeyRequest {
  if (b.length < KEY_REQ_SIZE) throw new RangeError(`MSG_KEY_REQ is ${KEY_REQ_SIZE} bytes, got ${b.length}`);
  return { rootKeySelect: b.readUInt32LE(0) & 1, guestFieldSelect: b.readBigUInt64LE(8), vmpl: b.readUInt32LE(16), guestSvn: b.readUInt32LE(20), tcbVersion: b.readBigUInt64LE(24) };
}

export function encodeKeyResponse(status: number, key: Buffer | null): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(status, 0);
  key?.copy(b, 32);
  return b;
}

export function decodeKeyResponse(b: Buffer): { status: number; key: Buffer } {
  return { status: b.readUInt32LE(0), key: b.subarray(32, 64) };
}
