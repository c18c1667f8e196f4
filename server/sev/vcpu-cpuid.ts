/**
 * The vCPU's CPUID as QEMU hands it to KVM (KVM_SET_CPUID2) and reads it back for the SNP
 * CPUID page (target/i386/sev.c: snp_launch_update_cpuid): the basic and extended leaves
 * of an EPYC model, with its signature, its AVX-512 (Genoa's Zen 4 models) and the SEV
 * leaf. Leaf 0xD subleaves 0 and 1 carry the XSAVE size for XCR0 = 1, as QEMU writes them.
 */
import { cpuidFunction, CpuidBit, type CpuidFunction } from '../../abi/snp/cpuid.js';

/** "AuthenticAMD" in EBX, EDX, ECX. */
const VENDOR = { ebx: 0x68747541, edx: 0x69746e65, ecx: 0x444d4163 };
// CPUID(1) ECX: SSE3 PCLMULQDQ SSSE3 FMA CX16 SSE4.1 SSE4.2 MOVBE POPCNT AES XSAVE AVX F16C RDRAND HYPERVISOR.
const LEAF1_ECX = 0xf6d83203;
// CPUID(1) EDX: FPU … SSE2 HTT (the EPYC models' standard set).
const LEAF1_EDX = 0x178bfbff;
// CPUID(7,0) EBX: FSGSBASE BMI1 AVX2 SMEP BMI2 ERMS INVPCID RDSEED ADX SMAP CLFLUSHOPT CLWB SHA.
const LEAF7_EBX = 0x219c07a9;

export interface VcpuModel {
  signature: number;
  avx512: boolean;
  smp: number;
  cbitpos: number;
  reducedPhysBits: number;
}

export function vcpuCpuid(m: VcpuModel): CpuidFunction[] {
  const xsaveMax = m.avx512 ? 0xa80 : 0x340;
  const xsave = (sub: number, eax: number, ecx: number): CpuidFunction => ({ ...cpuidFunction(0xd, sub, { eax, ebx: 0x240, ecx, edx: 0 }), xcr0In: 1n });
  return [
    cpuidFunction(0, 0, { eax: 0xd, ...VENDOR }),
    cpuidFunction(1, 0, { eax: m.signature, ebx: 0x800 | ((m.smp & 0xff) << 16), ecx: LEAF1_ECX, edx: LEAF1_EDX }),
    cpuidFunction(7, 0, { eax: 0, ebx: LEAF7_EBX | (m.avx512 ? CpuidBit.LEAF7_EBX_AVX512 : 0), ecx: 0, edx: 0 }),
    xsave(0, m.avx512 ? 0xe7 : 0x7, xsaveMax),
    xsave(1, 0xf, 0),
    cpuidFunction(0x80000000, 0, { eax: 0x80000021, ...VENDOR }),
    cpuidFunction(0x80000001, 0, { eax: m.signature, ebx: 0, ecx: 0x000003f3, edx: 0x2fd3fbff }),
    cpuidFunction(0x8000001f, 0, { eax: CpuidBit.SEV | CpuidBit.SEV_ES | CpuidBit.SEV_SNP, ebx: (m.cbitpos & 0x3f) | ((m.reducedPhysBits & 0x3f) << 6), ecx: 0, edx: 0 }),
  ];
}
