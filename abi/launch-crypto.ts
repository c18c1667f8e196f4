/**
 * The launch and transport cryptography of the SEV API (SEV API 55766, LAUNCH_START session and SEND_START transport): the
 * SP 800-108 KDF, ECDH shared secret, session wrap/unwrap, the launch measurement and
 * the packet MACs. One implementation, used by the firmware and the guest owner alike and
 * checked by the vectors.
 */
import { createCipheriv, createHmac, diffieHellman, timingSafeEqual, type KeyObject } from 'node:crypto';

export const SESSION_SIZE = 128;
export const PACKET_HEADER_SIZE = 52;

import { le32 } from './bytes.js';

/** NIST SP 800-108 counter mode, PRF HMAC-SHA256, little-endian counter and length (§6.4). */
export function kdf(kin: Uint8Array, label: string, context: Uint8Array, bits = 128): Buffer {
  const out: Buffer[] = [];
  const bytes = bits / 8;
  for (let i = 1; out.length * 32 < bytes; i++) {
    out.push(
      createHmac('sha256', kin)
        .update(le32(i))
        .update(label, 'latin1')
        .update(Buffer.from([0]))
        .update(context)
        .update(le32(bits))
        .digest(),
    );
  }
  return Buffer.concat(out).subarray(0, bytes);
}

export function hmac256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** AES-128-CTR with the whole IV as the initial 128-bit big-endian counter. */
export function aes128ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  // CTR is a stream mode: update() returns every byte, final() nothing.
  return createCipheriv('aes-128-ctr', key, iv).update(data);
}

/** Z: the x-coordinate of the ECDH product, 48 bytes big-endian, unhashed (§6.3). */
export function ecdhSecret(priv: KeyObject, peerPub: KeyObject): Buffer {
  return diffieHellman({ privateKey: priv, publicKey: peerPub });
}

export interface SessionKeys {
  kek: Buffer;
  kik: Buffer;
}

export function sessionKeys(z: Uint8Array, nonce: Uint8Array): SessionKeys {
  const master = kdf(z, 'sev-master-secret', nonce);
  return { kek: kdf(master, 'sev-kek', new Uint8Array(0)), kik: kdf(master, 'sev-kik', new Uint8Array(0)) };
}

export interface SessionFields {
  nonce: Buffer;
  wrapTk: Buffer;
  wrapIv: Buffer;
  wrapMac: Buffer;
  policyMac: Buffer;
}

export function decodeSession(b: Uint8Array): SessionFields {
  const s = Buffer.from(b.buffer, b.byteOffset, b.length);
  return {
    nonce: s.subarray(0x00, 0x10), wrapTk: s.subarray(0x10, 0x30), wrapIv: s.subarray(0x30, 0x40),
    wrapMac: s.subarray(0x40, 0x60), policyMac: s.subarray(0x60, 0x80),
  };
}

/** Builds the 128-byte session (§6.2): what a guest owner, or SEND_START, produces. */
export function buildSession(keys: SessionKeys, tek: Uint8Array, tik: Uint8Array, nonce: Uint8Array, wrapIv: Uint8Array, policy: number): Buffer {
  const wrapTk = aes128ctr(keys.kek, wrapIv, Buffer.concat([tek, tik]));
  return Buffer.concat([nonce, wrapTk, wrapIv, hmac256(keys.kik, wrapTk), hmac256(tik, le32(policy))]);
}

const macEqual = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);

/**
 * Unwraps TEK ‖ TIK from a session: WRAP_MAC, then POLICY_MAC over the policy given to
 * the command. Returns undefined on any MAC mismatch (the firmware's BAD_MEASUREMENT).
 */
export function unwrapSession(keys: SessionKeys, session: Uint8Array, policy: number): { tek: Buffer; tik: Buffer } | undefined {
  const s = decodeSession(session);
  if (!macEqual(hmac256(keys.kik, s.wrapTk), s.wrapMac)) return undefined;
  const tk = aes128ctr(keys.kek, s.wrapIv, s.wrapTk);
  const tek = tk.subarray(0, 16);
  const tik = tk.subarray(16, 32);
  if (!macEqual(hmac256(tik, le32(policy)), s.policyMac)) return undefined;
  return { tek, tik };
}

export interface ApiBuild {
  apiMajor: number;
  apiMinor: number;
  build: number;
}

const atLeast017 = (a: ApiBuild) => a.apiMajor > 0 || a.apiMinor >= 17;

/** MEASURE (§6.7): API >= 0.17 with the 0x04 context byte and version bytes. */
export function launchMeasure(tik: Uint8Array, a: ApiBuild, policy: number, ld: Uint8Array, mnonce: Uint8Array): Buffer {
  if (!atLeast017(a)) return hmac256(tik, le32(policy), ld, mnonce);
  return hmac256(tik, Buffer.from([0x04, a.apiMajor, a.apiMinor, a.build]), le32(policy), ld, mnonce);
}

export interface PacketHeader {
  flags: number;
  iv: Buffer;
  mac: Buffer;
}

export function decodePacketHeader(b: Uint8Array): PacketHeader {
  const h = Buffer.from(b.buffer, b.byteOffset, b.length);
  return { flags: h.readUInt32LE(0), iv: h.subarray(4, 20), mac: h.subarray(20, 52) };
}

export function encodePacketHeader(h: PacketHeader): Buffer {
  const b = Buffer.alloc(PACKET_HEADER_SIZE);
  writePacketHeader(b, h);
  return b;
}

/** FLAGS ‖ IV ‖ MAC into a caller's 52-byte buffer (a record being built). */
export function writePacketHeader(out: Uint8Array, h: { flags: number; iv: Uint8Array; mac: Uint8Array }): void {
  const b = Buffer.from(out.buffer, out.byteOffset, PACKET_HEADER_SIZE);
  b.writeUInt32LE(h.flags >>> 0, 0);
  b.set(h.iv, 4);
  b.set(h.mac, 20);
}

/** Context bytes of the packet MACs: launch secret 0x01, migration packet 0x02 (sevd's choice). */
export const MAC_LAUNCH_SECRET = 0x01;
export const MAC_MIGRATION = 0x02;

/**
 * Packet MAC (§6.8, §11.3): HMAC-SHA256(TIK, ctx ‖ LE32(FLAGS) ‖ IV ‖ LE32(GUEST_LEN) ‖
 * LE32(TRANS_LEN) ‖ ciphertext [‖ MEASURE]). Launch secrets on API <= 0.16 omit MEASURE.
 */
export function packetMac(ctx: number, tik: Uint8Array, h: { flags: number; iv: Uint8Array }, guestLen: number, ciphertext: Uint8Array, measure?: Uint8Array): Buffer {
  // One prefix buffer instead of five small ones: this runs once per migrated page.
  const prefix = Buffer.allocUnsafe(29);
  prefix[0] = ctx;
  prefix.writeUInt32LE(h.flags >>> 0, 1);
  prefix.set(h.iv, 5);
  prefix.writeUInt32LE(guestLen >>> 0, 21);
  prefix.writeUInt32LE(ciphertext.length >>> 0, 25);
  return measure ? hmac256(tik, prefix, ciphertext, measure) : hmac256(tik, prefix, ciphertext);
}

export function macMatches(expected: Uint8Array, given: Uint8Array): boolean {
  return macEqual(expected, given);
}

