/**
 * The OVMF footer GUID table (QEMU hw/i386/pc_sysfw_ovmf.c): how a VMM finds the SEV
 * secret area, the kernel-hashes area and the reset block inside a firmware image.
 * A parser (read backwards from the footer) and a serializer for the built-in image.
 */
import { guidFromBytes, guidToBytes } from './guid.js';

export const OVMF_TABLE_FOOTER_GUID = '96b582de-1fb2-45f7-baea-a366c55a082d';
export const SEV_SECRET_BLOCK_GUID = '4c2eb361-7d9b-4cc3-8081-127c90d3d294';
export const SEV_HASH_TABLE_BLOCK_GUID = '7255371f-3a3b-4b04-927b-1da6efa8d454';
export const SEV_ES_RESET_BLOCK_GUID = '00f771de-1a7e-4fcb-890e-68c77e2fb44e';

export interface OvmfEntry {
  guid: string;
  data: Buffer;
}

/** Where the footer GUID sits: the 16 bytes ending 0x20 before the end of the image. */
const FOOTER_OFFSET_FROM_END = 0x30;
const ENTRY_OVERHEAD = 18;

export type OvmfTableResult = { entries: OvmfEntry[] } | { error: string };

export function parseOvmfTable(image: Uint8Array): OvmfTableResult {
  if (image.length < FOOTER_OFFSET_FROM_END + 2) return { entries: [] };
  const footerAt = image.length - FOOTER_OFFSET_FROM_END;
  if (guidFromBytes(image.subarray(footerAt, footerAt + 16)) !== OVMF_TABLE_FOOTER_GUID) return { entries: [] };
  const total = image[footerAt - 2]! | (image[footerAt - 1]! << 8);
  const tableStart = footerAt + 16 - total;
  if (total < ENTRY_OVERHEAD || tableStart < 0) return { error: `OVMF table length ${total} is invalid` };
  const entries: OvmfEntry[] = [];
  let end = footerAt - 2; // entries end here (exclusive), read backwards
  while (end > tableStart) {
    if (end - ENTRY_OVERHEAD < tableStart) return { error: 'OVMF table entry runs past the table start' };
    const guid = guidFromBytes(image.subarray(end - 16, end));
    const len = image[end - 18]! | (image[end - 17]! << 8);
    if (len < ENTRY_OVERHEAD || end - len < tableStart) return { error: `OVMF table entry ${guid} has invalid length ${len}` };
    entries.push({ guid, data: Buffer.from(image.subarray(end - len, end - ENTRY_OVERHEAD)) });
    end -= len;
  }
  return { entries };
}

export function findEntry(entries: readonly OvmfEntry[], guid: string): OvmfEntry | undefined {
  return entries.find((e) => e.guid === guid);
}

/** {base u32, size u32} blocks (secret area, hash table). */
export function readBaseSize(e: OvmfEntry | undefined): { base: number; size: number } | undefined {
  if (!e || e.data.length < 8) return undefined;
  return { base: e.data.readUInt32LE(0), size: e.data.readUInt32LE(4) };
}

/** Serializes entries into the bytes that end 0x20 before the image end (table + footer). */
export function buildOvmfTable(entries: readonly OvmfEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const len = Buffer.alloc(2);
    len.writeUInt16LE(e.data.length + ENTRY_OVERHEAD);
    parts.push(e.data, len, guidToBytes(e.guid));
  }
  const body = Buffer.concat(parts);
  const total = Buffer.alloc(2);
  total.writeUInt16LE(body.length + ENTRY_OVERHEAD);
  return Buffer.concat([body, total, guidToBytes(OVMF_TABLE_FOOTER_GUID)]);
}
