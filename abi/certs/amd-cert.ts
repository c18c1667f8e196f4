/**
 * The AMD CA certificate format of the ARK and ASK (SEV API 55766, appendix "AMD CA certificate format"): RSA keys,
 * RSASSA-PSS signatures with SHA-256 (2048-bit) or SHA-384 (4096-bit), little-endian.
 */
import type { KeyObject } from 'node:crypto';
import { CertFormatError, keyType, rsaPssSign, rsaPssVerify, rsaPublicKey, type Signature, type Signer } from './sev-cert.js';
import { beToLe } from '../bytes.js';

export const AMD_USAGE_ARK = 0x00;
export const AMD_USAGE_ASK = 0x13;
const PREAMBLE = 0x40;

export interface AmdCert {
  version: number;
  keyId: Buffer;
  certifyingId: Buffer;
  keyUsage: number;
  reserved: Buffer;
  pubExpBits: number;
  modulusBits: number;
  pubExp: Buffer;
  modulus: Buffer;
  signature: Buffer;
}

export function amdCertSize(pubExpBits: number, modulusBits: number): number {
  return PREAMBLE + pubExpBits / 8 + (2 * modulusBits) / 8;
}

/** Decodes one certificate at the start of `buf`; returns it and its size (for ASK ‖ ARK blobs). */
export function decodeAmdCert(buf: Uint8Array): { cert: AmdCert; size: number } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  if (b.length < PREAMBLE) throw new CertFormatError(`AMD certificate too short: ${b.length} bytes`);
  const version = b.readUInt32LE(0);
  if (version !== 1) throw new CertFormatError(`AMD certificate version ${version} is not 1`);
  const pubExpBits = b.readUInt32LE(0x38);
  const modulusBits = b.readUInt32LE(0x3c);
  for (const [what, bits] of [['public exponent', pubExpBits], ['modulus', modulusBits]] as const) {
    if (bits !== 2048 && bits !== 4096) throw new CertFormatError(`AMD certificate ${what} size ${bits} is not 2048 or 4096`);
  }
  const size = amdCertSize(pubExpBits, modulusBits);
  if (b.length < size) throw new CertFormatError(`AMD certificate truncated: ${b.length} of ${size} bytes (signature missing)`);
  const n = pubExpBits / 8;
  const m = modulusBits / 8;
  return {
    cert: {
      version,
      keyId: Buffer.from(b.subarray(0x04, 0x14)),
      certifyingId: Buffer.from(b.subarray(0x14, 0x24)),
      keyUsage: b.readUInt32LE(0x24),
      reserved: Buffer.from(b.subarray(0x28, 0x38)),
      pubExpBits,
      modulusBits,
      pubExp: Buffer.from(b.subarray(PREAMBLE, PREAMBLE + n)),
      modulus: Buffer.from(b.subarray(PREAMBLE + n, PREAMBLE + n + m)),
      signature: Buffer.from(b.subarray(PREAMBLE + n + m, size)),
    },
    size,
  };
}

export function encodeAmdCertTbs(c: AmdCert): Buffer {
  const b = Buffer.alloc(PREAMBLE);
  b.writeUInt32LE(c.version, 0);
  c.keyId.copy(b, 0x04);
  c.certifyingId.copy(b, 0x14);
  b.writeUInt32LE(c.keyUsage, 0x24);
  c.reserved.copy(b, 0x28);
  b.writeUInt32LE(c.pubExpBits, 0x38);
  b.writeUInt32LE(c.modulusBits, 0x3c);
  return Buffer.concat([b, c.pubExp, c.modulus]);
}

export function encodeAmdCert(c: AmdCert): Buffer {
  return Buffer.concat([encodeAmdCertTbs(c), c.signature]);
}

const hashFor = (bits: number): 'sha256' | 'sha384' => (bits === 2048 ? 'sha256' : 'sha384');

export function amdPublicKey(c: AmdCert): KeyObject {
  return rsaPublicKey(c.modulus, c.pubExp, c.modulusBits);
}

/** Is `subject` signed by `issuer` (certifying id, then RSA-PSS)? */
export function amdCertSignedBy(subject: AmdCert, issuer: AmdCert): boolean {
  if (!subject.certifyingId.equals(issuer.keyId)) return false;
  return rsaPssVerify(encodeAmdCertTbs(subject), subject.signature, amdPublicKey(issuer), issuer.modulusBits, hashFor(issuer.modulusBits));
}

export function signAmdCert(tbs: AmdCert, issuerKey: KeyObject, issuerBits: number): AmdCert {
  const sig = rsaPssSign(encodeAmdCertTbs(tbs), issuerKey, hashFor(issuerBits));
  return { ...tbs, signature: beToLe(sig, tbs.modulusBits / 8) };
}

/** The ASK as a signer of SEV certificates (the CEK's slot 1). */
export function askSigner(ask: AmdCert): Signer {
  const key = amdPublicKey(ask);
  return {
    usage: ask.keyUsage,
    algo: ask.modulusBits === 2048 ? 0x001 : 0x101,
    verify: (msg, slot: Signature) =>
      keyType(slot.algo) === 1 && rsaPssVerify(msg, slot.sig.subarray(0, ask.modulusBits / 8), key, ask.modulusBits, slot.algo & 0x100 ? 'sha384' : 'sha256'),
  };
}
