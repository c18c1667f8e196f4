/**
 * The EFI secret table a guest owner injects (the EFI secret area of Linux drivers/virt/coco/efi_secret): a builder (for the
 * toolkit and tests) and the parser the guest agent uses, modelled on Linux's efi_secret.
 */
import { guidFromBytes, guidToBytes } from './guid.js';

export const EFI_SECRET_TABLE_GUID = '1e74f542-71dd-4d66-963e-ef4287ff173b';
const HEADER = 20;
const MAX_ENTRIES = 64;

export interface SecretEntry {
  guid: string;
  data: Buffer;
}

/** Header ‖ entries, zero-padded to a multiple of 16 bytes. */
export function buildSecretTable(entries: readonly SecretEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(HEADER + e.data.length);
    parts.push(guidToBytes(e.guid), len, e.data);
  }
  const body = Buffer.concat(parts);
  const total = Buffer.alloc(4);
  total.writeUInt32LE(HEADER + body.length);
  const table = Buffer.concat([guidToBytes(EFI_SECRET_TABLE_GUID), total, body]);
  const padded = Buffer.alloc(Math.ceil(table.length / 16) * 16);
  table.copy(padded);
  return padded;
}

/** Entries as efi_secret lists them; [] when the area holds no valid table. */
export function parseSecretTable(area: Uint8Array): SecretEntry[] {
  const b = Buffer.from(area);
  if (b.length < HEADER || guidFromBytes(b.subarray(0, 16)) !== EFI_SECRET_TABLE_GUID) return [];
  const total = b.readUInt32LE(16);
  if (total < HEADER || total > b.length) return [];
  const out: SecretEntry[] = [];
  let at = HEADER;
  for (let n = 0; n < MAX_ENTRIES && total - at >= HEADER; n++) {
    const len = b.readUInt32LE(at + 16);
    if (len < HEADER || len > total - at) break;
    const guid = guidFromBytes(b.subarray(at, at + 16));
    if (guid !== '00000000-0000-0000-0000-000000000000') out.push({ guid, data: Buffer.from(b.subarray(at + HEADER, at + len)) });
    at += len;
  }
  return out;
}
