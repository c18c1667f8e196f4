/**
 * The guest owner's prediction of an SNP launch digest (what the report's MEASUREMENT must
 * be) and of the ID block that vouches for it: the same page replay the firmware performs —
 * the flash, OVMF's SNP metadata sections, the kernel-hashes page, one VMSA per vCPU — from
 * the one codec in abi/ (pinned by vectors N1–N4).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { SnpLaunchDigest, SnpPageType } from '../../abi/snp/launch-digest.js';
import { parseSevMetadata, SectionType, sectionPageType } from '../../abi/snp/ovmf-metadata.js';
import { findEntry, parseOvmfTable, readBaseSize, SEV_HASH_TABLE_BLOCK_GUID } from '../../abi/ovmf-table.js';
import { buildKernelHashesTable } from '../../abi/kernel-hashes.js';
import { buildVmsas, CPU_MODELS, esResetEip, SevFeature } from '../../abi/vmsa.js';
import { buildIdAuth, encodeIdBlock } from '../../abi/snp/id-block.js';

export interface SnpMeasureOptions {
  vcpus: number;
  vcpuType: string;
  kernel?: { kernel: Uint8Array; initrd?: Uint8Array | null; append?: string | null };
  /** SEV_FEATURES besides SNPActive (DebugSwap 0x20, SecureTSC 0x200). */
  guestFeatures?: number;
}

export function snpLaunchDigest(firmware: Uint8Array, o: SnpMeasureOptions): Buffer {
  const t = parseOvmfTable(firmware);
  const entries = 'entries' in t ? t.entries : [];
  const ld = new SnpLaunchDigest().pages(SnpPageType.NORMAL, 2 ** 32 - firmware.length, firmware);
  const sections = parseSevMetadata(firmware, entries);
  if (o.kernel && !sections.some((s) => s.type === SectionType.SNP_KERNEL_HASHES)) throw new Error('the firmware has no SNP kernel-hashes section');
  for (const s of sections) {
    const type = sectionPageType(s.type, !!o.kernel);
    if (s.type === SectionType.SNP_KERNEL_HASHES && o.kernel) {
      const area = readBaseSize(findEntry(entries, SEV_HASH_TABLE_BLOCK_GUID));
      if (!area) throw new Error('the firmware has no hashes table GUID');
      const page = Buffer.alloc(s.size);
      buildKernelHashesTable(o.kernel.kernel, o.kernel.initrd ?? null, o.kernel.append ?? null).copy(page, area.base - s.gpa);
      ld.pages(type, s.gpa, page);
    } else ld.pages(type, s.gpa, null, s.size);
  }
  const signature = CPU_MODELS[o.vcpuType];
  if (signature === undefined) throw new Error(`unknown vCPU type '${o.vcpuType}'`);
  const apEip = esResetEip(entries);
  if (apEip === undefined && o.vcpus > 1) throw new Error('the firmware has no SEV-ES reset block: its APs cannot start');
  for (const p of buildVmsas(o.vcpus, apEip ?? 0, { vcpuSignature: signature, sevFeatures: SevFeature.SNP_ACTIVE | (o.guestFeatures ?? 0), fpuInit: true })) ld.vmsa(p);
  return ld.digest;
}

export interface IdBlockOptions {
  measurement: Uint8Array;
  policy: bigint;
  idKey: KeyObject | string;
  authorKey?: KeyObject | string;
  familyId?: Uint8Array;
  imageId?: Uint8Array;
  guestSvn?: number;
}

/** The ID block and ID auth, base64, ready for sev-snp-guest's `id-block` and `id-auth`. */
export function buildSnpIdBlock(o: IdBlockOptions): { idBlock: string; idAuth: string } {
  const key = (k: KeyObject | string) => (typeof k === 'string' ? createPrivateKey(k) : k);
  const block = encodeIdBlock({
    ld: Buffer.from(o.measurement), familyId: Buffer.from(o.familyId ?? Buffer.alloc(16)), imageId: Buffer.from(o.imageId ?? Buffer.alloc(16)),
    version: 1, guestSvn: o.guestSvn ?? 0, policy: o.policy,
  });
  const auth = buildIdAuth(block, key(o.idKey), o.authorKey ? key(o.authorKey) : undefined);
  return { idBlock: block.toString('base64'), idAuth: auth.toString('base64') };
}
