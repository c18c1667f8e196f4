/**
 * The SEV-ES/SNP VMSA: one 4 KiB page per vCPU holding its initial register state as KVM
 * and QEMU give it at reset (Linux Documentation/virt/kvm/x86/amd-memory-encryption.rst, KVM_SEV_LAUNCH_UPDATE_VMSA; the save-area layout is AMD APM vol. 2
 * table B-4, Linux's `struct sev_es_save_area`). The firmware measures these pages, so a
 * guest owner who predicts the launch digest must build byte-identical ones: both sides
 * use this builder.
 */
import { SEV_ES_RESET_BLOCK_GUID, findEntry, type OvmfEntry } from './ovmf-table.js';

export const VMSA_SIZE = 4096;
/** Where every vCPU starts at reset; the BSP keeps it, APs of an ES guest get OVMF's. */
export const BSP_RESET_EIP = 0xfffffff0;

/** Byte offsets of the fields sevd sets (everything else is zero). */
const OFF = {
  es: 0x000, cs: 0x010, ss: 0x020, ds: 0x030, fs: 0x040, gs: 0x050, gdtr: 0x060, ldtr: 0x070, idtr: 0x080, tr: 0x090,
  efer: 0x0d0, cr4: 0x148, cr0: 0x158, dr7: 0x160, dr6: 0x168, rflags: 0x170, rip: 0x178,
  gPat: 0x268, rdx: 0x310, sevFeatures: 0x3b0, xcr0: 0x3e8, mxcsr: 0x408, x87Fcw: 0x410,
} as const;

/** SEV_FEATURES bits (APM vol. 2 table 15-34) that sevd knows. */
export const SevFeature = { SNP_ACTIVE: 1 << 0, DEBUG_SWAP: 1 << 5, SECURE_TSC: 1 << 9 } as const;

export interface VmsaParams {
  /** The reset address: BSP_RESET_EIP, or an AP's from the firmware's reset block. */
  eip: number;
  /** The vCPU's CPUID(1).EAX signature; KVM puts it in RDX at reset. */
  vcpuSignature: number;
  sevFeatures: number;
  /**
   * KVM_SEV_INIT2 syncs the x87/SSE control words into the VMSA (FCW 0x37f, MXCSR 0x1f80);
   * the legacy KVM_SEV_INIT / KVM_SEV_ES_INIT left them zero, which changes the digest.
   */
  fpuInit: boolean;
}

function segment(b: Buffer, at: number, selector: number, attrib: number, limit: number, base: number): void {
  b.writeUInt16LE(selector, at);
  b.writeUInt16LE(attrib, at + 2);
  b.writeUInt32LE(limit, at + 4);
  b.writeBigUInt64LE(BigInt(base), at + 8);
}

const u64 = (b: Buffer, at: number, v: number | bigint) => b.writeBigUInt64LE(BigInt(v), at);

/** One vCPU's VMSA page, in plaintext (the firmware encrypts it). */
export function buildVmsa(p: VmsaParams): Buffer {
  const b = Buffer.alloc(VMSA_SIZE);
  const data = 0x93; // present, writable data segment, accessed
  segment(b, OFF.es, 0, data, 0xffff, 0);
  segment(b, OFF.cs, 0xf000, 0x9b, 0xffff, (p.eip & 0xffff0000) >>> 0);
  segment(b, OFF.ss, 0, data, 0xffff, 0);
  segment(b, OFF.ds, 0, data, 0xffff, 0);
  segment(b, OFF.fs, 0, data, 0xffff, 0);
  segment(b, OFF.gs, 0, data, 0xffff, 0);
  segment(b, OFF.gdtr, 0, 0, 0xffff, 0);
  segment(b, OFF.ldtr, 0, 0x82, 0xffff, 0);
  segment(b, OFF.idtr, 0, 0, 0xffff, 0);
  segment(b, OFF.tr, 0, 0x8b, 0xffff, 0);
  u64(b, OFF.efer, 0x1000); // EFER.SVME, set by KVM
  u64(b, OFF.cr4, 0x40); // CR4.MCE
  u64(b, OFF.cr0, 0x10); // CR0.ET
  u64(b, OFF.dr7, 0x400);
  u64(b, OFF.dr6, 0xffff0ff0);
  u64(b, OFF.rflags, 0x2);
  u64(b, OFF.rip, p.eip & 0xffff);
  u64(b, OFF.gPat, 0x0007040600070406n);
  u64(b, OFF.rdx, p.vcpuSignature >>> 0);
  u64(b, OFF.sevFeatures, p.sevFeatures);
  u64(b, OFF.xcr0, 0x1);
  if (p.fpuInit) {
    b.writeUInt32LE(0x1f80, OFF.mxcsr);
    b.writeUInt16LE(0x37f, OFF.x87Fcw);
  }
  return b;
}

/** The VMSA pages of a guest's vCPUs in vCPU order: the BSP's, then the APs'. */
export function buildVmsas(vcpus: number, apEip: number, p: Omit<VmsaParams, 'eip'>): Buffer[] {
  return Array.from({ length: vcpus }, (_, i) => buildVmsa({ ...p, eip: i === 0 ? BSP_RESET_EIP : apEip }));
}

/** The AP reset address from OVMF's SEV-ES reset block (a u32 EIP), or undefined. */
export function esResetEip(entries: readonly OvmfEntry[]): number | undefined {
  const e = findEntry(entries, SEV_ES_RESET_BLOCK_GUID);
  if (!e || e.data.length < 4) return undefined;
  const eip = e.data.readUInt32LE(0);
  return eip === 0 ? undefined : eip;
}

/** CPUID(1).EAX from family, model and stepping (AMD CPUID specification #25481). */
export function cpuSignature(family: number, model: number, stepping: number): number {
  const famLow = family > 0xf ? 0xf : family;
  const famHigh = family > 0xf ? (family - 0xf) & 0xff : 0;
  return ((famHigh << 20) | (((model >> 4) & 0xf) << 16) | (famLow << 8) | ((model & 0xf) << 4) | (stepping & 0xf)) >>> 0;
}

/** The inverse of cpuSignature: family, model and stepping of a CPUID(1).EAX. */
export function signatureFms(sig: number): { family: number; model: number; stepping: number } {
  const baseFamily = (sig >> 8) & 0xf;
  const family = baseFamily === 0xf ? baseFamily + ((sig >> 20) & 0xff) : baseFamily;
  const model = baseFamily === 0xf ? (((sig >> 16) & 0xf) << 4) | ((sig >> 4) & 0xf) : (sig >> 4) & 0xf;
  return { family, model, stepping: sig & 0xf };
}

const EPYC = cpuSignature(23, 1, 2);
const ROME = cpuSignature(23, 49, 0);
const MILAN = cpuSignature(25, 1, 1);
// QEMU's EPYC-Genoa is family 25 model 17 stepping 0 (vector N3 is computed with it;
// 0xa10f11 is a Genoa B1 chip's own HOST_SIGNATURE).
const GENOA = cpuSignature(25, 17, 0);
const GENOA_B1 = cpuSignature(25, 17, 1);
const TURIN = cpuSignature(26, 0, 0);

/** QEMU's EPYC CPU models (builtin_x86_defs) and their signatures. */
export const CPU_MODELS: Readonly<Record<string, number>> = {
  EPYC, 'EPYC-v1': EPYC, 'EPYC-v2': EPYC, 'EPYC-v3': EPYC, 'EPYC-v4': EPYC, 'EPYC-IBPB': EPYC,
  'EPYC-Rome': ROME, 'EPYC-Rome-v1': ROME, 'EPYC-Rome-v2': ROME, 'EPYC-Rome-v3': ROME, 'EPYC-Rome-v4': ROME, 'EPYC-Rome-v5': ROME,
  'EPYC-Milan': MILAN, 'EPYC-Milan-v1': MILAN, 'EPYC-Milan-v2': MILAN, 'EPYC-Milan-v3': MILAN,
  'EPYC-Genoa': GENOA, 'EPYC-Genoa-v1': GENOA, 'EPYC-Genoa-v2': GENOA,
  'EPYC-Turin': TURIN, 'EPYC-Turin-v1': TURIN,
};

/** QEMU models with AVX-512 (Genoa's Zen 4 and later); `host` has it on those chips. */
export function cpuModelHasAvx512(model: string, hostGeneration: string): boolean {
  if (model === 'host') return hostGeneration === 'genoa' || hostGeneration === 'turin';
  return model.startsWith('EPYC-Genoa') || model.startsWith('EPYC-Turin');
}

/** `cpu: host`: the chip's own signature per generation. */
export const HOST_SIGNATURE: Readonly<Record<string, number>> = { naples: EPYC, rome: ROME, milan: MILAN, genoa: GENOA_B1, turin: TURIN };
