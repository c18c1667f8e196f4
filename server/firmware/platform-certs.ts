/** The chip issuing its own SEV certificates (SEV API 55766, certificate chain of trust): CEK, PEK, PDH, PEK_CERT_IMPORT's CEK signature. */
import type { KeyObject } from 'node:crypto';
import { Algo, decodeSevCert, encodeSevCert, encodeSevCertBody, rsaPssSign, Usage } from '../../abi/certs/sev-cert.js';
import { signSlot, unsignedCert, type ApiVersion } from '../../abi/certs/issue.js';

export type { ApiVersion };
import type { EmulatedRoot } from './emulated-root.js';
import { beToLe } from '../../abi/bytes.js';

/** CEK: API 0.14 like every real CEK, slot 1 signed by the generation's (emulated) ASK. */
export function makeCekCert(cek: KeyObject, root: EmulatedRoot): Buffer {
  const cert = unsignedCert(Usage.CEK, Algo.ECDSA_SHA256, cek, { major: 0, minor: 14 });
  const bits = root.askCert.modulusBits;
  const hash = bits === 2048 ? 'sha256' : 'sha384';
  const sig = beToLe(rsaPssSign(encodeSevCertBody(cert), root.askKey, hash), 512);
  cert.sigs[0] = { usage: Usage.ASK, algo: bits === 2048 ? Algo.RSA_SHA256 : Algo.RSA_SHA384, sig };
  return encodeSevCert(cert);
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
