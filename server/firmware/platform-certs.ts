/** Building the platform's own SEV certificates (sev-firmware.md §1.7). */
import type { KeyObject } from 'node:crypto';
import {
  Algo, CURVE_P384, decodeSevCert, ecdsaSignField, ecPointFields, emptySignature, encodeSevCert, encodeSevCertBody,
  Usage, type SevCert,
} from './certs/sev-cert.js';
import { publicOf } from './keys.js';
import type { EmulatedRoot } from './emulated-root.js';
import { beToLe } from './certs/bytes.js';
import { rsaPssSign } from './certs/sev-cert.js';

export interface ApiVersion {
  major: number;
  minor: number;
}

/** An unsigned certificate for `key` (both slots empty). */
export function unsignedCert(usage: number, algo: number, key: KeyObject, api: ApiVersion): SevCert {
  const { qx, qy } = ecPointFields(publicOf(key));
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

/** CEK: API 0.14 like every real CEK, slot 1 signed by the generation's (emulated) ASK. */
export function makeCekCert(cek: KeyObject, root: EmulatedRoot): Buffer {
  const cert = unsignedCert(Usage.CEK, Algo.ECDSA_SHA256, cek, { major: 0, minor: 14 });
  const bits = root.askCert.modulusBits;
  const hash = bits === 2048 ? 'sha256' : 'sha384';
  const sig = beToLe(rsaPssSign(encodeSevCertBody(cert), root.askKey, hash), 512);
  cert.sigs[0] = { usage: Usage.ASK, algo: bits === 2048 ? Algo.RSA_SHA256 : Algo.RSA_SHA384, sig };
  return encodeSevCert(cert);
}

export function makeOcaCert(oca: KeyObject, api: ApiVersion): Buffer {
  return encodeSevCert(signSlot(unsignedCert(Usage.OCA, Algo.ECDSA_SHA256, oca, api), 0, Usage.OCA, oca));
}

/** PEK signed by the OCA (slot 1) and the CEK (slot 2), as after the CSR flow. */
export function makePekCert(pek: KeyObject, oca: KeyObject, cek: KeyObject, api: ApiVersion): Buffer {
  const c = signSlot(unsignedCert(Usage.PEK, Algo.ECDSA_SHA256, pek, api), 0, Usage.OCA, oca);
  return encodeSevCert(signSlot(c, 1, Usage.CEK, cek));
}

export function makePdhCert(pdh: KeyObject, pek: KeyObject, api: ApiVersion): Buffer {
  return encodeSevCert(signSlot(unsignedCert(Usage.PDH, Algo.ECDH_SHA256, pdh, api), 0, Usage.PEK, pek));
}

/** Adds the CEK signature in the PEK's remaining empty slot (PEK_CERT_IMPORT). */
export function addCekSignature(pekRaw: Buffer, cek: KeyObject): Buffer {
  const c = decodeSevCert(pekRaw);
  const slot = c.sigs[0].usage === Usage.INVALID ? 0 : 1;
  return encodeSevCert(signSlot(c, slot, Usage.CEK, cek));
}
