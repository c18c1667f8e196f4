/**
 * Guest physical layout of a q35-style machine: RAM below 4 GiB up to the PCI hole,
 * the rest above 4 GiB, and the firmware flash ending exactly at 4 GiB (as QEMU maps OVMF).
 */
import type { Region } from '../memory/sparse-memory.js';

export const FOUR_GIB = 0x1_0000_0000;
/** q35 keeps RAM below 2 GiB when the guest has 2.75 GiB or more (hw/i386/pc_q35.c). */
const LOWMEM_SPLIT = 0xb000_0000;
const LOWMEM_MAX = 0x8000_0000;

/**
 * SEV-ES VMSAs: KVM keeps them in host pages outside guest RAM; sevd gives them frames of
 * their own, far above RAM, so that the host's view (xp, memsave) can show their
 * ciphertext. Not RAM: guest software and the guest agent never reach them.
 */
export const VMSA_REGION = 'sev.vmsa';
export const VMSA_REGION_BASE = 0xff_fff0_0000;
/** Guest RAM must end below the VMSA frames. */
export const MAX_RAM_END = VMSA_REGION_BASE;

export function machineLayout(memBytes: number, firmwareBytes: number, vmsaPages = 0): Region[] {
  const low = memBytes >= LOWMEM_SPLIT ? LOWMEM_MAX : memBytes;
  const regions: Region[] = [{ name: 'pc.ram', base: 0, size: low }];
  if (memBytes > low) regions.push({ name: 'pc.ram-above-4g', base: FOUR_GIB, size: memBytes - low });
  if (firmwareBytes > 0) regions.push({ name: 'system.flash0', base: FOUR_GIB - firmwareBytes, size: firmwareBytes });
  if (vmsaPages > 0) regions.push({ name: VMSA_REGION, base: VMSA_REGION_BASE, size: vmsaPages * 4096 });
  return regions;
}

/** Parses "512M", "4G", "1048576" (bytes); K/M/G are binary multiples like QEMU's -m. */
export function parseMemorySize(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0 ? v : undefined;
  const m = /^(\d+)([KMGT]?)$/i.exec(v.trim());
  if (!m) return undefined;
  const mult = { '': 1, K: 1 << 10, M: 1 << 20, G: 1 << 30, T: 2 ** 40 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}
