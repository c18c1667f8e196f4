/**
 * The small built-in firmware image used when a guest names none: deterministic bytes
 * with an OVMF-style footer GUID table whose SEV secret block points into guest RAM
 * (like OVMF's AmdSev build), so the whole launch-secret flow works out of the box. Here
 * because both sides need its bytes: sevd maps it, a guest owner hashes it to predict
 * the launch digest.
 */
import { createHash } from 'node:crypto';
import {
  buildOvmfTable, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_BLOCK_GUID, SEV_SECRET_BLOCK_GUID,
} from './ovmf-table.js';

export const BUILTIN_FIRMWARE_SIZE = 256 * 1024;
export const BUILTIN_SECRET_AREA = { base: 0x80c000, size: 0xc00 };
export const BUILTIN_HASH_AREA = { base: 0x80cc00, size: 0x400 };

function u32s(...v: number[]): Buffer {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32LE(x, 4 * i));
  return b;
}

export function buildBuiltinFirmware(): Buffer {
  const img = Buffer.alloc(BUILTIN_FIRMWARE_SIZE);
  // Filler that is not all zeros, so that ciphertext and plaintext are easy to tell apart.
  for (let off = 0, i = 0; off < img.length - 4096; off += 32, i++) {
    createHash('sha256').update(`sevd-builtin-firmware:${i}`).digest().copy(img, off);
  }
  img.write('sevd built-in firmware v1', 0, 'ascii');
  const table = buildOvmfTable([
    { guid: SEV_ES_RESET_BLOCK_GUID, data: u32s(0x80b004) },
    { guid: SEV_SECRET_BLOCK_GUID, data: u32s(BUILTIN_SECRET_AREA.base, BUILTIN_SECRET_AREA.size) },
    { guid: SEV_HASH_TABLE_BLOCK_GUID, data: u32s(BUILTIN_HASH_AREA.base, BUILTIN_HASH_AREA.size) },
  ]);
  img.fill(0, img.length - 4096);
  table.copy(img, img.length - 0x20 - table.length);
  // x86 reset vector slot (jmp $): the last 16 bytes.
  Buffer.from([0xeb, 0xfe]).copy(img, img.length - 16);
  return img;
}
