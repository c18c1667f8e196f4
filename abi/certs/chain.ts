/**
 * Platform chain verification in virtee/sev's order (SEV API 55766, certificate chain of trust): ARK self,
 * ARK→ASK, ASK→CEK, OCA self, OCA→PEK, CEK→PEK, PEK→PDH. A failure names the step
 * and the reason.
 */
import { AMD_USAGE_ARK, AMD_USAGE_ASK, amdCertSignedBy, askSigner, decodeAmdCert, type AmdCert } from './amd-cert.js';
import { CertFormatError, decodeSevCert, isSignedBy, sevCertSigner, Usage, type SevCert } from './sev-cert.js';

export interface ChainBlobs {
  ark: Uint8Array;
  ask: Uint8Array;
  cek: Uint8Array;
  oca: Uint8Array;
  pek: Uint8Array;
  pdh: Uint8Array;
}

export type ChainResult = { ok: true; pdh: SevCert } | { ok: false; step: string; reason: string };

const USAGE_NAMES: Record<number, string> = { 0x1001: 'OCA', 0x1002: 'PEK', 0x1003: 'PDH', 0x1004: 'CEK' };

class ChainFailure extends Error {
  constructor(readonly step: string, reason: string) {
    super(reason);
  }
}

function sev(name: string, raw: Uint8Array, usage: number): SevCert {
  let c: SevCert;
  try {
    c = decodeSevCert(raw);
  } catch (e) {
    throw new ChainFailure(name, (e as Error).message);
  }
  if (c.usage !== usage) {
    throw new ChainFailure(name, `key usage 0x${c.usage.toString(16)} (${USAGE_NAMES[c.usage] ?? 'unknown'}) where ${name} (0x${usage.toString(16)}) was expected`);
  }
  return c;
}

function amd(name: string, raw: Uint8Array, usage: number): AmdCert {
  let c: AmdCert;
  try {
    c = decodeAmdCert(raw).cert;
  } catch (e) {
    throw new ChainFailure(name, (e as Error).message);
  }
  if (c.keyUsage !== usage) throw new ChainFailure(name, `key usage 0x${c.keyUsage.toString(16)} where 0x${usage.toString(16)} was expected`);
  return c;
}

function step(name: string, ok: () => boolean): void {
  let good: boolean;
  try {
    good = ok();
  } catch (e) {
    if (e instanceof CertFormatError) throw new ChainFailure(name, e.message);
    throw e;
  }
  if (!good) throw new ChainFailure(name, 'no signature verifies');
}

export function verifyChain(b: ChainBlobs): ChainResult {
  try {
    const ark = amd('ARK', b.ark, AMD_USAGE_ARK);
    const ask = amd('ASK', b.ask, AMD_USAGE_ASK);
    const cek = sev('CEK', b.cek, Usage.CEK);
    const oca = sev('OCA', b.oca, Usage.OCA);
    const pek = sev('PEK', b.pek, Usage.PEK);
    const pdh = sev('PDH', b.pdh, Usage.PDH);
    step('ARK self-signature', () => amdCertSignedBy(ark, ark));
    step('ARK → ASK', () => amdCertSignedBy(ask, ark));
    step('ASK → CEK', () => isSignedBy(b.cek, cek, askSigner(ask)));
    step('OCA self-signature', () => isSignedBy(b.oca, oca, sevCertSigner(oca)));
    step('OCA → PEK', () => isSignedBy(b.pek, pek, sevCertSigner(oca)));
    step('CEK → PEK', () => isSignedBy(b.pek, pek, sevCertSigner(cek)));
    step('PEK → PDH', () => isSignedBy(b.pdh, pdh, sevCertSigner(pek)));
    return { ok: true, pdh };
  } catch (e) {
    if (e instanceof ChainFailure) return { ok: false, step: e.step, reason: e.message };
    throw e;
  }
}

/** Splits AMD's ASK ‖ ARK file into its two certificates. */
export function splitAskArk(blob: Uint8Array): { ask: Buffer; ark: Buffer } {
  const first = decodeAmdCert(blob);
  const rest = blob.subarray(first.size);
  const second = decodeAmdCert(rest);
  if (second.size !== rest.length) throw new CertFormatError(`ASK ‖ ARK blob has ${rest.length - second.size} trailing bytes`);
  return { ask: Buffer.from(blob.subarray(0, first.size)), ark: Buffer.from(rest) };
}

/** Splits PEK ‖ OCA ‖ CEK (6252 bytes). */
export function splitPlatformCerts(blob: Uint8Array): { pek: Buffer; oca: Buffer; cek: Buffer } {
  if (blob.length !== 3 * 0x824) throw new CertFormatError(`platform chain must be ${3 * 0x824} bytes, got ${blob.length}`);
  const at = (i: number) => Buffer.from(blob.subarray(i * 0x824, (i + 1) * 0x824));
  return { pek: at(0), oca: at(1), cek: at(2) };
}
