/** The 208-byte attestation report (SEV API 55766, ATTESTATION), signed with the PEK. */
import type { KeyObject } from 'node:crypto';
import { ecdsaSignField, ecdsaVerifyField } from './certs/sev-cert.js';
import { le32 } from './bytes.js';

export const REPORT_SIZE = 0xd0;
const SIGNED = 0x34;

export interface AttestationReport {
  mnonce: Buffer;
  launchDigest: Buffer;
  policy: number;
  sigUsage: number;
  sigAlgo: number;
  signature: Buffer; // r[72] ‖ s[72]
}

export function signReport(mnonce: Uint8Array, ld: Uint8Array, policy: number, pek: KeyObject): Buffer {
  const body = Buffer.concat([mnonce, ld, le32(policy)]);
  const sig = ecdsaSignField(body, pek, 'sha256', 144);
  return Buffer.concat([body, le32(0x1002), le32(0x002), le32(0), sig]);
}

export function decodeReport(b: Uint8Array): AttestationReport {
  if (b.length !== REPORT_SIZE) throw new Error(`attestation report must be ${REPORT_SIZE} bytes, got ${b.length}`);
  const r = Buffer.from(b);
  return {
    mnonce: r.subarray(0, 16), launchDigest: r.subarray(16, 48), policy: r.readUInt32LE(48),
    sigUsage: r.readUInt32LE(52), sigAlgo: r.readUInt32LE(56), signature: r.subarray(64, 208),
  };
}

/** Checks the report's signature with the PEK's public key. */
export function verifyReport(b: Uint8Array, pekPub: KeyObject): boolean {
  if (b.length !== REPORT_SIZE) return false;
  return ecdsaVerifyField(b.subarray(0, SIGNED), Buffer.from(b.subarray(64, 208)), pekPub, 'sha256');
}

