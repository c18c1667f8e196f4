/**
 * OVMF's SEV metadata (footer GUID dc886566-984a-4798-a75e-5585a7bf67cc; sev-snp-measure
 * ovmf.py): the pages an SNP launch must add besides the flash — "ASEV" header, then
 * {gpa, size, type} descriptors — and the SNP launch page type each section gets.
 */
import { findEntry, type OvmfEntry } from '../ovmf-table.js';
import { SnpPageType, type SnpPageTypeCode } from './launch-digest.js';

export const OVMF_SEV_METADATA_GUID = 'dc886566-984a-4798-a75e-5585a7bf67cc';

export const SectionType = { SNP_SEC_MEM: 1, SNP_SECRETS: 2, CPUID: 3, SVSM_CAA: 4, SNP_KERNEL_HASHES: 0x10 } as const;

export interface MetadataSection {
  gpa: number;
  size: number;
  type: number;
}

/** The sections in table order, or [] when the image has no SNP metadata. */
export function parseSevMetadata(image: Uint8Array, entries: readonly OvmfEntry[]): MetadataSection[] {
  const e = findEntry(entries, OVMF_SEV_METADATA_GUID);
  if (!e || e.data.length < 4) return [];
  const start = image.length - e.data.readUInt32LE(0);
  const b = Buffer.from(image.buffer, image.byteOffset, image.length);
  if (start < 0 || b.toString('latin1', start, start + 4) !== 'ASEV') throw new Error('OVMF SEV metadata: bad signature');
  const count = b.readUInt32LE(start + 12);
  return Array.from({ length: count }, (_, i) => {
    const at = start + 16 + 12 * i;
    return { gpa: b.readUInt32LE(at), size: b.readUInt32LE(at + 4), type: b.readUInt32LE(at + 8) };
  });
}

/** The page type QEMU gives a section (with measured kernel hashes, their section is NORMAL). */
export function sectionPageType(type: number, kernelHashes: boolean): SnpPageTypeCode {
  switch (type) {
    case SectionType.SNP_SECRETS: return SnpPageType.SECRETS;
    case SectionType.CPUID: return SnpPageType.CPUID;
    case SectionType.SNP_KERNEL_HASHES: return kernelHashes ? SnpPageType.NORMAL : SnpPageType.ZERO;
    default: return SnpPageType.ZERO;
  }
}
