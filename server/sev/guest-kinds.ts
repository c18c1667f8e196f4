/**
 * The confidential guest kinds behind one type: SEV and SEV-ES (SevGuest) and SNP
 * (SnpGuest) are siblings over confidential-guest.ts, told apart by `kind`, so a command
 * that only one kind has is reached only after the compiler has seen the kind checked.
 */
import type { Guest } from '../guest/guest.js';
import type { SevHost } from './sev-host.js';
import type { ConfidentialSpec } from './guest-spec-kinds.js';
import { SevGuest } from './sev-guest.js';
import { SnpGuest } from './snp-guest.js';

export type ConfidentialGuest = SevGuest | SnpGuest;

/** The guest's SEV state for its spec; QEMU's startup checks run here (they throw QmpError). */
export function createConfidentialGuest(guest: Guest, spec: ConfidentialSpec, host: SevHost): ConfidentialGuest {
  return spec.kind === 'sev-snp' ? new SnpGuest(guest, spec, host) : new SevGuest(guest, spec, host);
}
