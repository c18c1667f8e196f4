/**
 * The firmware's check of a CPUID page at SNP_LAUNCH_UPDATE (SNP ABI 56860, SNP_LAUNCH_UPDATE of a CPUID page): what an
 * entry reports must be what this chip could really give the guest. sevd's rule of what the
 * chip allows is its generation: CPUID(1) family/model/stepping not above the chip's, AVX-512
 * only from genoa on, and in 0x8000001F only the SEV features the generation has. Entries
 * it does not police pass as written (the firmware checks more leaves than that; a VMM
 * that builds its page from the vCPU model, as QEMU does, is caught by these).
 */
import { CpuidBit, decodeCpuidPage, encodeCpuidPage, sameCpuidFunction, SNP_CPUID_COUNT_MAX, type CpuidFunction } from '../../abi/snp/cpuid.js';
import { HOST_SIGNATURE, signatureFms } from '../../abi/vmsa.js';
import { generationFeatures } from './generations.js';
import type { Generation } from './emulated-root.js';

export type CpuidCheck = { ok: true } | { ok: false; corrected: Buffer | null };

const fmsAbove = (a: number, b: number): boolean => {
  const x = signatureFms(a);
  const y = signatureFms(b);
  if (x.family !== y.family) return x.family > y.family;
  if (x.model !== y.model) return x.model > y.model;
  return x.stepping > y.stepping;
};

function allowed(g: Generation, f: CpuidFunction): CpuidFunction {
  const chip = HOST_SIGNATURE[g]!;
  const feats = generationFeatures(g);
  const out = { ...f };
  if (f.eaxIn === 1 && fmsAbove(f.eax, chip)) out.eax = chip;
  if (f.eaxIn === 7 && f.ecxIn === 0 && g !== 'genoa' && g !== 'turin') out.ebx = (f.ebx & ~CpuidBit.LEAF7_EBX_AVX512) >>> 0;
  if (f.eaxIn === 0x8000001f) {
    const mask = CpuidBit.SME | CpuidBit.SEV | CpuidBit.PAGE_FLUSH | (feats.es ? CpuidBit.SEV_ES : 0) | (feats.snp ? CpuidBit.SEV_SNP | CpuidBit.VMPL : 0);
    out.eax = (f.eax & mask) >>> 0;
  }
  return out;
}

/** ok, or refused: with the page the firmware writes back (null: a count it cannot read). */
export function checkCpuidPage(g: Generation, page: Buffer): CpuidCheck {
  const { count, functions } = decodeCpuidPage(page);
  if (count > SNP_CPUID_COUNT_MAX) return { ok: false, corrected: null };
  const fixed = functions.map((f) => allowed(g, f));
  const changed = fixed.some((f, i) => !sameCpuidFunction(f, functions[i]!));
  return changed ? { ok: false, corrected: encodeCpuidPage(fixed, page.length) } : { ok: true };
}
