/**
 * SNP_LAUNCH_FINISH's ID block (96 bytes) and ID authentication information (4096 bytes;
 * SNP ABI tables 74–75, go-sev-guest abi.go): who vouches for a launch digest. Keys are
 * P-384 in the SNP public-key layout (curve u32 = 2, QX, QY as 72-byte little-endian
 * fields, 0x404 bytes); signatures are ECDSA P-384 SHA-384, R and S 72-byte little endian.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export const ID_BLOCK_SIZE = 96;
export const ID_AUTH_SIZE = 4096;
const KEY_SIZE = 0x404;
const SIG_SIZE = 0x200;
const AT = { idKeyAlgo: 0x00, authorKeyAlgo: 0x04, idBlockSig: 0x40, idKey: 0x240, idKeySig: 0x680, authorKey: 0x880 } as const;

export interface IdBlock {
  ld: Buffer;
  familyId: Buffer;
  imageId: Buffer;
  version: number;
  guestSvn: number;
  policy: bigint;
}

export function encodeIdBlock(b: IdBlock): Buffer {
  const out = Buffer.alloc(ID_BLOCK_SIZE);
  b.ld.copy(out, 0);
  b.familyId.copy(out, 48);
  b.imageId.copy(out, 64);
  out.writeUInt32LE(b.version, 80);
  out.writeUInt32LE(b.guestSvn, 84);
  out.writeBigUInt64LE(b.policy, 88);
  return out;
}

export function decodeIdBlock(raw: Uint8Array): IdBlock {
  if (raw.length !== ID_BLOCK_SIZE) throw new Error(`an ID block is ${ID_BLOCK_SIZE} bytes`);
  const b = Buffer.from(raw);
  return { ld: b.subarray(0, 48), familyId: b.subarray(48, 64), imageId: b.subarray(64, 80), version: b.readUInt32LE(80), guestSvn: b.readUInt32LE(84), policy: b.readBigUInt64LE(88) };
}

const le = (b64url: string) => Buffer.from(Buffer.from(b64url, 'base64url')).reverse();

/** A P-384 public key in the SNP layout. */
export function encodeSnpPublicKey(key: KeyObject): Buffer {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  const out = Buffer.alloc(KEY_SIZE);
  out.writeUInt32LE(2, 0);
  le(jwk.x!).copy(out, 4);
  le(jwk.y!).copy(out, 4 + 72);
  return out;
}

export function decodeSnpPublicKey(raw: Uint8Array): KeyObject {
  const b = Buffer.from(raw);
  if (b.readUInt32LE(0) !== 2) throw new Error('not a P-384 key');
  const be = (at: number) => Buffer.from(b.subarray(at, at + 48)).reverse().toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: 'P-384', x: be(4), y: be(4 + 72) }, format: 'jwk' });
}

function snpSign(data: Uint8Array, key: KeyObject): Buffer {
  const rs = sign('sha384', data, { key, dsaEncoding: 'ieee-p1363' });
  const out = Buffer.alloc(SIG_SIZE);
  Buffer.from(rs.subarray(0, 48)).reverse().copy(out, 0);
  Buffer.from(rs.subarray(48)).reverse().copy(out, 72);
  return out;
}

function snpVerify(data: Uint8Array, sig: Uint8Array, key: KeyObject): boolean {
  const rs = Buffer.concat([Buffer.from(sig.subarray(0, 48)).reverse(), Buffer.from(sig.subarray(72, 120)).reverse()]);
  return verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, rs);
}

/** The ID auth information: the block signed by the ID key, the ID key signed by the author key (if any). */
export function buildIdAuth(idBlock: Uint8Array, idKey: KeyObject, authorKey?: KeyObject): Buffer {
  const out = Buffer.alloc(ID_AUTH_SIZE);
  out.writeUInt32LE(1, AT.idKeyAlgo);
  snpSign(idBlock, idKey).copy(out, AT.idBlockSig);
  const idPub = encodeSnpPublicKey(idKey);
  idPub.copy(out, AT.idKey);
  if (authorKey) {
    out.writeUInt32LE(1, AT.authorKeyAlgo);
    snpSign(idPub, authorKey).copy(out, AT.idKeySig);
    encodeSnpPublicKey(authorKey).copy(out, AT.authorKey);
  }
  return out;
}

export interface IdAuthCheck {
  /** The ID block's signature verifies with the ID key in the auth info. */
  blockSigned: boolean;
  /** The ID key's signature verifies with the author key (only meaningful with an author key). */
  idKeySigned: boolean;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
}

/** What SNP_LAUNCH_FINISH learns from the auth info: signatures and the key digests reports carry. */
export function checkIdAuth(idBlock: Uint8Array, auth: Uint8Array, withAuthorKey: boolean): IdAuthCheck {
  const a = Buffer.alloc(ID_AUTH_SIZE);
  Buffer.from(auth).copy(a);
  const idPub = a.subarray(AT.idKey, AT.idKey + KEY_SIZE);
  const authorPub = a.subarray(AT.authorKey, AT.authorKey + KEY_SIZE);
  const digest = (k: Buffer) => createHash('sha384').update(k).digest();
  let blockSigned = false;
  let idKeySigned = false;
  try {
    blockSigned = a.readUInt32LE(AT.idKeyAlgo) === 1 && snpVerify(idBlock, a.subarray(AT.idBlockSig, AT.idBlockSig + SIG_SIZE), decodeSnpPublicKey(idPub));
    if (withAuthorKey) idKeySigned = a.readUInt32LE(AT.authorKeyAlgo) === 1 && snpVerify(idPub, a.subarray(AT.idKeySig, AT.idKeySig + SIG_SIZE), decodeSnpPublicKey(authorPub));
  } catch {
    // a malformed key: the signatures do not verify
  }
  return { blockSigned, idKeySigned, idKeyDigest: digest(idPub), authorKeyDigest: withAuthorKey ? digest(authorPub) : Buffer.alloc(48) };
}
