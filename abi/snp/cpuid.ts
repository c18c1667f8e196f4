/**
 * The SNP CPUID page (linux `struct snp_cpuid_table`, SNP ABI §8.1): a u32 count and 12
 * reserved bytes, then up to 64 functions of 48 bytes (EAX_IN, ECX_IN, XCR0_IN u64,
 * XSS_IN u64, EAX, EBX, ECX, EDX, reserved u64). The VMM fills it from the vCPU model; the
 * firmware checks it at SNP_LAUNCH_UPDATE (page type CPUID) and, if an entry asks for more
 * than the chip allows, writes the corrected page back and fails; the guest trusts it.
 */
export const SNP_CPUID_COUNT_MAX = 64;
export const CPUID_HEADER_SIZE = 16;
export const CPUID_FUNCTION_SIZE = 48;

export interface CpuidFunction {
  eaxIn: number;
  ecxIn: number;
  xcr0In: bigint;
  xssIn: bigint;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export function cpuidFunction(eaxIn: number, ecxIn: number, regs: { eax: number; ebx: number; ecx: number; edx: number }): CpuidFunction {
  return { eaxIn, ecxIn, xcr0In: 0n, xssIn: 0n, eax: regs.eax >>> 0, ebx: regs.ebx >>> 0, ecx: regs.ecx >>> 0, edx: regs.edx >>> 0 };
}

export function encodeCpuidPage(fns: readonly CpuidFunction[], pageSize = 4096): Buffer {
  if (fns.length > SNP_CPUID_COUNT_MAX) throw new RangeError(`CPUID entry count (${fns.length}) exceeds max (${SNP_CPUID_COUNT_MAX})`);
  const p = Buffer.alloc(pageSize);
  p.writeUInt32LE(fns.length, 0);
  fns.forEach((f, i) => {
    const o = CPUID_HEADER_SIZE + i * CPUID_FUNCTION_SIZE;
    p.writeUInt32LE(f.eaxIn, o);
    p.writeUInt32LE(f.ecxIn, o + 4);
    p.writeBigUInt64LE(f.xcr0In, o + 8);
    p.writeBigUInt64LE(f.xssIn, o + 16);
    p.writeUInt32LE(f.eax, o + 24);
    p.writeUInt32LE(f.ebx, o + 28);
    p.writeUInt32LE(f.ecx, o + 32);
    p.writeUInt32LE(f.edx, o + 36);
  });
  return p;
}

/** The count as written (may exceed the maximum) and the functions that fit the page format. */
export function decodeCpuidPage(page: Uint8Array): { count: number; functions: CpuidFunction[] } {
  const b = Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  const count = b.readUInt32LE(0);
  const functions: CpuidFunction[] = [];
  for (let i = 0; i < Math.min(count, SNP_CPUID_COUNT_MAX); i++) {
    const o = CPUID_HEADER_SIZE + i * CPUID_FUNCTION_SIZE;
    functions.push({
      eaxIn: b.readUInt32LE(o), ecxIn: b.readUInt32LE(o + 4), xcr0In: b.readBigUInt64LE(o + 8), xssIn: b.readBigUInt64LE(o + 16),
      eax: b.readUInt32LE(o + 24), ebx: b.readUInt32LE(o + 28), ecx: b.readUInt32LE(o + 32), edx: b.readUInt32LE(o + 36),
    });
  }
  return { count, functions };
}

export function sameCpuidFunction(a: CpuidFunction, b: CpuidFunction): boolean {
  return a.eaxIn === b.eaxIn && a.ecxIn === b.ecxIn && a.xcr0In === b.xcr0In && a.xssIn === b.xssIn && a.eax === b.eax && a.ebx === b.ebx && a.ecx === b.ecx && a.edx === b.edx;
}

const hex = (n: number, width = 0) => `0x${n.toString(16).padStart(width, '0')}`;

/**
 * QEMU's report of a refused CPUID page (target/i386/sev.c): the page it wrote against the
 * one the firmware wrote back, entry by entry.
 */
export function cpuidMismatchLines(provided: Uint8Array, expected: Uint8Array): string[] {
  const old = decodeCpuidPage(provided);
  const now = decodeCpuidPage(expected);
  if (old.count !== now.count) return [`SEV-SNP: CPUID validation failed due to count mismatch, provided: ${old.count}, expected: ${now.count}`];
  const lines: string[] = [];
  old.functions.forEach((o, i) => {
    const n = now.functions[i]!;
    if (sameCpuidFunction(o, n)) return;
    lines.push(`SEV-SNP: CPUID validation failed for function ${hex(o.eaxIn)}, index: ${hex(o.ecxIn)}, ` +
      `provided: eax:${hex(o.eax, 8)}, ebx: ${hex(o.ebx, 8)}, ecx: ${hex(o.ecx, 8)}, edx: ${hex(o.edx, 8)}, ` +
      `expected: eax:${hex(n.eax, 8)}, ebx: ${hex(n.ebx, 8)}, ecx: ${hex(n.ecx, 8)}, edx: ${hex(n.edx, 8)}`);
  });
  return lines;
}

/** The CPUID bits SNP firmware and VMM both reason about (AMD APM vol. 3, appendix E). */
export const CpuidBit = {
  /** Leaf 7 subleaf 0 EBX: AVX512F, DQ, IFMA, CD, BW, VL (Zen 4 and later). */
  LEAF7_EBX_AVX512: ((1 << 16) | (1 << 17) | (1 << 21) | (1 << 28) | (1 << 30) | (1 << 31)) >>> 0,
  /** Leaf 0x8000001F EAX. */
  SME: 1 << 0, SEV: 1 << 1, PAGE_FLUSH: 1 << 2, SEV_ES: 1 << 3, SEV_SNP: 1 << 4, VMPL: 1 << 5,
} as const;
