/**
 * The SEV kernel-hashes table of measured direct boot (QEMU target/i386/sev.c, SevHashTable, QEMU
 * kernel-hashes=on): SHA-256 of command line (with its NUL), initrd and kernel, padded to 176 bytes.
 */
import { createHash } from 'node:crypto';
import { guidToBytes } from './guid.js';

export const HASH_TABLE_GUID = '9438d606-4f22-4cc9-b479-a793d411fd21';
const CMDLINE_GUID = '97d02dd8-bd20-4c94-aa78-e7714d36ab2a';
const INITRD_GUID = '44baf731-3a2f-4bd7-9af1-41e29169781d';
const KERNEL_GUID = '4de79437-abd2-427f-b835-d5b172d2045b';
export const PADDED_TABLE_SIZE = 176;

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();

function entry(guid: string, hash: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16LE(50);
  return Buffer.concat([guidToBytes(guid), len, hash]);
}

export function buildKernelHashesTable(kernel: Uint8Array, initrd: Uint8Array | null, cmdline: string | null): Buffer {
  const cmd = cmdline === null ? Buffer.from([0]) : Buffer.concat([Buffer.from(cmdline, 'utf8'), Buffer.from([0])]);
  const len = Buffer.alloc(2);
  len.writeUInt16LE(18 + 3 * 50);
  const table = Buffer.concat([
    guidToBytes(HASH_TABLE_GUID), len,
    entry(CMDLINE_GUID, sha(cmd)), entry(INITRD_GUID, sha(initrd ?? new Uint8Array(0))), entry(KERNEL_GUID, sha(kernel)),
  ]);
  const padded = Buffer.alloc(PADDED_TABLE_SIZE);
  table.copy(padded);
  return padded;
}
