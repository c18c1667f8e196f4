/**
 * The SNP TCB version (a u64, SNP ABI 56860, TCB_VERSION and SNP_PLATFORM_STATUS): the security patch levels of the boot
 * loader, TEE, SNP firmware and microcode (and, on Turin, the FMC), each a byte, at
 * positions that differ by product.
 */
export type SnpProduct = 'Milan' | 'Genoa' | 'Turin';

export interface Tcb {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** Turin only. */
  fmc?: number | null;
}

const LAYOUT: Record<SnpProduct, Partial<Record<keyof Tcb, number>>> = {
  Milan: { bootloader: 0, tee: 1, snp: 6, microcode: 7 },
  Genoa: { bootloader: 0, tee: 1, snp: 6, microcode: 7 },
  Turin: { fmc: 0, bootloader: 1, tee: 2, snp: 3, microcode: 7 },
};

const PARTS = ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const;

export function encodeTcb(product: SnpProduct, t: Tcb): bigint {
  let v = 0n;
  for (const part of PARTS) {
    const at = LAYOUT[product][part];
    if (at === undefined) continue;
    const b = (t[part] ?? 0) as number;
    if (!Number.isInteger(b) || b < 0 || b > 255) throw new RangeError(`TCB ${part} must be 0-255, got ${b}`);
    v |= BigInt(b) << BigInt(8 * at);
  }
  return v;
}

export function decodeTcb(product: SnpProduct, v: bigint): Tcb {
  const byte = (at: number) => Number((v >> BigInt(8 * at)) & 0xffn);
  const l = LAYOUT[product];
  return {
    bootloader: byte(l.bootloader!), tee: byte(l.tee!), snp: byte(l.snp!), microcode: byte(l.microcode!),
    ...(l.fmc !== undefined ? { fmc: byte(l.fmc) } : {}),
  };
}

/** Every part of `a` at least the same part of `b` (TCBs are ordered part by part, not as numbers). */
export function tcbAtLeast(product: SnpProduct, a: bigint, b: bigint): boolean {
  const x = decodeTcb(product, a);
  const y = decodeTcb(product, b);
  return PARTS.every((p) => ((x[p] ?? 0) as number) >= ((y[p] ?? 0) as number));
}
