/**
 * Issuing SEV-format certificates (SEV API 55766, certificate chain of trust): an unsigned certificate for a
 * key, a signature into one of its two slots, a self-signed OCA. The chip issues its PEK and
 * PDH with these, and a guest owner its GODH and OCA.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { Algo, CURVE_P384, ecdsaSignField, ecPointFields, emptySignature, encodeSevCert, encodeSevCertBody, Usage, type SevCert } from './sev-cert.js';

export interface ApiVersion {
  major: number;
  minor: number;
}

/** An unsigned certificate for `key` (a private or public P-384 key; both slots empty). */
export function unsignedCert(usage: number, algo: number, key: KeyObject, api: ApiVersion): SevCert {
  const { qx, qy } = ecPointFields(key.type === 'private' ? createPublicKey(key) : key);
  return {
    version: 1, apiMajor: api.major, apiMinor: api.minor, usage, algo,
    pubKey: { kind: 'ec', curve: CURVE_P384, qx, qy },
    sigs: [emptySignature(), emptySignature()],
  };
}

/** Signs `cert` with an ECDSA key of usage `signerUsage` into slot `slot`. */
export function signSlot(cert: SevCert, slot: 0 | 1, signerUsage: number, signerKey: KeyObject): SevCert {
  const sigs: [typeof cert.sigs[0], typeof cert.sigs[1]] = [cert.sigs[0], cert.sigs[1]];
  sigs[slot] = { usage: signerUsage, algo: Algo.ECDSA_SHA256, sig: ecdsaSignField(encodeSevCertBody(cert), signerKey, 'sha256') };
  return { ...cert, sigs };
}

/** A self-signed OCA: what a platform owner creates (and the chip, when it owns itself). */
export function makeOcaCert(oca: KeyObject, api: ApiVersion): Buffer {
  return encodeSevCert(signSlot(unsignedCert(Usage.OCA, Algo.ECDSA_SHA256, oca, api), 0, Usage.OCA, oca));
}
