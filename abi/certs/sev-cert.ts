/**
 * The SEV certificate (0x824 bytes, SEV API 55766, appendix "SEV certificate format"): codec, signing and
 * verification. Keys are P-384 ECDSA/ECDH or RSA; big integers are little-endian.
 */
import { createPublicKey, sign as nodeSign, verify as nodeVerify, constants, type KeyObject } from 'node:crypto';
import { beToLe, b64url, leToBe } from '../bytes.js';

export const SEV_CERT_SIZE = 0x824;
export const SEV_CERT_BODY_SIZE = 0x414;

export const Usage = {
  ARK: 0x0000, ASK: 0x0013, INVALID: 0x1000, OCA: 0x1001, PEK: 0x1002, PDH: 0x1003, CEK: 0x1004,
} as const;

export const Algo = {
  INVALID: 0x000, RSA_SHA256: 0x001, ECDSA_SHA256: 0x002, ECDH_SHA256: 0x003,
  RSA_SHA384: 0x101, ECDSA_SHA384: 0x102, ECDH_SHA384: 0x103,
} as const;

export const CURVE_P384 = 2;
const EC_FIELD = 72;
/** DER SubjectPublicKeyInfo header for an uncompressed P-384 point (id-ecPublicKey, secp384r1). */
const P384_SPKI_PREFIX = Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex');
const P384_BYTES = 48;

export type PublicKey =
  | { kind: 'ec'; curve: number; qx: Buffer; qy: Buffer }
  | { kind: 'rsa'; modulusBits: number; pubExp: Buffer; modulus: Buffer };

export interface Signature {
  usage: number;
  algo: number;
  /** The 512-byte signature field as stored. */
  sig: Buffer;
}

export interface SevCert {
  version: number;
  apiMajor: number;
  apiMinor: number;
  usage: number;
  algo: number;
  pubKey: PublicKey;
  sigs: [Signature, Signature];
}

export class CertFormatError extends Error {}

export const emptySignature = (): Signature => ({ usage: Usage.INVALID, algo: Algo.INVALID, sig: Buffer.alloc(512) });

/** The key type of an algorithm: 1 RSA, 2 ECDSA, 3 ECDH. */
export const keyType = (algo: number): number => algo & 0xff;
const hashOf = (algo: number): 'sha256' | 'sha384' => (algo & 0x100 ? 'sha384' : 'sha256');

export function decodeSevCert(buf: Uint8Array): SevCert {
  if (buf.length !== SEV_CERT_SIZE) throw new CertFormatError(`SEV certificate must be ${SEV_CERT_SIZE} bytes, got ${buf.length}`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const version = b.readUInt32LE(0);
  if (version !== 1) throw new CertFormatError(`SEV certificate version ${version} is not 1`);
  const algo = b.readUInt32LE(0x0c);
  const kt = keyType(algo);
  let pubKey: PublicKey;
  if (kt === 2 || kt === 3) {
    pubKey = { kind: 'ec', curve: b.readUInt32LE(0x10), qx: Buffer.from(b.subarray(0x14, 0x14 + EC_FIELD)), qy: Buffer.from(b.subarray(0x5c, 0x5c + EC_FIELD)) };
  } else if (kt === 1) {
    pubKey = { kind: 'rsa', modulusBits: b.readUInt32LE(0x10), pubExp: Buffer.from(b.subarray(0x14, 0x214)), modulus: Buffer.from(b.subarray(0x214, 0x414)) };
  } else {
    throw new CertFormatError(`SEV certificate key algorithm 0x${algo.toString(16)} is unknown`);
  }
  const sig = (at: number): Signature => ({ usage: b.readUInt32LE(at), algo: b.readUInt32LE(at + 4), sig: Buffer.from(b.subarray(at + 8, at + 8 + 512)) });
  return { version, apiMajor: b[4]!, apiMinor: b[5]!, usage: b.readUInt32LE(8), algo, pubKey, sigs: [sig(0x414), sig(0x61c)] };
}

export function encodeSevCertBody(c: SevCert): Buffer {
  const b = Buffer.alloc(SEV_CERT_BODY_SIZE);
  b.writeUInt32LE(c.version, 0);
  b[4] = c.apiMajor;
  b[5] = c.apiMinor;
  b.writeUInt32LE(c.usage, 8);
  b.writeUInt32LE(c.algo, 0x0c);
  if (c.pubKey.kind === 'ec') {
    b.writeUInt32LE(c.pubKey.curve, 0x10);
    c.pubKey.qx.copy(b, 0x14, 0, EC_FIELD);
    c.pubKey.qy.copy(b, 0x5c, 0, EC_FIELD);
  } else {
    b.writeUInt32LE(c.pubKey.modulusBits, 0x10);
    c.pubKey.pubExp.copy(b, 0x14, 0, 512);
    c.pubKey.modulus.copy(b, 0x214, 0, 512);
  }
  return b;
}

export function encodeSevCert(c: SevCert): Buffer {
  const b = Buffer.alloc(SEV_CERT_SIZE);
  encodeSevCertBody(c).copy(b, 0);
  c.sigs.forEach((s, i) => {
    const at = i === 0 ? 0x414 : 0x61c;
    b.writeUInt32LE(s.usage, at);
    b.writeUInt32LE(s.algo, at + 4);
    s.sig.copy(b, at + 8, 0, 512);
  });
  return b;
}

/** The body bytes every signature covers. */
export function certBody(raw: Uint8Array): Buffer {
  return Buffer.from(raw.subarray(0, SEV_CERT_BODY_SIZE));
}

/** A node public key for an EC certificate key; throws CertFormatError when the point is invalid. */
export function ecPublicKey(k: PublicKey): KeyObject {
  if (k.kind !== 'ec' || k.curve !== CURVE_P384) throw new CertFormatError('key is not a P-384 EC key');
  try {
    // SPKI DER imports (and validates the point) several times faster than JWK.
    const spki = Buffer.concat([P384_SPKI_PREFIX, Buffer.from([4]), leToBe(k.qx, P384_BYTES), leToBe(k.qy, P384_BYTES)]);
    return createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new CertFormatError('EC public key is not a valid P-384 point');
  }
}

export function rsaPublicKey(modulusLe: Uint8Array, expLe: Uint8Array, bits: number): KeyObject {
  const n = leToBe(modulusLe, bits / 8);
  let e = leToBe(expLe, expLe.length);
  let i = 0;
  while (i < e.length - 1 && e[i] === 0) i++;
  e = e.subarray(i);
  try {
    return createPublicKey({ key: { kty: 'RSA', n: b64url(n), e: b64url(e) }, format: 'jwk' });
  } catch {
    throw new CertFormatError('RSA public key is invalid');
  }
}

/** EC point of a node key as the certificate's qx/qy fields. */
export function ecPointFields(key: KeyObject): { qx: Buffer; qy: Buffer } {
  const jwk = key.export({ format: 'jwk' });
  return { qx: beToLe(Buffer.from(jwk.x!, 'base64url'), EC_FIELD), qy: beToLe(Buffer.from(jwk.y!, 'base64url'), EC_FIELD) };
}

/** ECDSA over `msg` with the slot layout r[72] ‖ s[72] little-endian. */
export function ecdsaSignField(msg: Uint8Array, priv: KeyObject, hash: 'sha256' | 'sha384', fieldSize = 512): Buffer {
  const rs = nodeSign(hash, msg, { key: priv, dsaEncoding: 'ieee-p1363' });
  const out = Buffer.alloc(fieldSize);
  beToLe(rs.subarray(0, P384_BYTES), EC_FIELD).copy(out, 0);
  beToLe(rs.subarray(P384_BYTES), EC_FIELD).copy(out, EC_FIELD);
  return out;
}

export function ecdsaVerifyField(msg: Uint8Array, field: Uint8Array, pub: KeyObject, hash: 'sha256' | 'sha384'): boolean {
  const rs = Buffer.concat([leToBe(field.subarray(0, EC_FIELD), P384_BYTES), leToBe(field.subarray(EC_FIELD, 2 * EC_FIELD), P384_BYTES)]);
  try {
    return nodeVerify(hash, msg, { key: pub, dsaEncoding: 'ieee-p1363' }, rs);
  } catch {
    return false;
  }
}

export function rsaPssVerify(msg: Uint8Array, sigLe: Uint8Array, pub: KeyObject, bits: number, hash: 'sha256' | 'sha384'): boolean {
  try {
    return nodeVerify(hash, msg, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hash === 'sha256' ? 32 : 48 }, leToBe(sigLe, bits / 8));
  } catch {
    return false;
  }
}

export function rsaPssSign(msg: Uint8Array, priv: KeyObject, hash: 'sha256' | 'sha384'): Buffer {
  return nodeSign(hash, msg, { key: priv, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hash === 'sha256' ? 32 : 48 });
}

/** A signer as the slot rules see it: its usage, algorithm and public key. */
export interface Signer {
  usage: number;
  algo: number;
  verify(msg: Uint8Array, slot: Signature): boolean;
}

/** Slot acceptance (§1.5): usage matches, key type matches, the crypto verifies with the slot's hash. */
export function slotAccepted(body: Uint8Array, slot: Signature, signer: Signer): boolean {
  if (slot.usage !== signer.usage) return false;
  if (keyType(slot.algo) !== keyType(signer.algo)) return false;
  return signer.verify(body, slot);
}

export function sevCertSigner(cert: SevCert): Signer {
  const key = ecPublicKey(cert.pubKey);
  return {
    usage: cert.usage,
    algo: cert.algo,
    verify: (msg, slot) => ecdsaVerifyField(msg, slot.sig, key, hashOf(slot.algo)),
  };
}

/** True when either slot of `raw` (a SEV certificate) is accepted for `signer`. */
export function isSignedBy(raw: Uint8Array, cert: SevCert, signer: Signer): boolean {
  const body = certBody(raw);
  return cert.sigs.some((s) => slotAccepted(body, s, signer));
}

/** Checks the EC key of a certificate is a valid P-384 point (throws CertFormatError). */
export function checkEcKey(cert: SevCert): void {
  ecPublicKey(cert.pubKey);
}

