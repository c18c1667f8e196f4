/** What each emulated EPYC generation's Secure Processor supports (CPUID Fn8000_001F, AMD APM vol. 3). */
import type { Generation } from './emulated-root.js';

export interface GenerationFeatures {
  es: boolean;
  snp: boolean;
}

const FEATURES: Record<Generation, GenerationFeatures> = {
  naples: { es: false, snp: false },
  rome: { es: true, snp: false },
  milan: { es: true, snp: true },
  genoa: { es: true, snp: true },
  turin: { es: true, snp: true },
};

export function generationFeatures(g: Generation): GenerationFeatures {
  return FEATURES[g];
}
