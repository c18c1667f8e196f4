/**
 * Guest code sealing its own SNP guest messages (Linux's `snp_guest_msg`, asm/sev.h), written
 * with @noble's AES-GCM and plain buffer writes so that the tests check the firmware against
 * a second implementation, not against abi/snp/guest-msg.ts. Also: the VMPCKs from the
 * guest's secrets page as OVMF's metadata places it.
 */
import { readFileSync } from 'node:fs';
import { gcm } from '@noble/ciphers/aes.js';
import { parseSevMetadata, SectionType } from '../../abi/snp/ovmf-metadata.js';
import { parseOvmfTable, type OvmfEntry } from '../../abi/ovmf-table.js';
import type { RawClient } from './raw-client.js';

export const MSG = { KEY_REQ: 3, KEY_RSP: 4, REPORT_REQ: 5, REPORT_RSP: 6 } as const;

const iv = (seqno: bigint) => {
  const b = Buffer.alloc(12);
  b.writeBigUInt64LE(seqno);
  return b;
};

/** A sealed request, base64 as guest-snp-message takes it. */
export function sealSnpMessage(key: Uint8Array, m: { seqno: bigint; type: number; vmpck: number; payload: Buffer }): string {
  const h = Buffer.alloc(96);
  h.writeBigUInt64LE(m.seqno, 32);
  h[48] = 1; // AES-256-GCM
  h[49] = 1; // header version
  h.writeUInt16LE(96, 50);
  h[52] = m.type;
  h[53] = 1;
  h.writeUInt16LE(m.payload.length, 54);
  h[60] = m.vmpck;
  const out = gcm(key, iv(m.seqno), h.subarray(48)).encrypt(m.payload);
  Buffer.from(out.subarray(out.length - 16)).copy(h, 0);
  return Buffer.concat([h, out.subarray(0, out.length - 16)]).toString('base64');
}

/** Opens a response (base64): its header fields and decrypted payload; throws if the tag is wrong. */
export function openSnpMessage(key: Uint8Array, b64: string): { seqno: bigint; type: number; vmpck: number; payload: Buffer } {
  const m = Buffer.from(b64, 'base64');
  const seqno = m.readBigUInt64LE(32);
  const size = m.readUInt16LE(54);
  const payload = Buffer.from(gcm(key, iv(seqno), m.subarray(48, 96)).decrypt(Buffer.concat([m.subarray(96, 96 + size), m.subarray(0, 16)])));
  return { seqno, type: m[52]!, vmpck: m[60]!, payload };
}

/** MSG_REPORT_REQ's payload (snp_report_req): REPORT_DATA, VMPL, key select. */
export function reportRequest(reportData: Buffer, vmpl: number): Buffer {
  const p = Buffer.alloc(96);
  reportData.copy(p, 0, 0, 64);
  p.writeUInt32LE(vmpl, 64);
  return p;
}

/** MSG_REPORT_RSP's payload: status, then the report (its VMPL is the u32 at 0x30). */
export function reportResponse(payload: Buffer): { status: number; report: Buffer } {
  return { status: payload.readUInt32LE(0), report: payload.subarray(32, 32 + payload.readUInt32LE(4)) };
}

/** The guest's four VMPCKs, read through its agent from the secrets page OVMF's metadata names. */
export async function readVmpcks(agent: RawClient, firmware: string): Promise<Buffer[]> {
  const image = readFileSync(firmware);
  const secrets = parseSevMetadata(image, (parseOvmfTable(image) as { entries: OvmfEntry[] }).entries).find((s) => s.type === SectionType.SNP_SECRETS)!;
  const page = Buffer.from((await agent.execute('guest-memory-read', { gpa: secrets.gpa, size: 4096 })).return.data, 'base64');
  return [0, 1, 2, 3].map((i) => Buffer.from(page.subarray(32 + 32 * i, 64 + 32 * i)));
}
